#include "backends/cpu/int8_epilogue.h"

#include <immintrin.h>

// GCC 12 warns inside its own AVX-512 headers (_mm512_undefined_*): a known false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <algorithm>
#include <cmath>

#include "backends/cpu/float_math.h"
#include "backends/cpu/int8_epilogue_internal.h"

namespace qyolo::cpu {

namespace {

// NaN -> 0 (the zero point), as quantize_int8 (quant_params.h); zp != 0: the asymmetric grid.
float clamp_round(float t, int32_t zp = 0) {
  const float r = std::nearbyint(t);
  if (zp == 0) return r != r ? 0.f : std::min(127.f, std::max(-127.f, r));
  return r != r ? static_cast<float>(zp) : std::min(127.f, std::max(-128.f, r + static_cast<float>(zp)));
}

// The float path's activation, exactly (expf), plus the residual.
float exact_activation(float v, const int8_t* r, int64_t j, float s_r, bool silu) {
  float out = silu ? v / (1.0f + std::exp(-v)) : 1.0f / (1.0f + std::exp(-v));
  if (r) out += s_r * static_cast<float>(r[j]);
  return out;
}

}  // namespace

namespace int8_detail {

void quantize_scalar(const float* x, float scale, int32_t zp, int8_t* q, int64_t n) {
  // x / scale, not x * (1 / scale): the rounding of ONNX QuantizeLinear (ONNX Runtime, TensorRT).
  for (int64_t i = 0; i < n; ++i) q[i] = static_cast<int8_t>(clamp_round(x[i] / scale, zp));
}

void quantize_3planes_scalar(const float* x, int64_t plane, float scale, int8_t* q, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < 3; ++c) q[3 * i + c] = static_cast<int8_t>(clamp_round(x[c * plane + i] / scale));
}

void requantize_scalar(const float* v, const int8_t* r, float s_r, float s_y, int32_t zp, bool silu,
                       int8_t* q, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    float y = (silu ? v[j] : 1.f) / (1.f + exp_poly(-v[j], -88.f, 88.f));  // Cephes' expf polynomial
    if (r) y += s_r * static_cast<float>(r[j]);
    const float t = y / s_y;
    if (std::fabs(std::fabs(t - std::nearbyint(t)) - 0.5f) < kBoundaryBand)
      q[j] = static_cast<int8_t>(clamp_round(exact_activation(v[j], r, j, s_r, silu) / s_y, zp));
    else
      q[j] = static_cast<int8_t>(clamp_round(t, zp));
  }
}

void activation_float_scalar(const float* v, const float* r, bool silu, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float out = silu ? v[i] / (1.0f + std::exp(-v[i])) : 1.0f / (1.0f + std::exp(-v[i]));
    if (r) out += r[i];
    y[i] = out;
  }
}

// The reference sequence: activation_float, the multiplier, quantize (the same per element).
void activation_quantize_scalar(const float* v, const float* r, const float* m_ext, int64_t channels,
                                int64_t first, float s_y, int32_t zp, bool silu, int8_t* q, int64_t n) {
  int64_t c = first % channels;
  for (int64_t i = 0; i < n; ++i, c = c + 1 == channels ? 0 : c + 1) {
    float y;
    activation_float_scalar(v + i, r ? r + i : nullptr, silu, &y, 1);
    if (m_ext) y *= m_ext[c];
    quantize_scalar(&y, s_y, zp, q + i, 1);
  }
}

}  // namespace int8_detail

