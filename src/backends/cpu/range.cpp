#include "backends/cpu/binary.h"
#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class RangeKernel : public CpuKernel {
 public:
  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    Tensor& y = *outputs[0];
    const int64_t n = y.numel();
    switch (y.dtype()) {
      case DataType::kFloat32: {
        const double start = inputs[0]->data<float>()[0], delta = inputs[2]->data<float>()[0];
        for (int64_t i = 0; i < n; ++i)
          y.data<float>()[i] = static_cast<float>(start + static_cast<double>(i) * delta);
        break;
      }
      case DataType::kInt32: {
        const int64_t start = inputs[0]->data<int32_t>()[0], delta = inputs[2]->data<int32_t>()[0];
        for (int64_t i = 0; i < n; ++i) y.data<int32_t>()[i] = static_cast<int32_t>(start + i * delta);
        break;
      }
      case DataType::kInt64: {
        const int64_t start = inputs[0]->data<int64_t>()[0], delta = inputs[2]->data<int64_t>()[0];
        for (int64_t i = 0; i < n; ++i) y.data<int64_t>()[i] = start + i * delta;
        break;
      }
      default:
        return internal_error("unexpected Range element type");
    }
    return Status::ok();
  }
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_range(const Node& node) {
  return std::unique_ptr<CpuKernel>(new RangeKernel());
}

}  // namespace qyolo
