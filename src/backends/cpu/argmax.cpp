// ArgMax over the middle dim of [outer, n, inner].
#include "backends/cpu/cpu_kernel.h"
#include "ir/ops/argmax.h"

namespace qyolo {

namespace {

class CpuArgMax final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    QYOLO_ASSIGN_OR_RETURN(a_, ArgMaxAttrs::parse(node, inputs[0]->shape));
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const float* x = inputs[0]->data<float>();
    int64_t* y = outputs[0]->data<int64_t>();
    const int64_t n = a_.split.n, inner = a_.split.inner;
    for (int64_t o = 0; o < a_.split.outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const float* line = x + o * n * inner + i;
        int64_t best = 0;
        for (int64_t k = 1; k < n; ++k) {
          const float v = line[k * inner], b = line[best * inner];
          if (v > b || (a_.select_last && v == b)) best = k;
        }
        y[o * inner + i] = best;
      }
    return Status::ok();
  }

 private:
  ArgMaxAttrs a_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_argmax(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuArgMax>());
}

}  // namespace qyolo