namespace {

using namespace int8_detail;

#define QYOLO_AVX512 __attribute__((target("avx512f")))

QYOLO_AVX512 inline __m512 round_nearest(__m512 t) {
  return _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// 16 integral floats -> 16 int8: + zp, clamped to [lowest, 127], NaN -> zp.
QYOLO_AVX512 inline __m128i to_int8(__m512 rounded, const Grid& g) {
  rounded = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(rounded, rounded, _CMP_ORD_Q), rounded);
  rounded = _mm512_add_ps(rounded, _mm512_set1_ps(g.zp));
  const __m512 c = _mm512_min_ps(_mm512_set1_ps(127.f), _mm512_max_ps(_mm512_set1_ps(g.lowest), rounded));
  return _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(c));
}
QYOLO_AVX512 inline void store_int8(int8_t* q, __m512 rounded, const Grid& g) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), to_int8(rounded, g));
}
// The same for values known finite: + zp, min 127 before the conversion, the saturating narrowing
// and a max after it.
QYOLO_AVX512 inline __m128i to_int8_finite(__m512 rounded, const Grid& g) {
  const __m512 t = _mm512_min_ps(_mm512_add_ps(rounded, _mm512_set1_ps(g.zp)), _mm512_set1_ps(127.f));
  return _mm_max_epi8(_mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(t)),
                      _mm_set1_epi8(static_cast<char>(static_cast<int>(g.lowest))));
}

// to_int8_finite for loops specialised on the grid: on an asymmetric one (zero point != 0) the
// lowest code is -128, which the saturating narrowing already gives, so the max is left out.
template <bool ASYM>
QYOLO_AVX512 inline __m128i to_int8_finite_on(__m512 rounded, const Grid& g) {
  if constexpr (ASYM)
    return _mm512_cvtsepi32_epi8(
        _mm512_cvtps_epi32(_mm512_min_ps(_mm512_add_ps(rounded, _mm512_set1_ps(g.zp)), _mm512_set1_ps(127.f))));
  return to_int8_finite(rounded, g);
}

// Used as 1 + poly_exp16(x) only (see the end).
QYOLO_AVX512 inline __m512 poly_exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_set1_ps(88.f), _mm512_max_ps(_mm512_set1_ps(-88.f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504f), _mm512_set1_ps(0.5f)),
                                        _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  // p * 2^n by scalef (one instruction for the exponent bits' three): the same product for n >=
  // -126; at n = -127 the exponent bits made 0 and scalef makes p 2^-127 (< 2^-126): both vanish
  // in the callers' 1 + exp, so their floats do not change.
  return _mm512_scalef_ps(p, n);
}

// x * (1 / s) is within 2 ulps of x / s (under 2e-5 for |x / s| < 128; beyond, both saturate):
// it rounds the same unless x / s lies within 1e-4 of a half-integer, where the vector is
// divided instead (rare: the division's throughput is what this saves).
QYOLO_AVX512 inline __m512 quantize16(const float* x, __m512 s, __m512 inv) {
  const __m512 v = _mm512_loadu_ps(x);
  const __m512 t = _mm512_mul_ps(v, inv);
  const __m512 rounded = round_nearest(t);
  if (_mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(t, rounded)), _mm512_set1_ps(0.5f - 1e-4f), _CMP_NLE_UQ))
    return round_nearest(_mm512_div_ps(v, s));
  return rounded;
}

QYOLO_AVX512 void quantize_avx512(const float* x, float scale, int32_t zp, int8_t* q, int64_t n) {
  const __m512 s = _mm512_set1_ps(scale), inv = _mm512_set1_ps(1.f / scale);
  const Grid g(zp);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) store_int8(q + i, quantize16(x + i, s, inv), g);
  quantize_scalar(x + i, scale, zp, q + i, n - i);
}

QYOLO_AVX512 void quantize_3planes_avx512(const float* x, int64_t plane, float scale, int8_t* q, int64_t n) {
  const __m512 s = _mm512_set1_ps(scale), inv = _mm512_set1_ps(1.f / scale);
  const Grid g(0);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i ch[3] = {to_int8(quantize16(x + i, s, inv), g),
                           to_int8(quantize16(x + plane + i, s, inv), g),
                           to_int8(quantize16(x + 2 * plane + i, s, inv), g)};
    store_interleaved3(ch, q + 3 * i);
  }
  quantize_3planes_scalar(x + i, plane, scale, q + 3 * i, n - i);
}

