// qyolo — the project-wide int8 scale convention. Every other file refers here.
//
//   Symmetric int8, zero point 0:   real = scale * q
//   Activations calibrated TensorRT-style use q in [-127, 127] (never -128), so
//   scale = amax / 127, where amax is the calibrated threshold on |x|.
//   Quantization rounds to nearest, ties to even (TensorRT, ONNX QuantizeLinear, torch.round).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace qyolo {

inline constexpr int kInt8QMax = 127;

// Scale used when calibration saw only zeros (amax == 0): small but normal and finite, so q = 0
// stays exact and dividing by the scale never produces inf/NaN.
inline constexpr float kMinScale = 1e-8f;

// amax / 127 in double, then rounded once to float. amax <= 0 or non-finite -> kMinScale.
inline float scale_from_amax(double amax) {
  if (!(amax > 0.0) || !std::isfinite(amax)) return kMinScale;
  const float s = static_cast<float>(amax / kInt8QMax);
  return s > 0.0f ? s : kMinScale;  // guards float underflow of subnormal amax
}

// A scale read from a file (calibration cache, PPQ json, engine) must be a positive normal float:
// 0 and -0 make every q 0 and dividing by them inf/NaN, a denormal overflows 1/scale, inf/NaN
// poison everything downstream. scale_from_amax never produces anything else.
inline bool is_valid_scale(float scale) {
  return std::isnormal(scale) && scale > 0.0f;
}

inline double amax_from_scale(float scale) {
  return static_cast<double>(scale) * kInt8QMax;
}

// round-half-even(real / scale), saturated to [-127, 127]. scale must be > 0.
inline int8_t quantize_int8(float real, float scale) {
  const float q = std::nearbyint(real / scale);  // default FE_TONEAREST: ties to even
  if (std::isnan(q)) return 0;
  return static_cast<int8_t>(std::clamp(q, static_cast<float>(-kInt8QMax), static_cast<float>(kInt8QMax)));
}

inline float dequantize_int8(int8_t q, float scale) {
  return scale * static_cast<float>(q);
}

}  // namespace qyolo
