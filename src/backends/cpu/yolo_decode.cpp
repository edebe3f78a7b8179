// QyoloYoloDecode on the CPU: sigmoid + transpose + box decode in one pass (see
// src/ir/ops/yolo_decode.h). The arithmetic follows the unfused graph operation for operation
// (the CPU Sigmoid's polynomial exp, Pow by 2 as x*x), so fusing does not move results.
//
// Input layouts: NCHW, or channels-last when the head conv writes it so
// (plan_channels_last_decode, passes.h). Channels-last, each pixel's anchors are contiguous runs of
// C channels, which are the output's rows: the decode is elementwise, no transpose. NCHW, each
// (n, a, h) row is decoded channel by channel into a block and written out pixel-major.
//
// The AVX-512 and AVX2 sigmoids do the scalar exp_poly's operations in the same order, with no
// fused multiply-add (this file is compiled with -ffp-contract=off, CMakeLists.txt): the same
// floats on every path (tested).
#include "ir/ops/yolo_decode.h"

#include <immintrin.h>
#include <omp.h>

#include <cmath>
#include <cstring>

#include "backends/cpu/binary.h"
#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/float_math.h"
#include "passes/passes.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's AVX-512 headers (a false positive)
#endif

namespace qyolo {

namespace {

using cpu::exp_poly;  // the CPU Sigmoid's exp: the fused decode equals the unfused tail exactly

constexpr float kExpLo = -87.3f, kExpHi = 88.f;

// y[i] = 1 / (1 + exp_poly(-x[i])), i < n.
void sigmoid_scalar(const float* x, float* y, int64_t n) {
  const float lo = cpu::opaque(kExpLo), hi = cpu::opaque(kExpHi);
  for (int64_t i = 0; i < n; ++i) y[i] = 1.f / (1.f + exp_poly(-x[i], lo, hi));
}

#define QYOLO_AVX512 __attribute__((target("avx512f")))

// exp_poly on 16 lanes: the same operations in the same order (no FMA), so the same floats.
QYOLO_AVX512 inline __m512 exp_poly16(__m512 x) {
  // clampf: `v < lo ? lo : v` is vmaxps(lo, v) and `v > hi ? hi : v` vminps(hi, v), NaN kept.
  x = _mm512_min_ps(_mm512_set1_ps(kExpHi), _mm512_max_ps(_mm512_set1_ps(kExpLo), x));
  const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
  const __m512 big = _mm512_set1_ps(12582912.f);
  const __m512 n = _mm512_sub_ps(_mm512_add_ps(t, big), big);
  __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(0.693359375f)));
  r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(-2.12194440e-4f)));
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y =
      _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(p, r), r), r), _mm512_set1_ps(1.f));
  // y * 2^n: scalef in one instruction where exp_poly builds 2^n in the exponent bits (n in
  // [-126, 127] here, so 2^n is exact either way and the product rounds alike).
  return _mm512_scalef_ps(y, n);
}

QYOLO_AVX512 inline __m512 sigmoid16(__m512 x) {
  const __m512 neg =
      _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN)));
  const __m512 one = _mm512_set1_ps(1.f);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp_poly16(neg)));
}

QYOLO_AVX512 void sigmoid_avx512(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, sigmoid16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(y + i, m, sigmoid16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

#define QYOLO_AVX2 __attribute__((target("avx2")))  // no "fma": none to contract into

// exp_poly on 8 lanes, as exp_poly16, with exp_poly's own 2^n from the exponent bits.
QYOLO_AVX2 inline __m256 exp_poly8(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(kExpHi), _mm256_max_ps(_mm256_set1_ps(kExpLo), x));
  const __m256 t = _mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f));
  const __m256 big = _mm256_set1_ps(12582912.f);
  const __m256 n = _mm256_sub_ps(_mm256_add_ps(t, big), big);
  __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
  r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(5.0000001201e-1f));
  const __m256 y =
      _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(p, r), r), r), _mm256_set1_ps(1.f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
}

QYOLO_AVX2 inline __m256 sigmoid8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp_poly8(_mm256_xor_ps(x, _mm256_set1_ps(-0.f)))));
}

QYOLO_AVX2 void sigmoid_avx2(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, sigmoid8(_mm256_loadu_ps(x + i)));
  if (i < n) {  // lanes below n - i (the sign bits of m): maskload / maskstore touch no others
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - i)),
                                         _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(y + i, m, sigmoid8(_mm256_maskload_ps(x + i, m)));
  }
}

using SigmoidFn = void (*)(const float*, float*, int64_t);

