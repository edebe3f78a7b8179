// Transpose: a strided gather over the collapsed permuted view of the input (any dtype).
#include "ir/ops/transpose.h"

#include <cstring>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/strided_copy.h"

namespace qyolo {

namespace {

using cpu::StridedView;
using cpu::strided_copy_bytes;

class CpuTranspose final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    const Shape& x = inputs[0]->shape;
    QYOLO_ASSIGN_OR_RETURN(TransposeAttrs a, TransposeAttrs::parse(node, x));
    std::vector<int64_t> in_strides(x.size(), 1);
    for (size_t d = x.size(); d-- > 1;) in_strides[d - 1] = in_strides[d] * x[d];
    for (size_t i = 0; i < a.perm.size(); ++i) {
      view_.shape.push_back(a.out_shape[i]);
      view_.strides.push_back(in_strides[static_cast<size_t>(a.perm[i])]);
    }
    view_.collapse();
    elem_ = dtype_size(inputs[0]->dtype);
    empty_ = shape_numel(x) == 0;
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

Result<std::unique_ptr<CpuKernel>> make_cpu_transpose(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuTranspose>());
}

}  // namespace qyolo
