// qyolo — the project-wide int8 scale convention. Every other file refers here.
//
//   Symmetric int8, zero point 0:   real = scale * q
//   Activations calibrated TensorRT-style use q in [-127, 127] (never -128), so
//   scale = amax / 127, where amax is the calibrated threshold on |x|.
//   Quantization rounds to nearest, ties to even (TensorRT, ONNX QuantizeLinear, torch.round).
//
//   Asymmetric int8 (CPU INT8 engines with asymmetric activations, src/quant/precision_plan_pass.h):
//   real = scale * (q - zero_point), q in [-128, 127], for a tensor known to lie in [lo, threshold]
//   with lo > -threshold (a SiLU output: lo = -0.2785): scale = (threshold - lo) / 255 and lo maps
//   to -128. The grid spends no codes below lo, so the step is up to half the symmetric one.
//   Weights stay symmetric per channel.
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

// Asymmetric: round-half-even(real / scale) + zero_point, saturated to [-128, 127]; zero_point 0
// is the symmetric grid (saturated to [-127, 127], as quantize_int8).
inline int8_t quantize_int8(float real, float scale, int32_t zero_point) {
  if (zero_point == 0) return quantize_int8(real, scale);
  const float q = std::nearbyint(real / scale);
  if (std::isnan(q)) return static_cast<int8_t>(std::clamp(zero_point, -128, 127));
  return static_cast<int8_t>(std::clamp(q + static_cast<float>(zero_point), -128.f, 127.f));
}

inline float dequantize_int8(int8_t q, float scale, int32_t zero_point) {
  return scale * static_cast<float>(static_cast<int32_t>(q) - zero_point);
}

// The asymmetric grid of a tensor in [lo, threshold] (lo < 0 < threshold): scale and zero point as
// above. Returns false (keep the symmetric grid) where it would not be finer than threshold / 127.
inline bool asymmetric_grid(double lo, double threshold, float* scale, int32_t* zero_point) {
  if (!(threshold > 0.0) || !std::isfinite(threshold) || !(lo <= 0.0) || !std::isfinite(lo)) return false;
  const float s = static_cast<float>((threshold - lo) / 255.0);
  if (!(s > 0.f) || !(s < static_cast<float>(threshold / kInt8QMax))) return false;
  const double zp = -128.0 - std::nearbyint(lo / s);
  if (zp < -128.0 || zp > 127.0) return false;
  *scale = s;
  *zero_point = static_cast<int32_t>(zp);
  return true;
}

}  // namespace qyolo
