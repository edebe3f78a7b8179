// Elementwise unary family on float/half (computed in float). Input and output share dtype and
// layout (the executor converts), so the kernel is a flat, 16-byte vectorised pass. Floor, Ceil,
// Round (stem "rounding") and Erf (stem "erf") are their own ops in the IR but the same pass here.
#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/cuda_op_factories.h"
#include "ir/ops/unary.h"

namespace qyolo::cuda {

namespace {

// Ops outside UnaryOp, numbered after it.
enum class ExtraOp : int { kFloor = 1000, kCeil, kRound, kErf };

struct UnaryParams {
  int op;  // UnaryOp or ExtraOp
  float alpha, beta;
};

__device__ __forceinline__ float unary_apply(const UnaryParams& p, float x) {
  if (p.op >= static_cast<int>(ExtraOp::kFloor)) {
    switch (static_cast<ExtraOp>(p.op)) {
      case ExtraOp::kFloor: return floorf(x);
      case ExtraOp::kCeil: return ceilf(x);
      case ExtraOp::kRound: return rintf(x);  // ties to even, as ONNX (and the CPU's nearbyint)
      case ExtraOp::kErf: return erff(x);
    }
    return x;
  }
  switch (static_cast<UnaryOp>(p.op)) {
    case UnaryOp::kSigmoid: return 1.0f / (1.0f + expf(-x));
    case UnaryOp::kRelu: return x > 0.f ? x : 0.f;
    case UnaryOp::kLeakyRelu: return x >= 0.f ? x : x * p.alpha;
    case UnaryOp::kHardSigmoid: return fmaxf(0.f, fminf(1.f, p.alpha * x + p.beta));
    case UnaryOp::kHardSwish: return x * fmaxf(0.f, fminf(1.f, x / 6.0f + 0.5f));
    case UnaryOp::kTanh: return tanhf(x);
    case UnaryOp::kExp: return expf(x);
    case UnaryOp::kLog: return logf(x);
    case UnaryOp::kSqrt: return sqrtf(x);
    case UnaryOp::kNeg: return -x;
    case UnaryOp::kAbs: return fabsf(x);
    case UnaryOp::kSoftplus: return log1pf(expf(x));
    case UnaryOp::kElu: return x > 0.f ? x : p.alpha * (expf(x) - 1.f);
    case UnaryOp::kNot: return x;
  }
  return x;
}

template <typename T, int V> struct alignas(sizeof(T) * V) Vec { T v[V]; };

template <typename T>
__global__ void unary_vec_kernel(UnaryParams p, T* __restrict__ y, const T* __restrict__ x, int64_t nvec) {
  await_producers();
  constexpr int V = 16 / sizeof(T);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < nvec;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    Vec<T, V> a = reinterpret_cast<const Vec<T, V>*>(x)[i];
#pragma unroll
    for (int k = 0; k < V; ++k) a.v[k] = from_f<T>(unary_apply(p, to_f(a.v[k])));
    reinterpret_cast<Vec<T, V>*>(y)[i] = a;
  }
}

template <typename T>
__global__ void unary_kernel(UnaryParams p, T* __restrict__ y, const T* __restrict__ x, int64_t begin, int64_t n) {
  await_producers();
  for (int64_t i = begin + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = from_f<T>(unary_apply(p, to_f(x[i])));
}

template <typename T>
Status launch(const UnaryParams& p, void* y, const void* x, int64_t n, cudaStream_t s, bool pdl) {
  constexpr int V = 16 / sizeof(T);
  constexpr int kThreads = 256;
  int64_t done = 0;
  if ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(y)) % 16 == 0 && n >= V) {
    const int64_t nvec = n / V;
    launch_kernel(unary_vec_kernel<T>, grid_for(nvec, kThreads), kThreads, 0, s, pdl, p, static_cast<T*>(y), static_cast<const T*>(x), nvec);
    done = nvec * V;
  }
  if (done < n)
    launch_kernel(unary_kernel<T>, grid_for(n - done, kThreads), kThreads, 0, s, pdl, p, static_cast<T*>(y), static_cast<const T*>(x), done, n);
  QYOLO_CUDA_CHECK_LAUNCH("unary_kernel");
  return Status::ok();
}

class UnaryKernel final : public CudaKernel {
 public:
  UnaryKernel() = default;
  explicit UnaryKernel(ExtraOp op) : extra_(static_cast<int>(op)) {}

  Status prepare(PrepareContext& ctx, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    if (in[0]->dtype != out[0].dtype || in[0]->layout != out[0].layout || in[0]->shape != out[0].shape)
      return internal_error(node.describe() + ": unary input/output mismatch");
    if (extra_ >= 0) {
      p_ = {extra_, 0.f, 0.f};
    } else {
      QYOLO_ASSIGN_OR_RETURN(UnaryAttrs a, UnaryAttrs::parse(node, ctx.opset));
      if (a.op == UnaryOp::kNot) return unsupported(node.describe() + ": Not (bool) is not supported on the GPU");
      p_ = {static_cast<int>(a.op), a.alpha, a.beta};
    }
    dtype_ = out[0].dtype;
    n_ = out[0].numel();
    return Status::ok();
  }
  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in, std::span<void* const> out) override {
    if (n_ == 0) return Status::ok();
    if (dtype_ == DataType::kFloat16) return launch<__half>(p_, out[0], in[0], n_, ctx.stream, ctx.programmatic);
    return launch<float>(p_, out[0], in[0], n_, ctx.stream, ctx.programmatic);
  }

 private:
  int extra_ = -1;
  UnaryParams p_{};
  DataType dtype_ = DataType::kFloat32;
  int64_t n_ = 0;
};
}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_unary(const Node&) { return std::unique_ptr<CudaKernel>(new UnaryKernel()); }

Result<std::unique_ptr<CudaKernel>> make_cuda_rounding(const Node& node) {
  if (node.op_type == "Floor") return std::unique_ptr<CudaKernel>(new UnaryKernel(ExtraOp::kFloor));
  if (node.op_type == "Ceil") return std::unique_ptr<CudaKernel>(new UnaryKernel(ExtraOp::kCeil));
  if (node.op_type == "Round") return std::unique_ptr<CudaKernel>(new UnaryKernel(ExtraOp::kRound));
  return internal_error(node.describe() + ": not a rounding op");
}

Result<std::unique_ptr<CudaKernel>> make_cuda_erf(const Node&) {
  return std::unique_ptr<CudaKernel>(new UnaryKernel(ExtraOp::kErf));
}

}  // namespace qyolo::cuda
