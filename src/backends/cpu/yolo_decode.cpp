// QyoloYoloDecode on the CPU: sigmoid + transpose + box decode in one pass (see
// src/ir/ops/yolo_decode.h). The arithmetic follows the unfused graph operation for operation
// (the CPU Sigmoid's polynomial exp, Pow by 2 as x*x), so fusing does not move results.
#include "ir/ops/yolo_decode.h"

#include <omp.h>

#include <cmath>
#include <cstring>

#include "backends/cpu/binary.h"
#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/float_math.h"

namespace qyolo {

namespace {

using cpu::clampf;
using cpu::exp_poly;  // the CPU Sigmoid's exp: the fused decode equals the unfused tail exactly

class CpuYoloDecode final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    QYOLO_ASSIGN_OR_RETURN(a_, YoloDecodeAttrs::parse(node, inputs[0]->shape));
    if (outputs[0].dtype != DataType::kFloat32 || outputs[0].shape != a_.out_shape())
      return internal_error(node.describe() + ": unexpected output " + shape_str(outputs[0].shape));
    return Status::ok();
  }

  // Per thread: one row's C x W block, channel-major (workspace).
  size_t workspace_bytes() const override {
    return static_cast<size_t>(threads_) * align64(static_cast<size_t>(a_.channels * a_.w) * 4);
  }
  void set_workspace(std::byte* workspace) override { workspace_ = workspace; }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const Tensor x32 = cpu::to_float32(*inputs[0]);
    const Tensor g32 = cpu::to_float32(*inputs[1]);
    const Tensor ag32 = cpu::to_float32(*inputs[2]);
    const float* x = x32.data<float>();
    const float* grid = g32.data<float>();
    const float* anchor = ag32.data<float>();
    float* y = outputs[0]->data<float>();
    const int64_t A = a_.num_anchors, C = a_.channels, H = a_.h, W = a_.w;
    const int64_t rows = a_.n * A * H;  // one (n, a, h) row: W*C outputs
    const float c1 = a_.c1, c2 = a_.c2, c3 = a_.c3, stride = a_.stride;
    const float lo = cpu::opaque(-87.3f), hi = cpu::opaque(88.f);
    const bool square = c3 == 2.f;
    const size_t block_bytes = align64(static_cast<size_t>(C * W) * 4);
    std::byte* ws = workspace_;
    // Each row is decoded channel by channel into a contiguous block (unit-stride loops that
    // vectorise), then written out pixel-major (contiguous stores of C values per pixel).
#pragma omp parallel for schedule(static) num_threads(threads_) if (rows * W * C > (1 << 15))
    for (int64_t r = 0; r < rows; ++r) {
      float* blk = reinterpret_cast<float*>(ws + static_cast<size_t>(omp_get_thread_num()) * block_bytes);
      const int64_t h = r % H, na = r / H, a = na % A;
      const float* xs = x + (na * C * H + h) * W;  // channel c of this row at xs[c*H*W + w]
      const float* gs = grid + (a * H + h) * W * 2;
      const float* as = anchor + (a * H + h) * W * 2;
      for (int64_t c = 0; c < C; ++c) {
        const float* xc = xs + c * H * W;
        float* bc = blk + c * W;
        for (int64_t w = 0; w < W; ++w) bc[w] = 1.f / (1.f + exp_poly(-xc[w], lo, hi));
        if (c < 2) {
          for (int64_t w = 0; w < W; ++w) bc[w] = (bc[w] * c1 + gs[w * 2 + c]) * stride;
        } else if (c < 4) {
          for (int64_t w = 0; w < W; ++w) {
            const float b = bc[w] * c2;
            bc[w] = (square ? b * b : std::pow(b, c3)) * as[w * 2 + (c - 2)];
          }
        }
      }
      float* ys = y + r * W * C;
      for (int64_t w = 0; w < W; ++w)
        for (int64_t c = 0; c < C; ++c) ys[w * C + c] = blk[c * W + w];
    }
    return Status::ok();
  }

 private:
  YoloDecodeAttrs a_;
  int threads_ = omp_get_max_threads();  // workspace blocks: at most this many threads decode
  std::byte* workspace_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_yolo_decode(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuYoloDecode>());
}

}  // namespace qyolo
