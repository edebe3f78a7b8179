// Erf on float32 (std::erf, correctly rounded to within 1 ulp).
#include <cmath>

#include "backends/cpu/binary.h"
#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class CpuErf final : public CpuKernel {
 public:
  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const float* x = inputs[0]->data<float>();
    float* y = outputs[0]->data<float>();
    cpu::parallel_ranges(inputs[0]->numel(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) y[i] = std::erf(x[i]);
    });
    return Status::ok();
  }
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_erf(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuErf>());
}

}  // namespace qyolo