// exp(-v) to the polynomial's accuracy, for the requantisation only (its band absorbs the
// difference from expf): poly_exp16's steps on r' = -r (fnmadd in place of fmadd, bit for bit
// the same polynomial), 2^n by scalef. v is clamped to [-88, 88]: above 88 exp(-v) vanishes in
// 1 + exp alike, and a huge v (from ~1e15) would leave the reduction's r unbounded, p infinite
// and scalef(p, n) infinite too (a wrong 0 for SiLU's 127). NaN is kept (min / max return their
// second operand then), so that the lane takes the exact formula (a sigmoid's t would not be NaN).
QYOLO_AVX512 inline __m512 exp_neg16(__m512 v) {
  v = _mm512_min_ps(_mm512_set1_ps(88.f), _mm512_max_ps(_mm512_set1_ps(-88.f), v));
  const __m512 n = round_nearest(_mm512_mul_ps(v, _mm512_set1_ps(-1.44269504f)));
  __m512 rn = _mm512_fmadd_ps(n, _mm512_set1_ps(0.693359375f), v);  // -r
  rn = _mm512_fmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), rn);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fnmadd_ps(p, rn, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fnmadd_ps(p, rn, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fnmadd_ps(p, rn, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fnmadd_ps(p, rn, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fnmadd_ps(p, rn, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, rn), rn, _mm512_sub_ps(_mm512_set1_ps(1.f), rn));
  return _mm512_scalef_ps(p, n);
}

// exp(-x) for the decision only: 2^z, z = -x log2(e), with a degree-4 polynomial for 2^f on
// [-1/2, 1/2] (relative error 2.8e-6) where poly_exp16 runs Cody-Waite and Cephes' degree 6.
QYOLO_AVX512 inline __m512 exp_neg_fast16(__m512 x) {
  const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(-1.44269504f));
  const __m512 n = round_nearest(z);
  const __m512 f = _mm512_sub_ps(z, n);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(0.00958284429f), f, _mm512_set1_ps(0.055906439f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.240240989f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.693124191f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}

// requantize_avx512's loop, one copy per activation, residual presence and grid (no tests inside
// it; the grid by value, so the int8 stores cannot alias it and its constants stay in registers). Without a residual the decision is activation_quantize_avx512's: exp_neg_fast16 (act within
// 6.7e-6 of the polynomial's, relatively, which is within 2 ulps of expf's), decided where t lies
// farther than 2e-5 |t| + 3e-5 from a half-integer and x > -87 (the rest: the exact formula).
// With a residual the first term may exceed the sum by far: the full polynomial and an absolute
// band of 1e-3, as before.
template <bool SILU, bool RES, bool ASYM>
QYOLO_AVX512 int64_t requantize_loop(const float* v, const int8_t* r, float s_r, float s_y, Grid g, int8_t* q,
                                     int64_t n) {
  const __m512 one = _mm512_set1_ps(1.f), edge = _mm512_set1_ps(0.5f - kBoundaryBand);
  // (x / s_y) / (1 + e) and r * (s_r / s_y) instead of (x / (1 + e) + s_r r) / s_y: within 1e-4
  // of it for |y / s_y| <= 128, far inside the band that sends an element to the exact formula.
  const __m512 inv_sy = _mm512_set1_ps(1.f / s_y), sr = _mm512_set1_ps(s_r / s_y);
  const __m512 rel = _mm512_set1_ps(-2e-5f), near_edge = _mm512_set1_ps(0.5f - 3e-5f);
  const int32_t zero_point = static_cast<int32_t>(g.zp);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 x = _mm512_loadu_ps(v + j);
    const __m512 e = RES ? exp_neg16(x) : exp_neg_fast16(x);
    __m512 t = _mm512_div_ps(SILU ? _mm512_mul_ps(x, inv_sy) : inv_sy, _mm512_add_ps(one, e));
    if constexpr (RES) {
      const __m128i r8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r + j));
      t = _mm512_fmadd_ps(sr, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(r8)), t);
    }
    const __m512 rounded = round_nearest(t);
    // Clamped to 127 above before the conversion, to the lowest code after the saturating
    // narrowing (NaN lanes are recomputed below).
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + j), to_int8_finite_on<ASYM>(rounded, g));
    // Within the band of a rounding boundary, or NaN (unordered): the exact formula decides.
    const __m512 dist = _mm512_abs_ps(_mm512_sub_ps(t, rounded));
    __mmask16 redo;
    if constexpr (RES)
      redo = _mm512_cmp_ps_mask(dist, edge, _CMP_NLE_UQ);
    else
      redo = static_cast<__mmask16>(~_mm512_mask_cmp_ps_mask(
          _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.f), _CMP_GT_OQ), dist,
          _mm512_fmadd_ps(_mm512_abs_ps(t), rel, near_edge), _CMP_LT_OQ));
    for (__mmask16 m = redo; m; m &= static_cast<__mmask16>(m - 1)) {
      const int64_t k = j + __builtin_ctz(m);
      q[k] = static_cast<int8_t>(clamp_round(exact_activation(v[k], RES ? r : nullptr, k, s_r, SILU) / s_y,
                                             zero_point));
    }
  }
  return j;
}

