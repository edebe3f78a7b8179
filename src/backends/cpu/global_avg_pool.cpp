// GlobalAveragePool: the mean of each [N, C] plane (accumulated in double).
#include "ir/ops/global_avg_pool.h"

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class CpuGlobalAvgPool final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    const Shape& x = inputs[0]->shape;
    QYOLO_RETURN_IF_ERROR(GlobalAvgPoolAttrs::parse(node, x).status());
    planes_ = x[0] * x[1];
    plane_ = 1;
    for (size_t d = 2; d < x.size(); ++d) plane_ *= x[d];
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const float* x = inputs[0]->data<float>();
    float* y = outputs[0]->data<float>();
    const int64_t plane = plane_;
#pragma omp parallel for schedule(static) if (planes_ * plane > (1 << 15))
    for (int64_t p = 0; p < planes_; ++p) {
      double s = 0;
      for (int64_t i = 0; i < plane; ++i) s += x[p * plane + i];
      y[p] = static_cast<float>(s / static_cast<double>(plane));
    }
    return Status::ok();
  }

 private:
  int64_t planes_ = 0, plane_ = 0;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_global_avg_pool(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuGlobalAvgPool>());
}

}  // namespace qyolo
