// NonMaxSuppression on the host (ir/ops/non_max_suppression.h): the rows it selects must be as many
// as shape inference found for the same inputs.
#include "ir/ops/non_max_suppression.h"

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class CpuNonMaxSuppression final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    describe_ = node.describe();
    QYOLO_ASSIGN_OR_RETURN(int64_t center, node.attr_int("center_point_box", 0));
    p_.center_point_box = center == 1;
    p_.batches = inputs[0]->shape[0];
    p_.boxes = inputs[0]->shape[1];
    p_.classes = inputs[1]->shape[1];
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    NmsSelectParams p = p_;
    auto one = [&](size_t i) { return inputs.size() > i && inputs[i] != nullptr && inputs[i]->numel() == 1; };
    p.max_per_class = one(2) ? inputs[2]->data<int64_t>()[0] : 0;
    p.iou_threshold = one(3) ? inputs[3]->data<float>()[0] : 0.f;
    p.score_threshold.reset();
    if (one(4)) p.score_threshold = inputs[4]->data<float>()[0];
    const auto rows = nms_select(inputs[0]->data<float>(), inputs[1]->data<float>(), p);
    Tensor& out = *outputs[0];
    if (static_cast<int64_t>(rows.size()) != out.shape()[0])
      return internal_error(describe_ + ": selected " + std::to_string(rows.size()) +
                            " boxes, the build found " + std::to_string(out.shape()[0]));
    int64_t* o = out.data<int64_t>();
    for (const auto& r : rows)
      for (int64_t v : r) *o++ = v;
    return Status::ok();
  }

 private:
  NmsSelectParams p_;
  std::string describe_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_non_max_suppression(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuNonMaxSuppression>());
}

}  // namespace qyolo
