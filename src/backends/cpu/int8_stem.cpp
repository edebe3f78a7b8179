#include "backends/cpu/int8_stem.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "backends/cpu/cpu_kernel.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's AVX-512 headers (a false positive)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace qyolo::cpu {

namespace {

constexpr int64_t kBlock = 16;  // bytes per space-to-depth block: 12 slots, 4 unused (zero weights)

// Padded block grid: one ring of blocks around the image (the conv's padding of 2 pixels).
int64_t grid_w(int64_t w) {
  return w / 2 + 2;
}
size_t grid_bytes(int64_t h, int64_t w) {
  return align64(static_cast<size_t>((h / 2 + 2) * grid_w(w) * kBlock));
}
size_t row_bytes(int64_t w, int64_t cout) {
  return align64(static_cast<size_t>(w / 2 * cout) * sizeof(float));
}
size_t quant_bytes(int64_t w) {
  return align64(static_cast<size_t>(2 * 3 * w + 16));
}

#define QYOLO_VNNI __attribute__((target("avx512f,avx512vnni")))

// P output pixels from column ox of output row `oy`, output channels [16 ocb, 16 ocb + 16).
template <int P>
QYOLO_VNNI inline void conv_pixels(const uint8_t* grid, int64_t gw, int64_t oy, int64_t ox, const int8_t* w,
                                   __m512i comp, __m512 bias, __m512 scale, float* v, int64_t cout) {
  __m512i acc[P];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p) acc[p] = _mm512_setzero_si512();
  for (int ty = 0; ty < 3; ++ty) {
    const uint8_t* row = grid + ((oy + ty) * gw + ox) * kBlock;
    for (int tx = 0; tx < 3; ++tx) {
      for (int g = 0; g < 3; ++g) {
        const __m512i wv = _mm512_loadu_si512(w + ((ty * 3 + tx) * 3 + g) * 64);
#pragma GCC unroll 16
        for (int p = 0; p < P; ++p) {
          int32_t d;
          std::memcpy(&d, row + (p + tx) * kBlock + 4 * g, sizeof(d));
          acc[p] = _mm512_dpbusd_epi32(acc[p], _mm512_set1_epi32(d), wv);
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p) {
    // oneDNN's order: the exact accumulator, converted, plus the bias, times the scale.
    const __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[p], comp));
    _mm512_storeu_ps(v + p * cout, _mm512_mul_ps(_mm512_add_ps(f, bias), scale));
  }
}

QYOLO_VNNI void conv_row(const uint8_t* grid, int64_t gw, int64_t oy, int64_t ow, const int8_t* weights,
                         const int32_t* comp, const float* bias, const float* scale, float* v, int64_t cout) {
  for (int64_t ocb = 0; ocb < cout / 16; ++ocb) {
    const int8_t* w = weights + ocb * 9 * 3 * 64;
    const __m512i c = _mm512_loadu_si512(comp + 16 * ocb);
    const __m512 b = _mm512_loadu_ps(bias + 16 * ocb), s = _mm512_loadu_ps(scale + 16 * ocb);
    int64_t ox = 0;
    for (; ox + 16 <= ow; ox += 16)
      conv_pixels<16>(grid, gw, oy, ox, w, c, b, s, v + ox * cout + 16 * ocb, cout);
    for (; ox < ow; ++ox) conv_pixels<1>(grid, gw, oy, ox, w, c, b, s, v + ox * cout + 16 * ocb, cout);
  }
}

}  // namespace

bool Int8Stem::supported(int64_t cin, int64_t cout, int64_t kh, int64_t kw, int64_t stride_h,
                         int64_t stride_w, const int64_t pads[4], int64_t dilation_h, int64_t dilation_w,
                         int64_t group, int64_t h, int64_t w) {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni") && cin == 3 && cout > 0 &&
         cout % 16 == 0 && kh == 6 && kw == 6 && stride_h == 2 && stride_w == 2 && pads[0] == 2 &&
         pads[1] == 2 && pads[2] == 2 && pads[3] == 2 && dilation_h == 1 && dilation_w == 1 && group == 1 &&
         h >= 2 && w >= 2 && h % 2 == 0 && w % 2 == 0;
}

