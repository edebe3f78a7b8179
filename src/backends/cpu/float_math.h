// CPU backend: float helpers shared by kernels that must round identically (Sigmoid and the fused
// YOLO decode use the same exp, so the fused graph equals the unfused one bit for bit).
#pragma once

#include <cstdint>
#include <cstring>

namespace qyolo::cpu {

// Ternary min/max compile to minps/maxps (std::fmin/fmax would not vectorise without -ffast-math).
inline float clampf(float v, float lo, float hi) {
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

// exp(x) for x in [lo, hi] ~ [-87.3, 88]: Cody-Waite range reduction x = n ln2 + r, a degree-6
// polynomial for exp(r) (Cephes expf) and 2^n built in the exponent bits. Outside the range the
// result saturates to exp(lo) / exp(hi), which is what the callers (sigmoid) need.
inline float exp_poly(float x, float lo, float hi) {
  x = clampf(x, lo, hi);
  const float t = x * 1.44269504088896341f;
  const float n = (t + 12582912.f) - 12582912.f;  // round to nearest (|t| < 2^22)
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.f;
  // A NaN x stays NaN (y is NaN); n is not cast then (a NaN to int conversion is undefined).
  const int32_t bits = ((n == n ? static_cast<int32_t>(n) : 0) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

}  // namespace qyolo::cpu
