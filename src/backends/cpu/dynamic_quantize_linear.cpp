// DynamicQuantizeLinear (ONNX spec, uint8):
//   scale = (max(0, max x) - min(0, min x)) / 255
//   zero_point = saturate(round(0 - min(0, min x) / scale))
//   y = saturate(round(x / scale) + zero_point), rounding half to even.
// An all-zero x has range 0: scale 0, zero point 0, y 0 (the spec's formula would divide by zero).
#include <algorithm>
#include <cmath>

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

// NaN (a NaN input, or inf / inf with an infinite range) -> 0: casting it would be undefined.
float saturate_u8(float v) {
  return v == v ? std::clamp(v, 0.f, 255.f) : 0.f;
}

class CpuDynamicQuantizeLinear final : public CpuKernel {
 public:
  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const Tensor& x = *inputs[0];
    const float* xs = x.data<float>();
    const int64_t n = x.numel();
    float lo = 0.f, hi = 0.f;
    for (int64_t i = 0; i < n; ++i) {
      lo = std::min(lo, xs[i]);
      hi = std::max(hi, xs[i]);
    }
    const float scale = (hi - lo) / 255.f;
    uint8_t* y = outputs[0]->data<uint8_t>();
    outputs[1]->data<float>()[0] = scale;
    if (!(scale > 0.f)) {
      std::fill(y, y + n, uint8_t{0});
      outputs[2]->data<uint8_t>()[0] = 0;
      return Status::ok();
    }
    const float zp = saturate_u8(std::nearbyint(-lo / scale));  // default rounding: half to even
    outputs[2]->data<uint8_t>()[0] = static_cast<uint8_t>(zp);
    for (int64_t i = 0; i < n; ++i) {
      const float q = std::nearbyint(xs[i] / scale);
      y[i] = static_cast<uint8_t>(saturate_u8((q == q ? q : 0.f) + zp));  // NaN: the zero point
    }
    return Status::ok();
  }
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_dynamic_quantize_linear(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuDynamicQuantizeLinear>());
}

}  // namespace qyolo
