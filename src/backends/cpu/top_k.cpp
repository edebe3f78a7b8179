// TopK over the middle dim of [outer, n, inner]: a partial sort of indices per line.

#include <algorithm>
#include <numeric>

#include "backends/cpu/cpu_kernel.h"
#include "ir/ops/top_k.h"

namespace qyolo {

namespace {

class CpuTopK final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    QYOLO_ASSIGN_OR_RETURN(a_, TopKAttrs::parse(node, inputs[0]->shape));
    k_ = outputs[0].shape[static_cast<size_t>(a_.axis)];
    order_.resize(static_cast<size_t>(a_.split.n));
    return Status::ok();
  }

  // `sorted` = 0 allows any order; the sorted order is one of them.
  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const float* x = inputs[0]->data<float>();
    float* vals = outputs[0]->data<float>();
    int64_t* idxs = outputs[1]->data<int64_t>();
    const int64_t n = a_.split.n, inner = a_.split.inner;
    for (int64_t o = 0; o < a_.split.outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const float* line = x + o * n * inner + i;
        std::iota(order_.begin(), order_.end(), 0);
        auto before = [&](int64_t a, int64_t b) {
          const float va = line[a * inner], vb = line[b * inner];
          if (va != vb) return a_.largest ? va > vb : va < vb;
          return a < b;
        };
        std::partial_sort(order_.begin(), order_.begin() + k_, order_.end(), before);
        for (int64_t j = 0; j < k_; ++j) {
          const int64_t at = o * k_ * inner + j * inner + i;
          idxs[at] = order_[static_cast<size_t>(j)];
          vals[at] = line[order_[static_cast<size_t>(j)] * inner];
        }
      }
    return Status::ok();
  }

 private:
  TopKAttrs a_;
  int64_t k_ = 0;
  std::vector<int64_t> order_;  // one line's indices, sized at prepare (run does not allocate)
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_top_k(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuTopK>());
}

}  // namespace qyolo
