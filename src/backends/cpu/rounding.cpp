// Floor, Ceil, Round (ties to even, as ONNX and numpy) on float32.
#include <cmath>

#include "backends/cpu/binary.h"
#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

template <float (*F)(float)>
class CpuFloatMap final : public CpuKernel {
 public:
  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const float* x = inputs[0]->data<float>();
    float* y = outputs[0]->data<float>();
    cpu::parallel_ranges(inputs[0]->numel(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) y[i] = F(x[i]);
    });
    return Status::ok();
  }
};

float floor_f(float v) {
  return std::floor(v);
}
float ceil_f(float v) {
  return std::ceil(v);
}
float round_even(float v) {
  return std::nearbyint(v);
}  // default rounding mode: half to even

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_rounding(const Node& node) {
  if (node.op_type == "Floor") return std::unique_ptr<CpuKernel>(std::make_unique<CpuFloatMap<floor_f>>());
  if (node.op_type == "Ceil") return std::unique_ptr<CpuKernel>(std::make_unique<CpuFloatMap<ceil_f>>());
  if (node.op_type == "Round") return std::unique_ptr<CpuKernel>(std::make_unique<CpuFloatMap<round_even>>());
  return internal_error(node.describe() + ": not a rounding op");
}

}  // namespace qyolo
