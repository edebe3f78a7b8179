// The INT8 epilogues (int8_epilogue.h) on AVX2 + FMA, 8 floats a vector, for CPUs without AVX-512:
// the AVX-512 loops of int8_epilogue.cpp step for step (their comments say why each band holds),
// with what AVX2 lacks written out: compares and movemask for the masks, 2^n built in the exponent
// bits for scalef (pow2i), two packs for the saturating 32 -> 8 bit narrowing. Every float that
// decides an integer is the AVX-512 code's; each element the decision leaves takes the scalar
// function itself. Unlike AVX-512, activation_float is the scalar one (expf), and
// activation_quantize gives its integers: every function here gives the scalar path's results, on
// any input (see avx2_int8_epilogue).
// Compiled with -ffp-contract=off (CMakeLists.txt): only the FMAs written here are fused.
#include <immintrin.h>

#include "backends/cpu/int8_epilogue_internal.h"

namespace qyolo::cpu {

namespace {

using namespace int8_detail;

#define QYOLO_AVX2 __attribute__((target("avx2,fma")))

QYOLO_AVX2 inline __m256 round_nearest(__m256 t) {
  return _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

QYOLO_AVX2 inline __m256 abs8(__m256 x) {
  return _mm256_andnot_ps(_mm256_set1_ps(-0.f), x);
}

// int32 lanes a0..a7, b0..b7 -> 16 int8, saturating (cvtsepi32_epi8's): packed within the 128-bit
// halves, which keeps the order (a 256-bit packs would interleave the halves).
QYOLO_AVX2 inline __m128i narrow(__m256i a, __m256i b) {
  return _mm_packs_epi16(_mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1)),
                         _mm_packs_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1)));
}

QYOLO_AVX2 inline void store8(int8_t* q, __m128i low) {
  _mm_storel_epi64(reinterpret_cast<__m128i*>(q), low);
}

// 8 integral floats -> int32 lanes + zp, clamped to [lowest, 127], NaN -> zp (to_int8 unnarrowed).
QYOLO_AVX2 inline __m256i to_int32(__m256 rounded, const Grid& g) {
  rounded = _mm256_and_ps(rounded, _mm256_cmp_ps(rounded, rounded, _CMP_ORD_Q));
  rounded = _mm256_add_ps(rounded, _mm256_set1_ps(g.zp));
  return _mm256_cvtps_epi32(
      _mm256_min_ps(_mm256_set1_ps(127.f), _mm256_max_ps(_mm256_set1_ps(g.lowest), rounded)));
}

QYOLO_AVX2 inline void store_int8(int8_t* q, __m256 rounded, const Grid& g) {
  const __m256i i = to_int32(rounded, g);
  store8(q, narrow(i, i));
}

// The same for values known finite (the low 8 bytes): + zp, min 127 before the conversion, the
// saturating narrowing and, on the symmetric grid, a max after it (-128 is the narrowing's own floor).
template <bool ASYM>
QYOLO_AVX2 inline __m128i to_int8_finite_on(__m256 rounded, const Grid& g) {
  const __m256i i =
      _mm256_cvtps_epi32(_mm256_min_ps(_mm256_add_ps(rounded, _mm256_set1_ps(g.zp)), _mm256_set1_ps(127.f)));
  const __m128i b = narrow(i, i);
  if constexpr (ASYM) return b;
  return _mm_max_epi8(b, _mm_set1_epi8(static_cast<char>(static_cast<int>(g.lowest))));
}

