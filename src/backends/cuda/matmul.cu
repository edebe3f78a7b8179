// MatMul (numpy: batch dims broadcast, 1-D operands promoted) and Gemm (transposes, alpha, beta * C
// broadcast to [M, N]) on plain float/half values: a 16x16-tiled kernel accumulating in fp32, one
// output element per thread, operands read through element strides (so transposed and broadcast
// operands need no copy). The matrices detector exports multiply (C2PSA attention, a classifier's
// Gemm) are small; convolutions go to cuDNN. Summation runs along k in order, as on the CPU.
#include <algorithm>

#include "backends/cuda/cuda_op_factories.h"
#include "backends/cuda/nd.h"
#include "backends/cuda/reduce_util.cuh"
#include "ir/ops/matmul.h"

namespace qyolo::cuda {

namespace {

constexpr int kTile = 16;

struct MatMulParams {
  int64_t m = 0, n = 0, k = 0;
  int64_t a_row = 0, a_col = 0, b_row = 0, b_col = 0;  // element strides inside one matrix
  int batch_rank = 0;
  int64_t batch_dims[kMaxNd] = {}, a_batch[kMaxNd] = {}, b_batch[kMaxNd] = {};  // 0: broadcast
  int64_t batches = 1;
  float alpha = 1.f, beta = 0.f;
  int64_t c_row = 0, c_col = 0;  // Gemm's C, broadcast (0 strides) to [M, N]
};

template <typename T>
__global__ void matmul_kernel(MatMulParams p, T* __restrict__ y, const T* __restrict__ a,
                              const T* __restrict__ b, const T* __restrict__ c) {
  await_producers();
  __shared__ float as[kTile][kTile + 1];
  __shared__ float bs[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t tiles_m = (p.m + kTile - 1) / kTile, tiles_n = (p.n + kTile - 1) / kTile;
  for (int64_t bt = blockIdx.z; bt < p.batches; bt += gridDim.z) {
    int64_t ao = 0, bo = 0, idx = bt;
    for (int d = p.batch_rank - 1; d >= 0; --d) {
      const int64_t q = idx / p.batch_dims[d], i = idx - q * p.batch_dims[d];
      ao += i * p.a_batch[d];
      bo += i * p.b_batch[d];
      idx = q;
    }
    for (int64_t tm = blockIdx.y; tm < tiles_m; tm += gridDim.y) {
      for (int64_t tn = blockIdx.x; tn < tiles_n; tn += gridDim.x) {
        const int64_t row = tm * kTile + ty, col = tn * kTile + tx;
        float acc = 0.f;
        for (int64_t k0 = 0; k0 < p.k; k0 += kTile) {
          const int64_t ka = k0 + tx, kb = k0 + ty;
          as[ty][tx] = row < p.m && ka < p.k ? to_f(a[ao + row * p.a_row + ka * p.a_col]) : 0.f;
          bs[ty][tx] = kb < p.k && col < p.n ? to_f(b[bo + kb * p.b_row + col * p.b_col]) : 0.f;
          __syncthreads();
#pragma unroll
          for (int kk = 0; kk < kTile; ++kk) acc = fmaf(as[ty][kk], bs[kk][tx], acc);
          __syncthreads();
        }
        if (row < p.m && col < p.n) {
          float v = p.alpha * acc;
          if (c != nullptr) v += p.beta * to_f(c[row * p.c_row + col * p.c_col]);
          y[(bt * p.m + row) * p.n + col] = from_f<T>(v);
        }
      }
    }
  }
}

class MatMulKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    for (size_t i = 0; i < in.size(); ++i)
      if (in[i] && (in[i]->dtype != out[0].dtype || in[i]->layout != Layout::kPlain))
        return internal_error(node.describe() + ": matmul expects plain inputs of the output's type");
    if (out[0].layout != Layout::kPlain)
      return internal_error(node.describe() + ": matmul writes plain outputs");
    half_ = out[0].dtype == DataType::kFloat16;
    const Shape& as = in[0]->shape;
    const Shape& bs = in[1]->shape;
    if (node.op_type == "Gemm") {
      QYOLO_ASSIGN_OR_RETURN(GemmAttrs g, GemmAttrs::parse(node, as, bs));
      p_.m = g.m, p_.n = g.n, p_.k = g.k;
      p_.a_row = g.trans_a ? 1 : g.k;
      p_.a_col = g.trans_a ? g.m : 1;
      p_.b_row = g.trans_b ? 1 : g.n;
      p_.b_col = g.trans_b ? g.k : 1;
      p_.alpha = g.alpha;
      p_.beta = g.beta;
      has_c_ = in.size() > 2 && in[2] != nullptr && g.beta != 0.f;
      if (has_c_) {
        const Shape& s = in[2]->shape;
        if (s.size() > 2) return invalid_argument(node.describe() + ": C must have rank <= 2");
        const int64_t cm = s.size() == 2 ? s[0] : 1, cn = s.empty() ? 1 : s.back();
        p_.c_row = cm == 1 ? 0 : cn;
        p_.c_col = cn == 1 ? 0 : 1;
      }
      return Status::ok();
    }
    QYOLO_ASSIGN_OR_RETURN(MatMulPlan plan, plan_matmul(node, as, bs));
    p_.m = plan.m, p_.n = plan.n, p_.k = plan.k;
    p_.a_row = plan.k, p_.a_col = 1;  // A [.., m, k], B [.., k, n], row-major
    p_.b_row = plan.n, p_.b_col = 1;
    // Batch dims: the output's (numpy broadcast of both), each operand's stride or 0.
    Shape a = as, b = bs;
    if (a.size() == 1) a.insert(a.begin(), 1);
    if (b.size() == 1) b.push_back(1);
    const Shape ab(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
    const std::vector<int64_t> ast = plain_strides(a), bst = plain_strides(b);
    const size_t rank = std::max(ab.size(), bb.size());
    if (rank > static_cast<size_t>(kMaxNd))
      return unsupported(node.describe() + ": the CUDA MatMul takes at most " + std::to_string(kMaxNd) +
                         " batch dims");
    p_.batch_rank = static_cast<int>(rank);
    p_.batches = 1;
    for (size_t d = 0; d < rank; ++d) {
      const int64_t da = static_cast<int64_t>(d) - static_cast<int64_t>(rank - ab.size());
      const int64_t db = static_cast<int64_t>(d) - static_cast<int64_t>(rank - bb.size());
      const int64_t na = da >= 0 ? ab[static_cast<size_t>(da)] : 1,
                    nb = db >= 0 ? bb[static_cast<size_t>(db)] : 1;
      p_.batch_dims[d] = std::max(na, nb);
      p_.a_batch[d] = na == 1 ? 0 : ast[static_cast<size_t>(da)];
      p_.b_batch[d] = nb == 1 ? 0 : bst[static_cast<size_t>(db)];
      p_.batches *= p_.batch_dims[d];
    }
    if (p_.batches * p_.m * p_.n != out[0].numel())
      return internal_error(node.describe() + ": matmul output size does not match " +
                            shape_str(out[0].shape));
    return Status::ok();
  }

  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in,
                 std::span<void* const> out) override {
    if (p_.m == 0 || p_.n == 0 || p_.batches == 0) return Status::ok();
    const void* c = has_c_ ? in[2] : nullptr;
    return half_ ? launch<__half>(ctx, in[0], in[1], c, out[0]) : launch<float>(ctx, in[0], in[1], c, out[0]);
  }

