// Softmax over the middle dim of [outer, n, inner] (max-subtracted for stability).
#include "ir/ops/softmax.h"

#include <algorithm>
#include <cmath>

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class CpuSoftmax final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    // Opset 13 semantics; infer_softmax rejected older nodes that would mean something else.
    QYOLO_ASSIGN_OR_RETURN(a_, SoftmaxAttrs::parse(node, 13, inputs[0]->shape));
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const float* x = inputs[0]->data<float>();
    float* y = outputs[0]->data<float>();
    const int64_t n = a_.n, inner = a_.inner, lines = a_.outer * a_.inner;
    if (n == 0) return Status::ok();
#pragma omp parallel for schedule(static) if (lines * n > (1 << 14))
    for (int64_t l = 0; l < lines; ++l) {
      const int64_t o = l / inner, i = l % inner;
      const float* xs = x + o * n * inner + i;
      float* ys = y + o * n * inner + i;
      float m = xs[0];
      for (int64_t k = 1; k < n; ++k) m = std::max(m, xs[k * inner]);
      float sum = 0.f;
      for (int64_t k = 0; k < n; ++k) {
        float e = std::exp(xs[k * inner] - m);
        ys[k * inner] = e;
        sum += e;
      }
      const float inv = 1.f / sum;
      for (int64_t k = 0; k < n; ++k) ys[k * inner] *= inv;
    }
    return Status::ok();
  }

 private:
  SoftmaxAttrs a_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_softmax(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuSoftmax>());
}

}  // namespace qyolo