QYOLO_AVX512 void requantize_avx512(const float* v, const int8_t* r, float s_r, float s_y, int32_t zp,
                                    bool silu, int8_t* q, int64_t n) {
  const Grid g(zp);
  using Loop = int64_t (*)(const float*, const int8_t*, float, float, Grid, int8_t*, int64_t);
  static constexpr Loop kLoops[2][2][2] = {
      {{requantize_loop<false, false, false>, requantize_loop<false, false, true>},
       {requantize_loop<false, true, false>, requantize_loop<false, true, true>}},
      {{requantize_loop<true, false, false>, requantize_loop<true, false, true>},
       {requantize_loop<true, true, false>, requantize_loop<true, true, true>}}};
  const int64_t j = kLoops[silu][r != nullptr][zp != 0](v, r, s_r, s_y, g, q, n);
  requantize_scalar(v + j, r ? r + j : nullptr, s_r, s_y, zp, silu, q + j, n - j);
}

QYOLO_AVX512 void activation_float_avx512(const float* v, const float* r, bool silu, float* y, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_loadu_ps(v + i);
    __m512 out =
        _mm512_div_ps(silu ? x : one, _mm512_add_ps(one, poly_exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
    if (r) out = _mm512_add_ps(out, _mm512_loadu_ps(r + i));
    _mm512_storeu_ps(y + i, out);
  }
  activation_float_scalar(v + i, r ? r + i : nullptr, silu, y + i, n - i);
}

// activation_float_avx512, the multiplier and quantize_avx512 on 16 values in registers (the
// same operations in the same order): the integers activation_quantize defines.
QYOLO_AVX512 inline void activation_quantize16(const float* v, const float* r, const float* m, __m512 s,
                                               __m512 inv, const Grid& g, bool silu, int8_t* q) {
  const __m512 one = _mm512_set1_ps(1.f), x = _mm512_loadu_ps(v);
  __m512 y =
      _mm512_div_ps(silu ? x : one, _mm512_add_ps(one, poly_exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
  if (r) y = _mm512_add_ps(y, _mm512_loadu_ps(r));
  if (m) y = _mm512_mul_ps(y, _mm512_loadu_ps(m));
  const __m512 t = _mm512_mul_ps(y, inv);
  const __m512 rounded = round_nearest(t);
  if (_mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(t, rounded)), _mm512_set1_ps(0.5f - 1e-4f),
                         _CMP_NLE_UQ)) {
    store_int8(q, round_nearest(_mm512_div_ps(y, s)), g);  // next to a half-integer, or NaN
  } else {
    // No NaN or infinity here (their t - rounded is NaN): to_int8's clamps as a min before the
    // conversion, and a saturating narrowing and a max after it.
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q), to_int8_finite(rounded, g));
  }
}