// 2^n for integral n <= 127 from the exponent bits, for scalef: the same for n >= -126; below, 0 (n
// under -127, or NaN, gives -127 here: exponent bits 0) where scalef gives p 2^n < 2^-126 (p < 2),
// which vanishes alike in the callers' 1 + exp (1 + e rounds to 1 for e < 2^-24).
QYOLO_AVX2 inline __m256 pow2i(__m256 n) {
  const __m256i k = _mm256_max_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(-127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

// exp_neg16 on 8 lanes (exp(-v) for the requantisation with a residual), v clamped alike (so n in
// [-127, 127]) and NaN kept.
QYOLO_AVX2 inline __m256 exp_neg8(__m256 v) {
  v = _mm256_min_ps(_mm256_set1_ps(88.f), _mm256_max_ps(_mm256_set1_ps(-88.f), v));
  const __m256 n = round_nearest(_mm256_mul_ps(v, _mm256_set1_ps(-1.44269504f)));
  __m256 rn = _mm256_fmadd_ps(n, _mm256_set1_ps(0.693359375f), v);  // -r
  rn = _mm256_fmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), rn);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fnmadd_ps(p, rn, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fnmadd_ps(p, rn, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fnmadd_ps(p, rn, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fnmadd_ps(p, rn, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fnmadd_ps(p, rn, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, rn), rn, _mm256_sub_ps(_mm256_set1_ps(1.f), rn));
  return _mm256_mul_ps(p, pow2i(n));
}

// exp_neg_fast16 on 8 lanes (exp(-x) for the decision only; x <= -87, where n may exceed 127, is
// always left to the scalar function).
QYOLO_AVX2 inline __m256 exp_neg_fast8(__m256 x) {
  const __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(-1.44269504f));
  const __m256 n = round_nearest(z);
  const __m256 f = _mm256_sub_ps(z, n);
  __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(0.00958284429f), f, _mm256_set1_ps(0.055906439f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0.240240989f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0.693124191f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f));
  return _mm256_mul_ps(p, pow2i(n));
}

// quantize16 on 8 lanes: x * (1 / s), or x / s where a lane lies within 1e-4 of a half-integer.
QYOLO_AVX2 inline __m256 quantize8(const float* x, __m256 s, __m256 inv) {
  const __m256 v = _mm256_loadu_ps(x);
  const __m256 t = _mm256_mul_ps(v, inv);
  const __m256 rounded = round_nearest(t);
  if (_mm256_movemask_ps(
          _mm256_cmp_ps(abs8(_mm256_sub_ps(t, rounded)), _mm256_set1_ps(0.5f - 1e-4f), _CMP_NLE_UQ)))
    return round_nearest(_mm256_div_ps(v, s));
  return rounded;
}

QYOLO_AVX2 void quantize_avx2(const float* x, float scale, int32_t zp, int8_t* q, int64_t n) {
  const __m256 s = _mm256_set1_ps(scale), inv = _mm256_set1_ps(1.f / scale);
  const Grid g(zp);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) store_int8(q + i, quantize8(x + i, s, inv), g);
  quantize_scalar(x + i, scale, zp, q + i, n - i);
}

// 16 pixels a step (two vectors a channel), so that the AVX-512 code's 16-byte interleave serves.
QYOLO_AVX2 void quantize_3planes_avx2(const float* x, int64_t plane, float scale, int8_t* q, int64_t n) {
  const __m256 s = _mm256_set1_ps(scale), inv = _mm256_set1_ps(1.f / scale);
  const Grid g(0);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m128i ch[3];
    for (int c = 0; c < 3; ++c) {
      const float* xc = x + c * plane + i;
      ch[c] = narrow(to_int32(quantize8(xc, s, inv), g), to_int32(quantize8(xc + 8, s, inv), g));
    }
    store_interleaved3(ch, q + 3 * i);
  }
  quantize_3planes_scalar(x + i, plane, scale, q + 3 * i, n - i);
}

// requantize_loop (int8_epilogue.cpp) on 8 lanes: one copy per activation, residual presence and
// grid; the same decision (the fast exp without a residual, the polynomial and the 1e-3 band with).
template <bool SILU, bool RES, bool ASYM>
QYOLO_AVX2 int64_t requantize_loop(const float* v, const int8_t* r, float s_r, float s_y, Grid g, int8_t* q,
                                   int64_t n) {
  const __m256 one = _mm256_set1_ps(1.f), edge = _mm256_set1_ps(0.5f - kBoundaryBand);
  const __m256 inv_sy = _mm256_set1_ps(1.f / s_y), sr = _mm256_set1_ps(s_r / s_y);
  const __m256 rel = _mm256_set1_ps(-2e-5f), near_edge = _mm256_set1_ps(0.5f - 3e-5f);
  const int32_t zero_point = static_cast<int32_t>(g.zp);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 x = _mm256_loadu_ps(v + j);
    const __m256 e = RES ? exp_neg8(x) : exp_neg_fast8(x);
    __m256 t = _mm256_div_ps(SILU ? _mm256_mul_ps(x, inv_sy) : inv_sy, _mm256_add_ps(one, e));
    if constexpr (RES) {
      const __m128i r8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r + j));
      t = _mm256_fmadd_ps(sr, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(r8)), t);
    }
    const __m256 rounded = round_nearest(t);
    store8(q + j, to_int8_finite_on<ASYM>(rounded, g));
    // Within the band of a rounding boundary, or NaN (unordered): requantize_scalar decides (the
    // exact formula near a boundary), so such lanes (x <= -87, huge or NaN values too) are the
    // scalar path's whatever the vector arithmetic did with them.
    const __m256 dist = abs8(_mm256_sub_ps(t, rounded));
    int redo;
    if constexpr (RES)
      redo = _mm256_movemask_ps(_mm256_cmp_ps(dist, edge, _CMP_NLE_UQ));
    else
      redo = ~_mm256_movemask_ps(
                 _mm256_and_ps(_mm256_cmp_ps(x, _mm256_set1_ps(-87.f), _CMP_GT_OQ),
                               _mm256_cmp_ps(dist, _mm256_fmadd_ps(abs8(t), rel, near_edge), _CMP_LT_OQ))) &
             0xFF;
    for (; redo; redo &= redo - 1) {
      const int64_t k = j + __builtin_ctz(static_cast<unsigned>(redo));
      requantize_scalar(v + k, RES ? r + k : nullptr, s_r, s_y, zero_point, SILU, q + k, 1);
    }
  }
  return j;
}

