#include "ir/ops/shape.h"

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class ShapeKernel : public CpuKernel {
 public:
  explicit ShapeKernel(ShapeAttrs a) : a_(a) {}

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const Shape& s = inputs[0]->shape();
    auto [b, e] = a_.range(static_cast<int64_t>(s.size()));
    Tensor& y = *outputs[0];
    if (y.numel() != e - b) return internal_error("Shape output size mismatch");
    for (int64_t i = b; i < e; ++i) y.data<int64_t>()[i - b] = s[static_cast<size_t>(i)];
    return Status::ok();
  }

 private:
  ShapeAttrs a_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_shape(const Node& node) {
  // Kernels see no opset; start/end exist only from opset 15.
  QYOLO_ASSIGN_OR_RETURN(ShapeAttrs a, ShapeAttrs::parse(node, 15));
  return std::unique_ptr<CpuKernel>(new ShapeKernel(a));
}

}  // namespace qyolo