// The listed vectors (offsets into v) by the exact sequence. A function of its own, not a lambda:
// a lambda is not compiled for AVX-512 (clang refuses to pass it __m512 values).
QYOLO_AVX512 void recompute_exactly(const int64_t* pending, int np, const float* v, const float* r,
                                    const float* m_ext, int64_t channels, int64_t first, __m512 s, __m512 inv,
                                    const Grid& g, bool silu, int8_t* q) {
  for (int k = 0; k < np; ++k) {
    const int64_t j = pending[k];
    activation_quantize16(v + j, r ? r + j : nullptr, m_ext ? m_ext + (first + j) % channels : nullptr, s, inv,
                          g, silu, q + j);
  }
}

// The loop of activation_quantize_avx512 (see there) with a multiplier (MULT) or a residual (RES)
// or neither, one copy per activation, operand and grid so that the loop carries no test of them.
// Returns the values done (whole vectors); `c` (the channel of value i) is advanced with them.
template <bool SILU, bool MULT, bool RES, bool ASYM>
QYOLO_AVX512 int64_t decide_fast(const float* v, const float* r, const float* m_ext, int64_t channels,
                                 int64_t first, int64_t& c, float s_y, Grid g, int8_t* q, int64_t n) {
  static_assert(!(MULT && RES), "a multiplier and a residual together take the exact loop");
  const __m512 one = _mm512_set1_ps(1.f), s = _mm512_set1_ps(s_y), inv = _mm512_set1_ps(1.f / s_y);
  const __m512 rel = _mm512_set1_ps(-2e-5f), edge = _mm512_set1_ps(0.5f - 3e-5f);
  constexpr int kPending = 64;
  int64_t pending[kPending];  // vectors to recompute exactly
  int np = 0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_loadu_ps(v + i);
    const __m512 a = _mm512_div_ps(SILU ? x : one, _mm512_add_ps(one, exp_neg_fast16(x)));
    __m512 y = a;
    if constexpr (RES) y = _mm512_add_ps(a, _mm512_loadu_ps(r + i));
    if constexpr (MULT) {
      y = _mm512_mul_ps(y, _mm512_loadu_ps(m_ext + c));
      next_channel(c, channels, 16);
    }
    const __m512 t = _mm512_mul_ps(y, inv);
    const __m512 rounded = round_nearest(t);
    // The band grows with |t|, and with a residual also with the activation's part of it (its
    // error is relative to that part, which may exceed the sum by far).
    const __m512 at = RES ? _mm512_add_ps(_mm512_abs_ps(t), _mm512_abs_ps(_mm512_mul_ps(a, inv)))
                          : _mm512_abs_ps(t);
    // Saturated values take the same test (a saturated value next to a half-integer is recomputed,
    // to the same saturated code: rare, and cheaper than testing every vector for saturation).
    const __mmask16 ok =
        _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.f), _CMP_GT_OQ),
                                _mm512_abs_ps(_mm512_sub_ps(t, rounded)), _mm512_fmadd_ps(at, rel, edge),
                                _CMP_LT_OQ);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), to_int8_finite_on<ASYM>(rounded, g));
    pending[np] = i;
    np += ok != 0xFFFF;
    if (np == kPending) {
      recompute_exactly(pending, np, v, RES ? r : nullptr, MULT ? m_ext : nullptr, channels, first, s, inv, g,
                        SILU, q);
      np = 0;
    }
  }
  recompute_exactly(pending, np, v, RES ? r : nullptr, MULT ? m_ext : nullptr, channels, first, s, inv, g, SILU,
                    q);
  return i;
}

