// ArgMax over the middle dim of [outer, n, inner] of a plain float/half value: a thread per line
// (neighbouring threads read neighbouring elements when inner > 1), int64 output; the first of
// equal maxima, or the last with select_last_index, like the CPU kernel.
#include "backends/cuda/cuda_op_factories.h"
#include "backends/cuda/reduce_util.cuh"
#include "ir/op_registry.h"
#include "ir/ops/argmax.h"

namespace qyolo::cuda {

namespace {

__global__ void argmax_kernel(int64_t* __restrict__ y, const void* __restrict__ x, bool half, int64_t lines,
                              int64_t n, int64_t inner, bool select_last) {
  await_producers();
  for (int64_t l = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; l < lines;
       l += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = l / inner, i = l - o * inner;
    const int64_t base = o * n * inner + i;
    int64_t best = 0;
    float b = load_f(x, base, half);
    for (int64_t k = 1; k < n; ++k) {
      const float v = load_f(x, base + k * inner, half);
      if (v > b || (select_last && v == b)) {
        best = k;
        b = v;
      }
    }
    y[l] = best;
  }
}

class ArgMaxKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    QYOLO_ASSIGN_OR_RETURN(const ArgMaxAttrs a, ArgMaxAttrs::parse(node, in[0]->shape));
    if (!is_float_dtype(in[0]->dtype) || in[0]->layout != Layout::kPlain || out[0].dtype != DataType::kInt64)
      return internal_error(node.describe() + ": argmax expects a plain float input and an int64 output");
    select_last_ = a.select_last;
    half_ = in[0]->dtype == DataType::kFloat16;
    outer_ = a.split.outer;
    n_ = a.split.n;
    inner_ = a.split.inner;
    return Status::ok();
  }

  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in,
                 std::span<void* const> out) override {
    const int64_t lines = outer_ * inner_;
    if (lines == 0 || n_ == 0) return Status::ok();
    constexpr int kThreads = 256;
    launch_kernel(argmax_kernel, grid_for(lines, kThreads), kThreads, 0, ctx.stream, ctx.programmatic,
                  static_cast<int64_t*>(out[0]), in[0], half_, lines, n_, inner_, select_last_);
    QYOLO_CUDA_CHECK_LAUNCH("argmax kernel");
    return Status::ok();
  }

 private:
  int64_t outer_ = 1, n_ = 1, inner_ = 1;
  bool select_last_ = false, half_ = false;
};

}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_argmax(const Node&) {
  return std::unique_ptr<CudaKernel>(new ArgMaxKernel());
}

}  // namespace qyolo::cuda
