// BatchNormalization (inference): y = x * a[c] + b[c] with a = scale / sqrt(var + eps),
// b = B - mean * a (folded once in prepare() when the parameters are constants).
#include "ir/ops/batch_norm.h"

#include <cmath>

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class CpuBatchNorm final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    QYOLO_ASSIGN_OR_RETURN(attrs_, BatchNormAttrs::parse(node));
    const Shape& x = inputs[0]->shape;
    batch_ = x[0];
    channels_ = x[1];
    plane_ = 1;
    for (size_t d = 2; d < x.size(); ++d) plane_ *= x[d];
    mul_.resize(static_cast<size_t>(channels_));
    add_.resize(static_cast<size_t>(channels_));
    params_const_ = true;
    for (size_t i = 1; i < 5; ++i) params_const_ = params_const_ && inputs[i]->value.has_value();
    if (params_const_) fold(&*inputs[1]->value, &*inputs[2]->value, &*inputs[3]->value, &*inputs[4]->value);
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    if (!params_const_) fold(inputs[1], inputs[2], inputs[3], inputs[4]);
    const float* x = inputs[0]->data<float>();
    float* y = outputs[0]->data<float>();
    const int64_t planes = batch_ * channels_, plane = plane_;
#pragma omp parallel for schedule(static) if (planes * plane > (1 << 15))
    for (int64_t p = 0; p < planes; ++p) {
      const float m = mul_[static_cast<size_t>(p % channels_)], b = add_[static_cast<size_t>(p % channels_)];
      const float* xs = x + p * plane;
      float* ys = y + p * plane;
      for (int64_t i = 0; i < plane; ++i) ys[i] = xs[i] * m + b;
    }
    return Status::ok();
  }

 private:
  void fold(const Tensor* scale, const Tensor* bias, const Tensor* mean, const Tensor* var) {
    for (int64_t c = 0; c < channels_; ++c) {
      const float a = scale->data<float>()[c] / std::sqrt(var->data<float>()[c] + attrs_.epsilon);
      mul_[static_cast<size_t>(c)] = a;
      add_[static_cast<size_t>(c)] = bias->data<float>()[c] - mean->data<float>()[c] * a;
    }
  }

  BatchNormAttrs attrs_;
  int64_t batch_ = 0, channels_ = 0, plane_ = 0;
  bool params_const_ = false;
  std::vector<float> mul_, add_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_batch_norm(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuBatchNorm>());
}

}  // namespace qyolo
