// TopK over the middle dim of [outer, n, inner] of a plain float/half value: a block per line
// ranks every element by counting the elements that come before it (larger, or smaller with
// largest = 0; equal values by lower index, as ONNX and the CPU kernel order them) over tiles of
// the line staged in shared memory, and writes the k elements of rank < k at their rank: sorted
// output, no sort, no scratch. O(n^2 / threads) per line: meant for the n of a detector's
// candidates (thousands), not for huge lines.
#include <algorithm>

#include "backends/cuda/cuda_op_factories.h"
#include "backends/cuda/reduce_util.cuh"
#include "ir/op_registry.h"
#include "ir/ops/top_k.h"

namespace qyolo::cuda {

namespace {

constexpr int kTopKThreads = 512;
constexpr int kTopKTile = 1024;

__global__ void top_k_kernel(void* __restrict__ vals, int64_t* __restrict__ idxs, const void* __restrict__ x,
                             bool in_half, bool out_half, int64_t lines, int64_t n, int64_t inner, int64_t k,
                             bool largest) {
  await_producers();
  __shared__ float tile[kTopKTile];
  for (int64_t line = blockIdx.x; line < lines; line += gridDim.x) {
    const int64_t o = line / inner, i = line - o * inner;
    const int64_t base = o * n * inner + i, out_base = o * k * inner + i;
    for (int64_t c0 = 0; c0 < n; c0 += blockDim.x) {
      const int64_t c = c0 + threadIdx.x;
      const float vc = c < n ? load_f(x, base + c * inner, in_half) : 0.f;
      int64_t rank = 0;
      for (int64_t j0 = 0; j0 < n; j0 += kTopKTile) {
        const int jn = static_cast<int>(min(static_cast<int64_t>(kTopKTile), n - j0));
        __syncthreads();  // the previous tile is no longer read
        for (int t = threadIdx.x; t < jn; t += blockDim.x)
          tile[t] = load_f(x, base + (j0 + t) * inner, in_half);
        __syncthreads();
        if (c < n) {
          for (int t = 0; t < jn; ++t) {
            const float v = tile[t];
            const bool before = largest ? v > vc : v < vc;
            rank += before || (v == vc && j0 + t < c);
          }
        }
      }
      if (c < n && rank < k) {
        const int64_t at = out_base + rank * inner;
        if (vals != nullptr) store_f(vals, at, vc, out_half);
        if (idxs != nullptr) idxs[at] = c;
      }
    }
  }
}

class TopKKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    QYOLO_ASSIGN_OR_RETURN(const TopKAttrs a, TopKAttrs::parse(node, in[0]->shape));
    if (!is_float_dtype(in[0]->dtype) || in[0]->layout != Layout::kPlain || !is_float_dtype(out[0].dtype) ||
        out[0].layout != Layout::kPlain || out[1].dtype != DataType::kInt64)
      return internal_error(node.describe() +
                            ": top_k expects a plain float input, float values, int64 indices");
    largest_ = a.largest;
    in_half_ = in[0]->dtype == DataType::kFloat16;
    out_half_ = out[0].dtype == DataType::kFloat16;
    k_ = out[0].shape[static_cast<size_t>(a.axis)];
    outer_ = a.split.outer;
    n_ = a.split.n;
    inner_ = a.split.inner;
    return Status::ok();
  }

  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in,
                 std::span<void* const> out) override {
    const int64_t lines = outer_ * inner_;
    if (lines == 0 || k_ == 0) return Status::ok();
    const unsigned grid = static_cast<unsigned>(std::min<int64_t>(lines, 65535 * 8));
    launch_kernel(top_k_kernel, grid, kTopKThreads, 0, ctx.stream, ctx.programmatic, out[0],
                  static_cast<int64_t*>(out[1]), in[0], in_half_, out_half_, lines, n_, inner_, k_, largest_);
    QYOLO_CUDA_CHECK_LAUNCH("top_k kernel");
    return Status::ok();
  }

  std::string info() const override {
    return "rank count, k " + std::to_string(k_) + " of " + std::to_string(n_);
  }

 private:
  int64_t outer_ = 1, n_ = 1, inner_ = 1, k_ = 0;
  bool largest_ = true, in_half_ = false, out_half_ = false;
};

}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_top_k(const Node&) {
  return std::unique_ptr<CudaKernel>(new TopKKernel());
}

}  // namespace qyolo::cuda