void Int8Stem::prepare(const int8_t* w_q, int64_t cout, const float* bias, const float* scale, int64_t h,
                       int64_t w) {
  cout_ = cout;
  h_ = h;
  w_ = w;
  threads_ = std::max(1, omp_get_max_threads());
  weights_.assign(static_cast<size_t>(cout / 16 * 9 * 3 * 64), 0);
  compensation_.assign(static_cast<size_t>(cout), 0);
  for (int64_t oc = 0; oc < cout; ++oc) {
    const int8_t* src = w_q + oc * 3 * 36;
    for (int64_t j = 0; j < 108; ++j) compensation_[static_cast<size_t>(oc)] += 128 * src[j];
    for (int64_t ty = 0; ty < 3; ++ty)
      for (int64_t tx = 0; tx < 3; ++tx)
        for (int64_t s = 0; s < 12; ++s) {  // slot s = (2 dy + dx) * 3 + c
          const int64_t dy = s / 6, dx = s % 6 / 3, c = s % 3;
          const int64_t g = s / 4, j = s % 4;
          weights_[static_cast<size_t>(((((oc / 16) * 9 + ty * 3 + tx) * 3 + g) * 16 + oc % 16) * 4 + j)] =
              src[(c * 6 + 2 * ty + dy) * 6 + 2 * tx + dx];
        }
  }
  bias_.assign(bias, bias + cout);
  scale_.assign(scale, scale + cout);
}

size_t Int8Stem::workspace_bytes() const {
  return grid_bytes(h_, w_) + static_cast<size_t>(threads_) * (row_bytes(w_, cout_) + quant_bytes(w_));
}

void Int8Stem::run(const float* x, float input_scale, const Int8Epilogue& e, std::byte* workspace,
                   const std::function<void(int64_t, const float*)>& row) const {
  uint8_t* grid = reinterpret_cast<uint8_t*>(workspace);
  std::byte* per_thread = workspace + grid_bytes(h_, w_);
  const int64_t hb = h_ / 2, wb = w_ / 2, gw = grid_w(w_), plane = h_ * w_;
  const size_t thread_bytes = row_bytes(w_, cout_) + quant_bytes(w_);
  // The padding ring: input 0, stored as 0 + 128.
  std::memset(grid, 0x80, static_cast<size_t>(gw * kBlock));
  std::memset(grid + (hb + 1) * gw * kBlock, 0x80, static_cast<size_t>(gw * kBlock));
  // At most the threads the workspace was sized for (those of prepare).
  const int threads = static_cast<int>(std::min<int64_t>(threads_, omp_get_max_threads()));
#pragma omp parallel num_threads(threads)
  {
    std::byte* mine = per_thread + static_cast<size_t>(omp_get_thread_num()) * thread_bytes;
    float* v = reinterpret_cast<float*>(mine);
    int8_t* q = reinterpret_cast<int8_t*>(mine + row_bytes(w_, cout_));
    // Space to depth: two image rows quantised channels-last (the oneDNN path's quantisation),
    // then 6 bytes of each per block, + 128 (VNNI multiplies unsigned by signed bytes).
#pragma omp for schedule(static)
    for (int64_t by = 0; by < hb; ++by) {
      e.quantize_3planes(x + 2 * by * w_, plane, input_scale, q, w_);
      e.quantize_3planes(x + (2 * by + 1) * w_, plane, input_scale, q + 3 * w_, w_);
      uint8_t* out = grid + (by + 1) * gw * kBlock;
      std::memset(out, 0x80, kBlock);
      std::memset(out + (wb + 1) * kBlock, 0x80, kBlock);
      constexpr uint64_t kFlip = 0x8080808080808080ull;
      for (int64_t bx = 0; bx < wb; ++bx) {
        uint64_t top, bottom;
        std::memcpy(&top, q + 6 * bx, 8);
        std::memcpy(&bottom, q + 3 * w_ + 6 * bx, 8);
        top ^= kFlip;
        bottom ^= kFlip;
        uint8_t* blk = out + (bx + 1) * kBlock;
        std::memcpy(blk, &top, 8);         // slots 0-5 (6, 7 rewritten next)
        std::memcpy(blk + 6, &bottom, 8);  // slots 6-11; 12, 13: any (zero weights)
      }
    }
#pragma omp for schedule(static)
    for (int64_t oy = 0; oy < hb; ++oy) {
      conv_row(grid, gw, oy, wb, weights_.data(), compensation_.data(), bias_.data(), scale_.data(), v,
               cout_);
      row(oy, v);
    }
  }
}

}  // namespace qyolo::cpu
