// Softmax over the middle dim of [outer, n, inner] (plain layout, float/half, computed in float,
// max-subtracted like the CPU kernel). inner == 1 (the last axis, attention): a warp per row;
// otherwise a thread per (outer, inner) line, whose neighbours read neighbouring elements (the
// YOLOv8 DFL softmax over 16 bins of [1, 16, 4, 8400]).
#include "backends/cuda/cuda_op_factories.h"
#include "backends/cuda/reduce_util.cuh"
#include "ir/ops/softmax.h"

namespace qyolo::cuda {

namespace {

template <typename T>
__global__ void softmax_rows_kernel(T* __restrict__ y, const T* __restrict__ x, int64_t rows, int64_t n) {
  await_producers();
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); r < rows;
       r += warps) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    float m = -INFINITY;
    for (int64_t k = lane; k < n; k += 32) m = fmaxf(m, to_f(xr[k]));
    m = warp_max(m);
    float s = 0.f;
    for (int64_t k = lane; k < n; k += 32) s += expf(to_f(xr[k]) - m);
    const float inv = 1.f / warp_sum(s);
    for (int64_t k = lane; k < n; k += 32) yr[k] = from_f<T>(expf(to_f(xr[k]) - m) * inv);
  }
}

template <typename T>
__global__ void softmax_lines_kernel(T* __restrict__ y, const T* __restrict__ x, int64_t lines, int64_t n,
                                     int64_t inner) {
  await_producers();
  for (int64_t l = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; l < lines;
       l += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = l / inner, i = l - o * inner;
    const T* xs = x + o * n * inner + i;
    T* ys = y + o * n * inner + i;
    float m = -INFINITY;
    for (int64_t k = 0; k < n; ++k) m = fmaxf(m, to_f(xs[k * inner]));
    float s = 0.f;
    for (int64_t k = 0; k < n; ++k) s += expf(to_f(xs[k * inner]) - m);
    const float inv = 1.f / s;
    for (int64_t k = 0; k < n; ++k) ys[k * inner] = from_f<T>(expf(to_f(xs[k * inner]) - m) * inv);
  }
}

class SoftmaxKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    // Opset 13 semantics: infer_softmax rejected older nodes that would mean something else.
    QYOLO_ASSIGN_OR_RETURN(a_, SoftmaxAttrs::parse(node, 13, in[0]->shape));
    if (in[0]->dtype != out[0].dtype || in[0]->layout != Layout::kPlain || out[0].layout != Layout::kPlain)
      return internal_error(node.describe() + ": softmax expects plain inputs of the output's type");
    half_ = out[0].dtype == DataType::kFloat16;
    return Status::ok();
  }

  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in,
                 std::span<void* const> out) override {
    if (a_.n == 0 || a_.outer * a_.inner == 0) return Status::ok();
    return half_ ? launch<__half>(ctx, in[0], out[0]) : launch<float>(ctx, in[0], out[0]);
  }

  std::string info() const override { return a_.inner == 1 ? "warp per row" : "thread per line"; }

 private:
  template <typename T>
  Status launch(const LaunchContext& ctx, const void* x, void* y) {
    constexpr int kThreads = 256;
    T* Y = static_cast<T*>(y);
    const T* X = static_cast<const T*>(x);
    if (a_.inner == 1) {
      launch_kernel(softmax_rows_kernel<T>, grid_for(a_.outer * 32, kThreads), kThreads, 0, ctx.stream,
                    ctx.programmatic, Y, X, a_.outer, a_.n);
    } else {
      const int64_t lines = a_.outer * a_.inner;
      launch_kernel(softmax_lines_kernel<T>, grid_for(lines, kThreads), kThreads, 0, ctx.stream,
                    ctx.programmatic, Y, X, lines, a_.n, a_.inner);
    }
    QYOLO_CUDA_CHECK_LAUNCH("softmax kernel");
    return Status::ok();
  }

  SoftmaxAttrs a_;
  bool half_ = false;
};

}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_softmax(const Node&) {
  return std::unique_ptr<CudaKernel>(new SoftmaxKernel());
}

}  // namespace qyolo::cuda
