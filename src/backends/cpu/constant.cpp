#include "ir/ops/constant.h"

#include <cstring>

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class ConstantKernel : public CpuKernel {
 public:
  explicit ConstantKernel(ConstantAttrs a) : a_(std::move(a)) {}

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    Tensor& y = *outputs[0];
    if (y.nbytes() != a_.value.nbytes()) return internal_error("Constant output size mismatch");
    if (y.nbytes()) std::memcpy(y.raw(), a_.value.raw(), y.nbytes());
    return Status::ok();
  }

 private:
  ConstantAttrs a_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_constant(const Node& node) {
  QYOLO_ASSIGN_OR_RETURN(ConstantAttrs a, ConstantAttrs::parse(node, 0));
  return std::unique_ptr<CpuKernel>(new ConstantKernel(std::move(a)));
}

}  // namespace qyolo
