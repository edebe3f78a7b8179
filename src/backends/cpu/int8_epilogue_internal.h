// What the INT8 epilogue's implementations share (int8_epilogue.cpp: scalar and AVX-512;
// int8_epilogue_avx2.cpp): the scalar reference, which the vector loops run on their tails (and
// AVX2's on each element its vector decision leaves), and the small helpers of both vector widths.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "backends/cpu/int8_epilogue.h"

namespace qyolo::cpu::int8_detail {

constexpr float kBoundaryBand = 1e-3f;  // |frac(y / s_y) - 0.5| below this: recompute with expf

// The scalar implementations (int8_epilogue.h's table, "scalar").
void quantize_scalar(const float* x, float scale, int32_t zp, int8_t* q, int64_t n);
void quantize_3planes_scalar(const float* x, int64_t plane, float scale, int8_t* q, int64_t n);
void requantize_scalar(const float* v, const int8_t* r, float s_r, float s_y, int32_t zp, bool silu,
                       int8_t* q, int64_t n);
void activation_float_scalar(const float* v, const float* r, bool silu, float* y, int64_t n);
void activation_quantize_scalar(const float* v, const float* r, const float* m_ext, int64_t channels,
                                int64_t first, float s_y, int32_t zp, bool silu, int8_t* q, int64_t n);

// The grid's integer offset and lowest code: zero point 0 -> [-127, 127], else + zp in [-128, 127].
struct Grid {
  float zp, lowest;
  explicit Grid(int32_t zero_point)
      : zp(static_cast<float>(zero_point)), lowest(zero_point == 0 ? -127.f : -128.f) {}
};

// pshufb masks interleaving three 16-byte channels into 48 bytes: block j, channel c, byte t
// takes pixel (16 j + t) / 3 of channel c where (16 j + t) % 3 == c, else zero (0x80).
struct Interleave3 {
  alignas(16) int8_t m[3][3][16] = {};
  constexpr Interleave3() {
    for (int j = 0; j < 3; ++j)
      for (int c = 0; c < 3; ++c)
        for (int t = 0; t < 16; ++t) {
          const int k = 16 * j + t;
          m[j][c][t] = k % 3 == c ? static_cast<int8_t>(k / 3) : static_cast<int8_t>(0x80);
        }
  }
};

// Writes 16 pixels of three channels (16 int8 each) interleaved: q[3 t + c] = ch[c][t], 48 bytes.
__attribute__((target("ssse3"))) inline void store_interleaved3(const __m128i (&ch)[3], int8_t* q) {
  static constexpr Interleave3 masks;
  for (int j = 0; j < 3; ++j) {
    const auto* m = reinterpret_cast<const __m128i*>(masks.m[j]);
    const __m128i out = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(ch[0], _mm_load_si128(m)),
                                                  _mm_shuffle_epi8(ch[1], _mm_load_si128(m + 1))),
                                     _mm_shuffle_epi8(ch[2], _mm_load_si128(m + 2)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16 * j), out);
  }
}

// The channel of the next `step` channels-last values (one vector): a loop-carried index, so no
// division where avoidable.
inline void next_channel(int64_t& c, int64_t channels, int64_t step) {
  c += step;
  if (c >= channels) c = channels >= step ? c - channels : c % channels;
}

// The AVX2 + FMA table (int8_epilogue_avx2.cpp); only for CPUs that have both.
Int8Epilogue avx2_int8_epilogue();

}  // namespace qyolo::cpu::int8_detail