QYOLO_AVX2 void requantize_avx2(const float* v, const int8_t* r, float s_r, float s_y, int32_t zp, bool silu,
                                int8_t* q, int64_t n) {
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

// decide_fast (int8_epilogue.cpp, where the bands are argued) on 8 lanes, for the scalar
// sequence's integers (activation_float here is the scalar one, expf): the band holds against
// them as against the polynomial's (which is within 2 ulps of expf), and the lanes it leaves take
// that sequence itself, one by one (rare: no list of vectors to recompute).
template <bool SILU, bool MULT, bool RES, bool ASYM>
QYOLO_AVX2 int64_t decide_fast(const float* v, const float* r, const float* m_ext, int64_t channels,
                               int64_t first, int64_t& c, float s_y, int32_t zp, int8_t* q, int64_t n) {
  static_assert(!(MULT && RES), "a multiplier and a residual together take the exact loop");
  const Grid g(zp);
  const __m256 one = _mm256_set1_ps(1.f), inv = _mm256_set1_ps(1.f / s_y);
  const __m256 rel = _mm256_set1_ps(-2e-5f), edge = _mm256_set1_ps(0.5f - 3e-5f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(v + i);
    const __m256 a = _mm256_div_ps(SILU ? x : one, _mm256_add_ps(one, exp_neg_fast8(x)));
    __m256 y = a;
    if constexpr (RES) y = _mm256_add_ps(a, _mm256_loadu_ps(r + i));
    if constexpr (MULT) {
      y = _mm256_mul_ps(y, _mm256_loadu_ps(m_ext + c));
      next_channel(c, channels, 8);
    }
    const __m256 t = _mm256_mul_ps(y, inv);
    const __m256 rounded = round_nearest(t);
    const __m256 at = RES ? _mm256_add_ps(abs8(t), abs8(_mm256_mul_ps(a, inv))) : abs8(t);
    const int ok = _mm256_movemask_ps(_mm256_and_ps(
        _mm256_cmp_ps(x, _mm256_set1_ps(-87.f), _CMP_GT_OQ),
        _mm256_cmp_ps(abs8(_mm256_sub_ps(t, rounded)), _mm256_fmadd_ps(at, rel, edge), _CMP_LT_OQ)));
    store8(q + i, to_int8_finite_on<ASYM>(rounded, g));
    for (int redo = ~ok & 0xFF; redo; redo &= redo - 1) {
      const int64_t k = i + __builtin_ctz(static_cast<unsigned>(redo));
      activation_quantize_scalar(v + k, RES ? r + k : nullptr, MULT ? m_ext : nullptr, channels, first + k,
                                 s_y, zp, SILU, q + k, 1);
    }
  }
  return i;
}

QYOLO_AVX2 void activation_quantize_avx2(const float* v, const float* r, const float* m_ext, int64_t channels,
                                         int64_t first, float s_y, int32_t zp, bool silu, int8_t* q,
                                         int64_t n) {
  if (r && m_ext)  // both (no caller): the exact sequence throughout
    return activation_quantize_scalar(v, r, m_ext, channels, first, s_y, zp, silu, q, n);
  // One copy of the loop per activation, operand (multiplier, residual or neither) and grid.
  using Fast = int64_t (*)(const float*, const float*, const float*, int64_t, int64_t, int64_t&, float,
                           int32_t, int8_t*, int64_t);
  static constexpr Fast kFast[2][3][2] = {
      {{decide_fast<false, false, false, false>, decide_fast<false, false, false, true>},
       {decide_fast<false, true, false, false>, decide_fast<false, true, false, true>},
       {decide_fast<false, false, true, false>, decide_fast<false, false, true, true>}},
      {{decide_fast<true, false, false, false>, decide_fast<true, false, false, true>},
       {decide_fast<true, true, false, false>, decide_fast<true, true, false, true>},
       {decide_fast<true, false, true, false>, decide_fast<true, false, true, true>}}};
  const int operand = m_ext ? 1 : r ? 2 : 0;
  int64_t c = first % channels;
  const int64_t i = kFast[silu][operand][zp != 0](v, r, m_ext, channels, first, c, s_y, zp, q, n);
  activation_quantize_scalar(v + i, r ? r + i : nullptr, m_ext, channels, c, s_y, zp, silu, q + i, n - i);
}

}  // namespace

Int8Epilogue int8_detail::avx2_int8_epilogue() {
  // activation_float: the scalar expf formula, whose floats no vector formula reproduces (AVX-512's
  // polynomial is within 2 ulps of them, which moves integers downstream, rarely): so every
  // function gives the scalar path's results, and a network the scalar build's detections.
  return {quantize_avx2,         requantize_avx2,          activation_float_scalar,
          quantize_3planes_avx2, activation_quantize_avx2, "avx2"};
}

}  // namespace qyolo::cpu