// Each 16 values are first decided with exp_neg_fast16. Over every float x in (-87, 88] its
// act(x) = x / (1 + e) (or 1 / (1 + e)) is within 6.7e-6 of activation_float's, relatively (checked
// exhaustively, docs/cpu-int8.md), and equal to it above 88; the multiplier and 1 / s_y scale both
// alike (a few ulps more), a residual is added alike (one rounding of the sum). So where t = y / s_y
// lies farther than 2e-5 (|t| + |act / s_y|) + 3e-5 from a half-integer (3e-5: where quantize
// divides instead, x * (1 / s) and x / s round alike beyond 2 ulps of a half-integer; |act / s_y|
// only with a residual), the exact path's integer is round(t) clamped (+ the zero point). Other
// vectors (also x <= -87, NaN, infinities) are listed and recomputed exactly after the loop, so
// the loop does not branch on them.
QYOLO_AVX512 void activation_quantize_avx512(const float* v, const float* r, const float* m_ext,
                                             int64_t channels, int64_t first, float s_y, int32_t zp,
                                             bool silu, int8_t* q, int64_t n) {
  const __m512 s = _mm512_set1_ps(s_y), inv = _mm512_set1_ps(1.f / s_y);
  const Grid g(zp);
  int64_t c = first % channels, i = 0;
  if (r && m_ext) {  // both (no caller): the exact path throughout
    for (; i + 16 <= n; i += 16) {
      activation_quantize16(v + i, r + i, m_ext + c, s, inv, g, silu, q + i);
      next_channel(c, channels, 16);
    }
  } else {
    // One copy of the loop per activation, operand (multiplier, residual or neither) and grid.
    using Fast = int64_t (*)(const float*, const float*, const float*, int64_t, int64_t, int64_t&, float,
                             Grid, int8_t*, int64_t);
    static constexpr Fast kFast[2][3][2] = {
        {{decide_fast<false, false, false, false>, decide_fast<false, false, false, true>},
         {decide_fast<false, true, false, false>, decide_fast<false, true, false, true>},
         {decide_fast<false, false, true, false>, decide_fast<false, false, true, true>}},
        {{decide_fast<true, false, false, false>, decide_fast<true, false, false, true>},
         {decide_fast<true, true, false, false>, decide_fast<true, true, false, true>},
         {decide_fast<true, false, true, false>, decide_fast<true, false, true, true>}}};
    const int operand = m_ext ? 1 : r ? 2 : 0;
    i = kFast[silu][operand][zp != 0](v, r, m_ext, channels, first, c, s_y, g, q, n);
  }
  activation_quantize_scalar(v + i, r ? r + i : nullptr, m_ext, channels, c, s_y, zp, silu, q + i, n - i);
}

}  // namespace

Int8Epilogue scalar_int8_epilogue() {
  return {quantize_scalar,         requantize_scalar,          activation_float_scalar,
          quantize_3planes_scalar, activation_quantize_scalar, "scalar"};
}

std::vector<Int8Epilogue> int8_epilogues() {
  std::vector<Int8Epilogue> out = {scalar_int8_epilogue()};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) out.push_back(avx2_int8_epilogue());
  if (__builtin_cpu_supports("avx512f"))
    out.push_back({quantize_avx512, requantize_avx512, activation_float_avx512, quantize_3planes_avx512,
                   activation_quantize_avx512, "avx512"});
  return out;
}

Int8Epilogue best_int8_epilogue() {
  return int8_epilogues().back();
}

void scale_channels(float* y, int64_t outer, int64_t channels, int64_t inner, const float* m) {
  const int64_t rows = outer * channels;
#pragma omp parallel for schedule(static) if (rows * inner > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float k = m[r % channels];
    float* row = y + r * inner;
    for (int64_t i = 0; i < inner; ++i) row[i] *= k;
  }
}

}  // namespace qyolo::cpu