class CpuYoloDecode final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    QYOLO_ASSIGN_OR_RETURN(a_, YoloDecodeAttrs::parse(node, inputs[0]->shape));
    if (outputs[0].dtype != DataType::kFloat32 || outputs[0].shape != a_.out_shape())
      return internal_error(node.describe() + ": unexpected output " + shape_str(outputs[0].shape));
    channels_last_ = node.has_attr(kChannelsLastInputAttr);
    if (channels_last_ && inputs[0]->dtype != DataType::kFloat32)
      return internal_error(node.describe() + ": a channels-last input must be float32");
    out_batch_stride_ = a_.num_anchors * a_.h * a_.w * a_.channels;
    sigmoid_ = __builtin_cpu_supports("avx512f") ? sigmoid_avx512
               : __builtin_cpu_supports("avx2")  ? sigmoid_avx2
                                                 : sigmoid_scalar;
    return Status::ok();
  }

  // Per thread: one row's C x W block, channel-major (workspace of the NCHW path).
  size_t workspace_bytes() const override {
    return channels_last_
               ? 0
               : static_cast<size_t>(threads_) * align64(static_cast<size_t>(a_.channels * a_.w) * 4);
  }
  void set_workspace(std::byte* workspace) override { workspace_ = workspace; }
  bool supports_output_batch_stride() const override { return true; }
  void set_output_batch_stride(int64_t elements) override { out_batch_stride_ = elements; }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const Tensor x32 = cpu::to_float32(*inputs[0]);
    const Tensor g32 = cpu::to_float32(*inputs[1]);
    const Tensor ag32 = cpu::to_float32(*inputs[2]);
    if (channels_last_)
      run_channels_last(x32.data<float>(), g32.data<float>(), ag32.data<float>(), outputs[0]->data<float>(),
                        0, a_.n * a_.h);
    else
      run_nchw(x32.data<float>(), g32.data<float>(), ag32.data<float>(), outputs[0]->data<float>());
    return Status::ok();
  }

 private:
  // Channels 0-3 of one decoded row (sigmoids in `s`, C >= 4): xy from the grid, wh from the
  // anchors; `g` and `an` are this pixel's two grid / anchor values.
  void boxes(float* s, const float* g, const float* an) const {
    for (int c = 0; c < 2; ++c) s[c] = (s[c] * a_.c1 + g[c]) * a_.stride;
    for (int c = 2; c < 4; ++c) {
      const float b = s[c] * a_.c2;
      s[c] = (a_.c3 == 2.f ? b * b : std::pow(b, a_.c3)) * an[c - 2];
    }
  }

  // Input rows (n, h) [r0, r1); one row: W pixels of A*C channels, row r at x + (r - r0) * W * A * C.
  void run_channels_last(const float* x, const float* grid, const float* anchor, float* y, int64_t r0,
                         int64_t r1) const {
    const int64_t A = a_.num_anchors, C = a_.channels, H = a_.h, W = a_.w;
    const int64_t stride = out_batch_stride_;
#pragma omp parallel for schedule(static) if ((r1 - r0) * W * A * C > (1 << 15))
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / H, h = r % H;
      for (int64_t w = 0; w < W; ++w) {
        const float* xp = x + ((r - r0) * W + w) * A * C;
        for (int64_t a = 0; a < A; ++a) {
          const int64_t cell = (a * H + h) * W + w;  // (a, h, w) of the output and the grids
          float* yp = y + n * stride + cell * C;
          sigmoid_(xp + a * C, yp, C);
          boxes(yp, grid + cell * 2, anchor + cell * 2);
        }
      }
    }
  }

  // Band by band (cpu_kernel.h): rows [r0, r0 + rows) of the channels-last input from `band`.
 public:
  bool reads_bands() const override {
    return channels_last_;
  }
  Status run_band_reader(std::span<const Tensor* const> inputs, const float* band, int64_t r0, int64_t rows,
                         std::span<Tensor* const> outputs) override {
    const Tensor g32 = cpu::to_float32(*inputs[1]);
    const Tensor ag32 = cpu::to_float32(*inputs[2]);
    run_channels_last(band, g32.data<float>(), ag32.data<float>(), outputs[0]->data<float>(), r0, r0 + rows);
    return Status::ok();
  }

 private:
  void run_nchw(const float* x, const float* grid, const float* anchor, float* y) const {
    const int64_t A = a_.num_anchors, C = a_.channels, H = a_.h, W = a_.w;
    const int64_t rows = a_.n * A * H;  // one (n, a, h) row: W*C outputs
    const int64_t stride = out_batch_stride_;
    const size_t block_bytes = align64(static_cast<size_t>(C * W) * 4);
    std::byte* ws = workspace_;
    // Each row is decoded channel by channel into a contiguous block (unit-stride loops that
    // vectorise), then written out pixel-major (contiguous stores of C values per pixel).
#pragma omp parallel for schedule(static) num_threads(threads_) if (rows * W * C > (1 << 15))
    for (int64_t r = 0; r < rows; ++r) {
      float* blk = reinterpret_cast<float*>(ws + static_cast<size_t>(omp_get_thread_num()) * block_bytes);
      const int64_t h = r % H, na = r / H, a = na % A, n = na / A;
      const float* xs = x + (na * C * H + h) * W;  // channel c of this row at xs[c*H*W + w]
      const float* gs = grid + (a * H + h) * W * 2;
      const float* as = anchor + (a * H + h) * W * 2;
      for (int64_t c = 0; c < C; ++c) sigmoid_(xs + c * H * W, blk + c * W, W);
      float* ys = y + n * stride + (a * H + h) * W * C;
      float s[4];
      for (int64_t w = 0; w < W; ++w) {
        for (int64_t c = 0; c < 4; ++c) s[c] = blk[c * W + w];
        boxes(s, gs + w * 2, as + w * 2);
        for (int64_t c = 0; c < 4; ++c) ys[w * C + c] = s[c];
        for (int64_t c = 4; c < C; ++c) ys[w * C + c] = blk[c * W + w];
      }
    }
  }

  YoloDecodeAttrs a_;
  bool channels_last_ = false;
  int64_t out_batch_stride_ = 0;  // elements from one batch item's output to the next
  SigmoidFn sigmoid_ = sigmoid_scalar;
  int threads_ = omp_get_max_threads();  // workspace blocks: at most this many threads decode
  std::byte* workspace_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_yolo_decode(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuYoloDecode>());
}

}  // namespace qyolo
