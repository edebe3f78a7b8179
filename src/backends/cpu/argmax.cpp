// ArgMax over the middle dim of [outer, n, inner].
#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class CpuArgMax final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    const Shape& s = inputs[0]->shape;
    QYOLO_ASSIGN_OR_RETURN(int64_t axis_attr, node.attr_int("axis", 0));
    QYOLO_ASSIGN_OR_RETURN(int64_t last, node.attr_int("select_last_index", 0));
    QYOLO_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(axis_attr, static_cast<int64_t>(s.size())));
    select_last_ = last != 0;
    outer_ = inner_ = 1;
    for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
      if (d < axis)
        outer_ *= s[static_cast<size_t>(d)];
      else if (d > axis)
        inner_ *= s[static_cast<size_t>(d)];
    }
    n_ = s.empty() ? 1 : s[static_cast<size_t>(axis)];
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const float* x = inputs[0]->data<float>();
    int64_t* y = outputs[0]->data<int64_t>();
    for (int64_t o = 0; o < outer_; ++o)
      for (int64_t i = 0; i < inner_; ++i) {
        const float* line = x + o * n_ * inner_ + i;
        int64_t best = 0;
        for (int64_t k = 1; k < n_; ++k) {
          const float v = line[k * inner_], b = line[best * inner_];
          if (v > b || (select_last_ && v == b)) best = k;
        }
        y[o * inner_ + i] = best;
      }
    return Status::ok();
  }

 private:
  int64_t outer_ = 1, n_ = 1, inner_ = 1;
  bool select_last_ = false;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_argmax(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuArgMax>());
}

}  // namespace qyolo
