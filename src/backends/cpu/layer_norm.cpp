// LayerNormalization: per row of `inner` normalised elements, mean and variance in double, then
// y = (x - mean) / sqrt(var + epsilon) * scale + bias.
#include <cmath>

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class CpuLayerNorm final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    const Shape& s = inputs[0]->shape;
    QYOLO_ASSIGN_OR_RETURN(int64_t axis_attr, node.attr_int("axis", -1));
    QYOLO_ASSIGN_OR_RETURN(epsilon_, node.attr_float("epsilon", 1e-5f));
    QYOLO_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(axis_attr, static_cast<int64_t>(s.size())));
    rows_ = inner_ = 1;
    for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d)
      (d < axis ? rows_ : inner_) *= s[static_cast<size_t>(d)];
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const float* x = inputs[0]->data<float>();
    const Tensor* scale = inputs[1];
    const Tensor* bias = inputs.size() > 2 ? inputs[2] : nullptr;
    float* y = outputs[0]->data<float>();
    float* mean_out = outputs.size() > 1 && outputs[1] ? outputs[1]->data<float>() : nullptr;
    float* inv_out = outputs.size() > 2 && outputs[2] ? outputs[2]->data<float>() : nullptr;
    const float* sc = scale->data<float>();
    const float* bs = bias ? bias->data<float>() : nullptr;
    const bool sc_one = scale->numel() == 1, bs_one = bias && bias->numel() == 1;
    const int64_t inner = inner_;
#pragma omp parallel for schedule(static) if (rows_ * inner > (1 << 15))
    for (int64_t r = 0; r < rows_; ++r) {
      const float* xr = x + r * inner;
      double sum = 0, sq = 0;
      for (int64_t i = 0; i < inner; ++i) sum += xr[i];
      const double mean = sum / static_cast<double>(inner);
      for (int64_t i = 0; i < inner; ++i) sq += (xr[i] - mean) * (xr[i] - mean);
      const double inv = 1.0 / std::sqrt(sq / static_cast<double>(inner) + epsilon_);
      float* yr = y + r * inner;
      for (int64_t i = 0; i < inner; ++i) {
        const float v = static_cast<float>((xr[i] - mean) * inv) * sc[sc_one ? 0 : i];
        yr[i] = bs ? v + bs[bs_one ? 0 : i] : v;
      }
      if (mean_out) mean_out[r] = static_cast<float>(mean);
      if (inv_out) inv_out[r] = static_cast<float>(inv);
    }
    return Status::ok();
  }

 private:
  int64_t rows_ = 1, inner_ = 1;
  float epsilon_ = 1e-5f;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_layer_norm(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuLayerNorm>());
}

}  // namespace qyolo
