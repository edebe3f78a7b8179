// Slice: a strided gather over the input (any dtype; negative steps are negative strides).
#include "ir/ops/slice.h"

#include <cstring>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/strided_copy.h"

namespace qyolo {

namespace {

using cpu::StridedView;
using cpu::strided_copy_bytes;

class CpuSlice final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    const Shape& x = inputs[0]->shape;
    std::optional<std::vector<int64_t>> in[4];
    for (size_t i = 1; i < inputs.size() && i <= 4; ++i) {
      if (inputs[i] == nullptr) continue;
      if (!inputs[i]->value)
        return unsupported(node.describe() + ": input " + std::to_string(i) + " must be a constant");
      in[i - 1] = inputs[i]->value->to_int64_vector();
    }
    QYOLO_ASSIGN_OR_RETURN(SliceAttrs a, SliceAttrs::parse(node, x, in[0], in[1], in[2], in[3]));
    std::vector<int64_t> in_strides(x.size(), 1);
    for (size_t d = x.size(); d-- > 1;) in_strides[d - 1] = in_strides[d] * x[d];
    for (size_t d = 0; d < x.size(); ++d) {
      view_.base += a.start[d] * in_strides[d];
      view_.shape.push_back(a.out_shape[d]);
      view_.strides.push_back(a.step[d] * in_strides[d]);
    }
    view_.collapse();
    elem_ = dtype_size(inputs[0]->dtype);
    empty_ = shape_numel(a.out_shape) == 0;
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    if (empty_) return Status::ok();
    return strided_copy_bytes(view_, elem_, inputs[0]->raw(), outputs[0]->raw());
  }

 private:
  StridedView view_;
  size_t elem_ = 4;
  bool empty_ = false;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_slice(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuSlice>());
}

}  // namespace qyolo
