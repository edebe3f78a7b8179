// Elementwise binary family (Add, Sub, Mul, Div, Pow, variadic Max/Min) on float/half with numpy
// broadcasting over any mix of layouts: an N-d plan over the output's physical order, with a flat
// 16-byte vectorised path when every operand is contiguous or a scalar.
#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/nd.h"
#include "ir/ops/binary.h"

namespace qyolo::cuda {

namespace {

__device__ __forceinline__ float binary_apply(int op, float a, float b) {
  switch (static_cast<BinaryOp>(op)) {
    case BinaryOp::kAdd: return a + b;
    case BinaryOp::kSub: return a - b;
    case BinaryOp::kMul: return a * b;
    case BinaryOp::kDiv: return a / b;
    case BinaryOp::kPow: return b == 2.0f ? a * a : (b == 1.0f ? a : powf(a, b));
    case BinaryOp::kMax: return fmaxf(a, b);
    case BinaryOp::kMin: return fminf(a, b);
    default: return a;
  }
}

template <typename T, int V> struct alignas(sizeof(T) * V) Vec { T v[V]; };

// Flat: operand strides are 1 (SA/SB true) or 0 (a scalar).
template <typename T, bool SA, bool SB>
__global__ void binary_vec_kernel(int op, T* __restrict__ y, const T* __restrict__ a, const T* __restrict__ b,
                                  int64_t nvec) {
  await_producers();
  constexpr int V = 16 / sizeof(T);
  const float as = SA ? 0.f : to_f(a[0]);
  const float bs = SB ? 0.f : to_f(b[0]);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < nvec;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    Vec<T, V> va, vb, vy;
    if constexpr (SA) va = reinterpret_cast<const Vec<T, V>*>(a)[i];
    if constexpr (SB) vb = reinterpret_cast<const Vec<T, V>*>(b)[i];
#pragma unroll
    for (int k = 0; k < V; ++k)
      vy.v[k] = from_f<T>(binary_apply(op, SA ? to_f(va.v[k]) : as, SB ? to_f(vb.v[k]) : bs));
    reinterpret_cast<Vec<T, V>*>(y)[i] = vy;
  }
}

template <typename T, typename I>
__global__ void binary_nd_kernel(int op, NdPlan<3, I> p, T* __restrict__ y, const T* a, const T* b) {
  await_producers();
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.numel;
       i += static_cast<I>(gridDim.x) * blockDim.x) {
    I off[3];
    nd_offsets(p, i, off);
    y[off[0]] = from_f<T>(binary_apply(op, to_f(a[off[1]]), to_f(b[off[2]])));
  }
}

// One pass: y = op(a, b) where a/b index the step's inputs (-1: the output itself).
struct Pass {
  int a = 0, b = 1;
  bool narrow = false;
  NdPlan<3, int32_t> p32;
  NdPlan<3, int64_t> p64;
  int flat = 0;  // 0: nd; 1: a,b contiguous; 2: b scalar; 3: a scalar
};

class BinaryKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext& ctx, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    QYOLO_ASSIGN_OR_RETURN(BinaryAttrs attrs, BinaryAttrs::parse(node, ctx.opset));
    if (attrs.bool_output()) return unsupported(node.describe() + ": comparison/logic ops are not supported on the GPU");
    op_ = static_cast<int>(attrs.op);
    const TensorInfo& y = out[0];
    dtype_ = y.dtype;
    n_ = y.numel();
    for (const TensorInfo* x : in)
      if (x == nullptr || x->dtype != y.dtype) return internal_error(node.describe() + ": binary operand mismatch");
    const size_t r = y.shape.size();
    auto make_pass = [&](int ia, int ib) -> Status {
      const TensorInfo& A = ia < 0 ? y : *in[static_cast<size_t>(ia)];
      const TensorInfo& B = *in[static_cast<size_t>(ib)];
      const std::vector<int64_t> st[3] = {y.strides(), broadcast_strides(A.shape, A.strides(), r),
                                          broadcast_strides(B.shape, B.strides(), r)};
      NdPlan<4, int64_t> p;
      if (!make_nd_plan(y.shape, st, 3, p)) return unsupported(node.describe() + ": too many broadcast dims");
      Pass ps;
      ps.a = ia;
      ps.b = ib;
      ps.narrow = narrow_plan<3>(p, ps.p32);
      copy_plan<3>(p, ps.p64);
      if (p.rank == 1 && p.strides[0][0] == 1) {
        if (p.strides[1][0] == 1 && p.strides[2][0] == 1) ps.flat = 1;
        else if (p.strides[1][0] == 1 && p.strides[2][0] == 0) ps.flat = 2;
        else if (p.strides[1][0] == 0 && p.strides[2][0] == 1) ps.flat = 3;
      }
      passes_.push_back(ps);
      return Status::ok();
    };
    if (in.size() == 1) {
      // Max/Min of one input: op(x, x) == x.
      QYOLO_RETURN_IF_ERROR(make_pass(0, 0));
    } else {
      QYOLO_RETURN_IF_ERROR(make_pass(0, 1));
      for (size_t k = 2; k < in.size(); ++k) QYOLO_RETURN_IF_ERROR(make_pass(-1, static_cast<int>(k)));
    }
    return Status::ok();
  }

  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in, std::span<void* const> out) override {
    if (n_ == 0) return Status::ok();
    for (const Pass& ps : passes_) {
      const void* a = ps.a < 0 ? out[0] : in[static_cast<size_t>(ps.a)];
      const void* b = in[static_cast<size_t>(ps.b)];
      if (dtype_ == DataType::kFloat16) QYOLO_RETURN_IF_ERROR(launch<__half>(ps, out[0], a, b, ctx.stream, ctx.programmatic));
      else QYOLO_RETURN_IF_ERROR(launch<float>(ps, out[0], a, b, ctx.stream, ctx.programmatic));
    }
    return Status::ok();
  }

  std::string info() const override {
    std::string s;
    for (const Pass& p : passes_) s += p.flat ? "flat" + std::to_string(p.flat) + " " : "nd" + std::to_string(p.p64.rank) + " ";
    return s;
  }

 private:
  template <typename T>
  Status launch(const Pass& ps, void* y, const void* a, const void* b, cudaStream_t s, bool pdl) {
    constexpr int V = 16 / sizeof(T);
    constexpr int kThreads = 256;
    T* Y = static_cast<T*>(y);
    const T* A = static_cast<const T*>(a);
    const T* B = static_cast<const T*>(b);
    const bool aligned = ((reinterpret_cast<uintptr_t>(y) | (ps.flat != 3 ? reinterpret_cast<uintptr_t>(a) : 0) |
                           (ps.flat != 2 ? reinterpret_cast<uintptr_t>(b) : 0)) % 16) == 0;
    if (ps.flat != 0 && aligned && n_ % V == 0) {
      const int64_t nvec = n_ / V;
      const unsigned g = grid_for(nvec, kThreads);
      if (ps.flat == 1) launch_kernel(binary_vec_kernel<T, true, true>, g, kThreads, 0, s, pdl, op_, Y, A, B, nvec);
      else if (ps.flat == 2) launch_kernel(binary_vec_kernel<T, true, false>, g, kThreads, 0, s, pdl, op_, Y, A, B, nvec);
      else launch_kernel(binary_vec_kernel<T, false, true>, g, kThreads, 0, s, pdl, op_, Y, A, B, nvec);
    } else if (ps.narrow) {
      launch_kernel(binary_nd_kernel<T, int32_t>, grid_for(n_, kThreads), kThreads, 0, s, pdl, op_, ps.p32, Y, A, B);
    } else {
      launch_kernel(binary_nd_kernel<T, int64_t>, grid_for(n_, kThreads), kThreads, 0, s, pdl, op_, ps.p64, Y, A, B);
    }
    QYOLO_CUDA_CHECK_LAUNCH("binary kernel");
    return Status::ok();
  }

  int op_ = 0;
  DataType dtype_ = DataType::kFloat32;
  int64_t n_ = 0;
  std::vector<Pass> passes_;
};
}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_binary(const Node&) { return std::unique_ptr<CudaKernel>(new BinaryKernel()); }

}  // namespace qyolo::cuda