  std::string info() const override {
    return std::to_string(p_.batches) + " x [" + std::to_string(p_.m) + "x" + std::to_string(p_.k) + "] x [" +
           std::to_string(p_.k) + "x" + std::to_string(p_.n) + "]";
  }

 private:
  template <typename T>
  Status launch(const LaunchContext& ctx, const void* a, const void* b, const void* c, void* y) {
    const int64_t tiles_m = (p_.m + kTile - 1) / kTile, tiles_n = (p_.n + kTile - 1) / kTile;
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>(tiles_n, 1 << 30)),
                    static_cast<unsigned>(std::min<int64_t>(tiles_m, 65535)),
                    static_cast<unsigned>(std::min<int64_t>(p_.batches, 65535)));
    launch_kernel(matmul_kernel<T>, grid, dim3(kTile, kTile), 0, ctx.stream, ctx.programmatic, p_,
                  static_cast<T*>(y), static_cast<const T*>(a), static_cast<const T*>(b),
                  static_cast<const T*>(c));
    QYOLO_CUDA_CHECK_LAUNCH("matmul kernel");
    return Status::ok();
  }

  MatMulParams p_;
  bool half_ = false, has_c_ = false;
};

}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_matmul(const Node&) {
  return std::unique_ptr<CudaKernel>(new MatMulKernel());
}

}  // namespace qyolo::cuda
