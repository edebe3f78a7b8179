// Reshape, Flatten, Squeeze, Unsqueeze, Identity: the output shares the input's storage (no copy;
// tensors are never written after their producer ran).
#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class ReshapeKernel : public CpuKernel {
 public:
  bool output_aliases_input() const override { return true; }
  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const Tensor& x = *inputs[0];
    Tensor& y = *outputs[0];
    if (x.numel() != y.numel() || x.dtype() != y.dtype())
      return internal_error("reshape of " + shape_str(x.shape()) + " to " + shape_str(y.shape()) +
                            ": element count or type differs");
    y = x.reshaped(y.shape());
    return Status::ok();
  }
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_reshape(const Node& node) {
  return std::unique_ptr<CpuKernel>(new ReshapeKernel());
}

}  // namespace qyolo
