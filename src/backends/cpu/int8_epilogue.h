// Elementwise passes around the CPU INT8 convolution, vectorised with AVX-512 where the CPU has it,
// else with AVX2 + FMA (chosen once, when the kernel is prepared), giving the same integers on
// every path:
//  - quantize_int8: q = clamp(nearbyint(x / s), -127, 127), ONNX QuantizeLinear's rounding;
//  - requantize_activation: q = clamp(nearbyint((act(v) + s_r * r) / s_y), -127, 127) with
//    act = SiLU x / (1 + expf(-x)) or sigmoid 1 / (1 + expf(-x)): the float path's own formula
//    followed by the next conv's quantisation. A polynomial exp decides every element whose
//    y / s_y lies far enough from a rounding boundary (without a residual: 2e-5 |y / s_y| + 3e-5,
//    for the fast exp's relative error < 7e-6; with one: 1e-3, for Cephes' < 1e-6 on sums up to
//    |y / s_y| = 128); the others take expf itself.
// With a zero point zp != 0 (an asymmetric grid, src/quant/quant_params.h) the quantising functions
// write clamp(nearbyint(.) + zp, -128, 127) instead (NaN -> zp); zp 0 is the symmetric grid above.
// Each function runs over [0, n) on the calling thread; callers split the work across threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace qyolo::cpu {

struct Int8Epilogue {
  void (*quantize)(const float* x, float scale, int32_t zp, int8_t* q, int64_t n);
  void (*requantize_activation)(const float* v, const int8_t* r, float s_r, float s_y, int32_t zp, bool silu,
                                int8_t* q, int64_t n);
  // y = act(v) (+ r) in float, for INT8 convs whose output stays float (fused residuals): the
  // scalar and AVX2 paths with expf, AVX-512 with the polynomial exp (within 2 ulps of it; the
  // integers downstream, activation_quantize's too, may then differ from the scalar path's, rarely).
  void (*activation_float)(const float* v, const float* r, bool silu, float* y, int64_t n);
  // quantize of pixels [0, n) of three NCHW planes (x, x + plane, x + 2 * plane) written
  // channels-last, q[3 i + c]: an RGB image straight into the nhwc layout oneDNN's stem reads.
  void (*quantize_3planes)(const float* x, int64_t plane, float scale, int8_t* q, int64_t n);
  // activation_float (r may be null), then y *= m[c] where m is given (channels-last, channel
  // c = (first + i) % channels, m_ext[k] = m[k % channels] for k < channels + 16), then quantize:
  // the three passes of a SiLU/sigmoid conv with an int8 output (equalised, or with a float
  // residual) in one, a vector of values in registers, with the same integers as the three in turn.
  void (*activation_quantize)(const float* v, const float* r, const float* m_ext, int64_t channels,
                              int64_t first, float s_y, int32_t zp, bool silu, int8_t* q, int64_t n);
  const char* isa;  // "avx512", "avx2" or "scalar"
};

// Runs `f(begin, count)` over [0, n) in chunks of whole 64-byte lines, across the OpenMP threads
// (the callers' elementwise passes).
template <typename F>
void parallel_chunks(int64_t n, F&& f) {
  constexpr int64_t kChunk = 4096;
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) f(c0, std::min(kChunk, n - c0));
}

// y[o, c, i] *= m[c] for y of shape [outer, channels, inner] (NCHW: outer N, inner H*W; NHWC: outer
// N*H*W, inner 1): the equalisation multiplier after the activation (ConvAttrs::output_multiplier).
void scale_channels(float* y, int64_t outer, int64_t channels, int64_t inner, const float* m);

// The widest implementation this CPU runs.
Int8Epilogue best_int8_epilogue();
// Every implementation this CPU runs, scalar first and best last (the tests check each).
std::vector<Int8Epilogue> int8_epilogues();
// The portable one (the reference of the tests).
Int8Epilogue scalar_int8_epilogue();

}  // namespace qyolo::cpu
