// TopK over the middle dim of [outer, n, inner]: a partial sort of indices per line.

#include <algorithm>
#include <numeric>

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class CpuTopK final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    const Shape& s = inputs[0]->shape;
    QYOLO_ASSIGN_OR_RETURN(int64_t axis_attr, node.attr_int("axis", -1));
    QYOLO_ASSIGN_OR_RETURN(int64_t largest, node.attr_int("largest", 1));
    QYOLO_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(axis_attr, static_cast<int64_t>(s.size())));
    largest_ = largest != 0;
    k_ = outputs[0].shape[static_cast<size_t>(axis)];
    outer_ = inner_ = 1;
    for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
      if (d < axis)
        outer_ *= s[static_cast<size_t>(d)];
      else if (d > axis)
        inner_ *= s[static_cast<size_t>(d)];
    }
    n_ = s[static_cast<size_t>(axis)];
    return Status::ok();
  }

  // `sorted` = 0 allows any order; the sorted order is one of them.
  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const float* x = inputs[0]->data<float>();
    float* vals = outputs[0]->data<float>();
    int64_t* idxs = outputs[1]->data<int64_t>();
    std::vector<int64_t> order(static_cast<size_t>(n_));
    for (int64_t o = 0; o < outer_; ++o)
      for (int64_t i = 0; i < inner_; ++i) {
        const float* line = x + o * n_ * inner_ + i;
        std::iota(order.begin(), order.end(), 0);
        auto before = [&](int64_t a, int64_t b) {
          const float va = line[a * inner_], vb = line[b * inner_];
          if (va != vb) return largest_ ? va > vb : va < vb;
          return a < b;
        };
        std::partial_sort(order.begin(), order.begin() + k_, order.end(), before);
        for (int64_t j = 0; j < k_; ++j) {
          const int64_t at = o * k_ * inner_ + j * inner_ + i;
          idxs[at] = order[static_cast<size_t>(j)];
          vals[at] = line[order[static_cast<size_t>(j)] * inner_];
        }
      }
    return Status::ok();
  }

 private:
  int64_t outer_ = 1, n_ = 1, inner_ = 1, k_ = 0;
  bool largest_ = true;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_top_k(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuTopK>());
}

}  // namespace qyolo
