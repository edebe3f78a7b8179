// The first convolution of YOLOv5 (6x6 stride-2 pad-2 on the RGB image, 16..64 output channels) as one
// direct tensor-core kernel: it reads the fp32 NCHW image itself (no conversion or space-to-depth
// pass), runs an implicit GEMM with mma.sync m16n8k16 f16 x f16 -> f32 (sm_80+), and writes fp16 NHWC
// with bias and activation fused (SiLU/sigmoid with the fast exp and division intrinsics: their
// error is far below the half rounding of the output). cuDNN is slow on 3 input channels, and the separate
// image -> half space-to-depth pass costs a full read and write of the image. In INT8 builds with half
// between layers the stem stays FP16 and also (or only) writes the int8 copy its INT8 readers take,
// quantised from the fp32 epilogue value (fuse_quantized_output), so no quantize pass follows it.
// With the uint8 image input the stem can instead be an INT8 conv of the plan (int8_image_stem):
// the same kernel reads the bytes as unsigned 8-bit values and multiplies them with per-channel
// s8 weights on mma.sync m16n8k32 (int32 accumulation): one 32-bit fragment word is a whole
// pixel (3 bytes + a zero), so a k32 step needs the shared loads of a k16 step of the f16 path.
//
// GEMM view: M = output pixels, N = the K output channels, reduction k = (r * S + s) * 4 + c with the
// input channels padded to 4 (zeros) and k padded to Kp = round_up(R * S * 4, 16) (zero weights;
// 32 in the INT8 form).
// A CTA (8 warps) computes an 8 x 32 tile of output pixels of one image; warp w computes tile row w
// (two m16 tiles of consecutive columns) for all K channels. The CTA stages its input patch in shared
// memory as half, 4 channels (8 bytes) per pixel with out-of-image pixels zero (the padding), so an
// A-fragment pair (k even, k + 1) = channels (0, 1) or (2, 3) of one tap is one 32-bit load. The
// weights ([K][Kp] half) sit in shared memory too, rows padded by 8 halves (conflict-free B loads).
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <type_traits>
#include <vector>

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/cuda_kernel.h"
#include "ir/ops/conv2d.h"
#include "quant/quant_params.h"

namespace qyolo::cuda {

namespace {

constexpr int kTileH = 8;   // output rows per CTA (one per warp)
constexpr int kTileW = 32;  // output columns per CTA (two m16 tiles per warp)
constexpr int kThreads = 256;
constexpr int kLoadUnroll = 4;  // patch columns per lane while staging: rows up to 128 pixels wide

struct StemParams {
  const float* x;     // NCHW [N][C][H][W] fp32 (the float image)
  const uint8_t* xb;  // or NHWC [N][H][W][C] uint8 (the image's bytes: InputFormat::kUint8Nhwc)
  float in_scale;     // the accumulator's factor before the bias: 1, or 1 / 255 for the bytes
  const __half* wt;   // [K][kp] at k = (tap row * S + tap col) * 4 + c; zeros for c >= C and k >= R * S * 4
  const int8_t* wq;   // INT8 form: the same layout in s8 (per-channel scales in acc_scale)
  const float* acc_scale;  // INT8 form: [K] accumulator factors, weight scale / 255
  const float* bias;  // [K] (zeros when the conv has none)
  const float* mult;  // [K] after the activation (ConvAttrs::output_multiplier; ones when the conv has none)
  __half* y;          // NHWC, element (n, k, oy, ox) at ((n * oh + oy) * ow + ox) * pitch + k; null: not written
  int8_t* y8;         // int8 NHWC copy, K channels per pixel (K % 16 == 0); null: not written
  float inv_scale;    // 1 / its quantisation scale
  int pitch8;         // bytes between pixels of y8: K, or more when it is a channel slice of a concat
  int c, h, w;        // input channels (<= 4) and size
  int oh, ow;
  int r, s, stride, pad_h, pad_w;
  int kp;      // padded GEMM depth (multiple of 16; of 32 in the INT8 form)
  int ph, pw;  // input patch of a CTA: (kTileH - 1) * stride + r rows, (kTileW - 1) * stride + s columns
  int pitch;   // halves between output pixels: K, or more when y is a channel slice of a concat
  int act;     // Act
  float alpha;
  // INT8 form: |accumulator| < 2^22 (255 x 127 x R x S x C): conversions done with adds
  // (CudaBuildOptions::stem_conversion_free)
  bool small_acc;
  // Space-to-depth form (conv_stem_s2d_kernel): block taps per row (S / 2) and in all, the CTA's
  // patch in 2x2 blocks (ph x pwb), the padding in blocks, k steps of 32, the image's bytes.
  int s2d_ts, s2d_taps, s2d_ph, s2d_pwb, s2d_pad_h, s2d_pad_w, s2d_ksteps;
  int64_t image_bytes;  // N * H * W * C
};

// Dynamic shared memory: weights [K][kp + 8] half, the tap table [kp / 2] int (16-byte rounded), then
// the patch [ph][pw] x 4 half.
__host__ __device__ constexpr int weight_smem_bytes(int k, int kp) {
  return k * (kp + 8) * 2;
}
__host__ __device__ constexpr int tap_smem_bytes(int kp) {
  return (kp / 2 * 4 + 15) / 16 * 16;
}
__host__ __device__ constexpr int smem_bytes(int k, int kp, int ph, int pw) {
  return weight_smem_bytes(k, kp) + tap_smem_bytes(kp) + ph * pw * 8;
}
// The INT8 form: weights [K][kp + 16] s8 (rows 16 bytes apart in banks: conflict-free B loads), the
// tap table [kp / 4] int, the patch [ph][pw] x 4 bytes.
__host__ __device__ constexpr int weight_smem_bytes_int8(int k, int kp) {
  return k * (kp + 16);
}
__host__ __device__ constexpr int tap_smem_bytes_int8(int kp) {
  return (kp / 4 * 4 + 15) / 16 * 16;
}
__host__ __device__ constexpr int smem_bytes_int8(int k, int kp, int ph, int pw) {
  return weight_smem_bytes_int8(k, kp) + tap_smem_bytes_int8(kp) + ph * pw * 4;
}

__device__ __forceinline__ void mma_tile(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap();  // the executor selects this kernel on compute capability 8.0+ only
#endif
}

// u8 (the image bytes) x s8 (weights) -> s32: A row-major 16 x 32, B column-major 32 x 8.
__device__ __forceinline__ void mma_tile(int (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap();
#endif
}

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

// The B fragments of k step ks (n = nt * 8 + g, k groups q and q + 4 of the step) times the two m16
// A fragments a[0], a[1]: one k step of the warp's 32 x K tile, for every n tile.
template <int NT, typename Acc>
__device__ __forceinline__ void mma_n_tiles(Acc (&acc)[2][NT][4], const uint32_t (&a)[2][4],
                                            const uint32_t* __restrict__ wrow, int ks, int ldw32) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const uint32_t* b = wrow + nt * 8 * ldw32 + ks * 8;
    const uint32_t b0 = b[0], b1 = b[4];
    mma_tile(acc[0][nt], a[0], b0, b1);
    mma_tile(acc[1][nt], a[1], b0, b1);
  }
}

// One k step of the warp's 32 x K tile (k16 in half: a 32-bit word is a channel pair; k32 in the
// INT8 form: a word is a pixel's 4 channels; the fragment indexing is the same). CHECK: the step
// reaches into the k padding (tap -1 reads 0).
template <int NT, bool CHECK, typename Acc>
__device__ __forceinline__ void mma_step(Acc (&acc)[2][NT][4], const uint32_t* __restrict__ patch,
                                         const uint32_t* __restrict__ wrow, const int* __restrict__ tap,
                                         const int (&a_base)[2][2], int ks, int q, int ldw32) {
  // This thread's k pairs: j = ks * 8 + q (a0/a1, b0) and j + 4 (a2/a3, b1).
  const int j = ks * 8 + q;
  int t0 = tap[j], t1 = tap[j + 4];
  const bool z0 = CHECK && t0 < 0, z1 = CHECK && t1 < 0;
  if (CHECK) {
    t0 = z0 ? 0 : t0;
    t1 = z1 ? 0 : t1;
  }
  uint32_t a[2][4];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
    a[mt][0] = patch[a_base[mt][0] + t0];
    a[mt][1] = patch[a_base[mt][1] + t0];
    a[mt][2] = patch[a_base[mt][0] + t1];
    a[mt][3] = patch[a_base[mt][1] + t1];
    if (CHECK) {
      if (z0) a[mt][0] = a[mt][1] = 0u;
      if (z1) a[mt][2] = a[mt][3] = 0u;
    }
  }
  mma_n_tiles(acc, a, wrow, ks, ldw32);
}

// Exchanges 32-bit words within each quad of lanes so that lane q ends up with whole channel runs of
// one pixel: before, word i (n-tile jb + i) holds channels 8 * (jb + i) + 2q, +1; after, with G = 4,
// word i holds channels 8 * (jb + q) + 2i, +1 (a 16-byte run); with G = 2 (mask 1 only), lane q holds
// n-tile jb + (q & 1), channels from 4 * (q >> 1) (an 8-byte run).
template <int G>
__device__ __forceinline__ void quad_transpose(uint32_t* v, int q) {
#pragma unroll
  for (int m = 1; m < G; m <<= 1) {
    const bool hi = (q & m) != 0;
#pragma unroll
    for (int i = 0; i < G; ++i) {
      if (i & m) continue;
      const uint32_t send = hi ? v[i] : v[i | m];
      const uint32_t got = __shfl_xor_sync(0xffffffffu, send, m);
      if (hi)
        v[i] = got;
      else
        v[i | m] = got;
    }
  }
}

// The epilogue of a warp's 32 x K tile (output row oy, columns ox0 + mt * 16 + hh * 8 + g): bias,
// activation, half and/or the int8 copy; quad transposes turn the fragments' 4-byte channel pairs
// into 16-byte (or 8-byte) runs per lane, so each quad writes a pixel's channels contiguously.
// Accumulator factors: 1 or 1 / 255 (half), weight scale / 255 per channel (INT8 form; int32
// sums below 2^24 are exact in fp32: 255 x 127 x R x S x 4 for R x S <= 64). SILU: the activation
// is SiLU whatever p.act says (no per-element switch).
template <int NT, bool INT8, bool SILU, typename Acc>
__device__ __forceinline__ void store_stem_tile(const StemParams& p, const Acc (&acc)[2][NT][4], int img, int oy,
                                                int ox0, int q, int g) {
  float2 bias[NT], acc_scale[NT], mult[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    bias[nt] = *reinterpret_cast<const float2*>(p.bias + nt * 8 + 2 * q);
    mult[nt] = *reinterpret_cast<const float2*>(p.mult + nt * 8 + 2 * q);
    acc_scale[nt] = INT8 ? *reinterpret_cast<const float2*>(p.acc_scale + nt * 8 + 2 * q)
                         : make_float2(p.in_scale, p.in_scale);
  }
  const Act act = SILU ? Act::kSilu : static_cast<Act>(p.act);
  const int64_t row_px = (static_cast<int64_t>(img) * p.oh + oy) * p.ow;
  const bool write_half = p.y != nullptr, write_int8 = p.y8 != nullptr;  // uniform over the grid
  constexpr int kG4 = NT / 4 * 4, kG2 = kG4 + (NT - kG4) / 2 * 2;
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      // v: the channel pair as half2; v8: the same pair as two int8 in the low 16 bits (the quad
      // transposes move 32-bit words, so both arrays go through the same exchange).
      uint32_t v[NT], v8[NT];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        // Bytes x s8 sums below 2^22 (small_acc): the int -> float and float -> int conversions as
        // full-rate adds; the epilogue is bound by the quarter-rate pipe that also runs SiLU's exp2
        // and reciprocal.
        auto to_float = [&](Acc x) {
          if constexpr (INT8) return p.small_acc ? small_int_to_float(x) : static_cast<float>(x);
          return static_cast<float>(x);
        };
        const float f0 =
            apply_act_fast(act, fmaf(to_float(acc[mt][nt][2 * hh]), acc_scale[nt].x, bias[nt].x), p.alpha) * mult[nt].x;
        const float f1 =
            apply_act_fast(act, fmaf(to_float(acc[mt][nt][2 * hh + 1]), acc_scale[nt].y, bias[nt].y), p.alpha) *
            mult[nt].y;
        v[nt] = write_half ? pack_half2(f0, f1) : 0u;
        if (!write_int8)
          v8[nt] = 0u;
        else if (INT8 && p.small_acc)
          v8[nt] = __byte_perm(quantize_s8_bits(f0, p.inv_scale), quantize_s8_bits(f1, p.inv_scale), 0x0040);
        else
          v8[nt] = static_cast<uint32_t>(static_cast<uint8_t>(quantize_s8_fast(f0, p.inv_scale))) |
                   static_cast<uint32_t>(static_cast<uint8_t>(quantize_s8_fast(f1, p.inv_scale))) << 8;
      }
      // Shuffles before the bounds check: every lane of the quad takes part.
      auto to_channel_runs = [q](uint32_t* words) {
#pragma unroll
        for (int jb = 0; jb < kG4; jb += 4) quad_transpose<4>(words + jb, q);
        if constexpr (kG2 > kG4) quad_transpose<2>(words + kG4, q);
      };
      if (write_half) to_channel_runs(v);
      if (write_int8) to_channel_runs(v8);
      const int ox = ox0 + mt * 16 + hh * 8 + g;
      if (ox >= p.ow) continue;
      if (write_half) {
        __half* yp = p.y + (row_px + ox) * p.pitch;
#pragma unroll
        for (int jb = 0; jb < kG4; jb += 4)
          *reinterpret_cast<uint4*>(yp + (jb + q) * 8) = make_uint4(v[jb], v[jb + 1], v[jb + 2], v[jb + 3]);
        if constexpr (kG2 > kG4)
          *reinterpret_cast<uint2*>(yp + (kG4 + (q & 1)) * 8 + (q >> 1) * 4) = make_uint2(v[kG4], v[kG4 + 1]);
        if constexpr (NT > kG2) *reinterpret_cast<uint32_t*>(yp + kG2 * 8 + 2 * q) = v[kG2];
      }
      if (write_int8) {  // same channel runs, a byte per channel
        int8_t* yp = p.y8 + (row_px + ox) * p.pitch8;
        auto pair = [](uint32_t lo, uint32_t hi) { return (lo & 0xffffu) | (hi << 16); };
#pragma unroll
        for (int jb = 0; jb < kG4; jb += 4)
          *reinterpret_cast<uint2*>(yp + (jb + q) * 8) = make_uint2(pair(v8[jb], v8[jb + 1]), pair(v8[jb + 2], v8[jb + 3]));
        if constexpr (kG2 > kG4)
          *reinterpret_cast<uint32_t*>(yp + (kG4 + (q & 1)) * 8 + (q >> 1) * 4) = pair(v8[kG4], v8[kG4 + 1]);
        if constexpr (NT > kG2) *reinterpret_cast<uint16_t*>(yp + kG2 * 8 + 2 * q) = static_cast<uint16_t>(v8[kG2]);
      }
    }
  }
}

// Resident CTAs per SM the register budget is sized for: the staging phase of one CTA overlaps the
// math of the others, so occupancy matters (NT <= 4: 64 registers; NT = 8 needs 64 for accumulators).
constexpr int kMinBlocks(int nt) {
  return nt <= 4 ? 4 : nt <= 6 ? 3 : 2;
}

// Where the patch comes from: the fp32 image through registers, or the uint8 NHWC image through
// registers (bytes are exact in half; the 1 / 255 is applied to the accumulator), or the bytes as
// unsigned 8-bit values for the INT8 form. (A variant staging the fp32 patch with cp.async, all
// loads in flight at once, measured slower in session 10: the kernel is bound by its instruction
// issue, not by load latency. Removed.)
enum class StemSource { kFloat, kBytes, kBytesInt8 };

template <int NT, StemSource SRC>
__global__ void __launch_bounds__(kThreads, kMinBlocks(NT)) conv_stem_kernel(StemParams p) {
  constexpr bool INT8 = SRC == StemSource::kBytesInt8;
  constexpr int kWordsPerPixel = INT8 ? 1 : 2;  // 32-bit patch words per pixel (4 channels)
  constexpr int kStepK = INT8 ? 32 : 16;        // k per mma
  constexpr int kKPerWord = INT8 ? 4 : 2;
  await_producers();
  constexpr int K = NT * 8;
  extern __shared__ __align__(16) uint8_t smem[];
  const int tid = threadIdx.x;
  const int w_bytes = INT8 ? weight_smem_bytes_int8(K, p.kp) : weight_smem_bytes(K, p.kp);
  const int ldw_bytes = w_bytes / K;              // bytes per weight row in shared memory
  const int row_bytes = INT8 ? p.kp : p.kp * 2;  // bytes per weight row in global memory
  const uint8_t* wsrc = INT8 ? reinterpret_cast<const uint8_t*>(p.wq) : reinterpret_cast<const uint8_t*>(p.wt);
  int* tap = reinterpret_cast<int*>(smem + w_bytes);
  uint8_t* patch_base = smem + w_bytes + (INT8 ? tap_smem_bytes_int8(p.kp) : tap_smem_bytes(p.kp));
  uint2* patch = reinterpret_cast<uint2*>(patch_base);
  const int ox0 = blockIdx.x * kTileW, oy0 = blockIdx.y * kTileH, img = blockIdx.z;

  // Weights, 16-byte chunks (rows are 16-byte aligned in both layouts).
  const int chunks = row_bytes / 16;
  for (int i = tid; i < K * chunks; i += kThreads) {
    const int row = i / chunks, col = (i - row * chunks) * 16;
    *reinterpret_cast<uint4*>(smem + row * ldw_bytes + col) =
        *reinterpret_cast<const uint4*>(wsrc + row * row_bytes + col);
  }
  // Word offset of the k group j = k / kKPerWord within the patch, relative to the output pixel's
  // window corner; -1 in the k padding.
  const int rs4 = p.r * p.s * 4;
  for (int j = tid; j < p.kp / kKPerWord; j += kThreads) {
    const int k = kKPerWord * j;
    int off = -1;
    if (k < rs4) {
      const int t = k >> 2, rr = t / p.s, ss = t - rr * p.s;
      off = (rr * p.pw + ss) * kWordsPerPixel + (INT8 ? 0 : (k & 3) >> 1);
    }
    tap[j] = off;
  }
  if constexpr (INT8) {
    // The bytes as they are: one 32-bit word per pixel (C <= 4 bytes, zeros above), rows of
    // consecutive columns per warp as in the kBytes path.
    const int iy0 = oy0 * p.stride - p.pad_h, ix0 = ox0 * p.stride - p.pad_w;
    const uint8_t* __restrict__ xi = p.xb + static_cast<int64_t>(img) * p.h * p.w * p.c;
    uint32_t* patch_words = reinterpret_cast<uint32_t*>(patch_base);
    const int lane = tid & 31;
    for (int pr = tid >> 5; pr < p.ph; pr += kThreads / 32) {
      const int iy = iy0 + pr;
      const bool row_in = static_cast<unsigned>(iy) < static_cast<unsigned>(p.h);
      uint32_t v[kLoadUnroll];
#pragma unroll
      for (int u = 0; u < kLoadUnroll; ++u) {
        const int pc = u * 32 + lane, ix = ix0 + pc;
        const bool in = row_in && pc < p.pw && static_cast<unsigned>(ix) < static_cast<unsigned>(p.w);
        const uint8_t* px = xi + (in ? (static_cast<int64_t>(iy) * p.w + ix) * p.c : 0);
        v[u] = 0u;
#pragma unroll
        for (int c = 0; c < 4; ++c)
          if (in && c < p.c) v[u] |= static_cast<uint32_t>(__ldg(px + c)) << (8 * c);
      }
#pragma unroll
      for (int u = 0; u < kLoadUnroll; ++u) {
        const int pc = u * 32 + lane;
        if (pc < p.pw) patch_words[pr * p.pw + pc] = v[u];
      }
    }
  } else if constexpr (SRC == StemSource::kBytes) {
    // The input patch from the bytes: one pixel's C (<= 4) bytes are adjacent; lanes take
    // consecutive columns, so a warp reads a contiguous run of 32 * C bytes per load.
    const int iy0 = oy0 * p.stride - p.pad_h, ix0 = ox0 * p.stride - p.pad_w;
    const uint8_t* __restrict__ xi = p.xb + static_cast<int64_t>(img) * p.h * p.w * p.c;
    const int lane = tid & 31;
    for (int pr = tid >> 5; pr < p.ph; pr += kThreads / 32) {
      const int iy = iy0 + pr;
      const bool row_in = static_cast<unsigned>(iy) < static_cast<unsigned>(p.h);
      float v[kLoadUnroll][4];
#pragma unroll
      for (int u = 0; u < kLoadUnroll; ++u) {
        const int pc = u * 32 + lane, ix = ix0 + pc;
        const bool in = row_in && pc < p.pw && static_cast<unsigned>(ix) < static_cast<unsigned>(p.w);
        const uint8_t* px = xi + (in ? (static_cast<int64_t>(iy) * p.w + ix) * p.c : 0);
#pragma unroll
        for (int c = 0; c < 4; ++c) v[u][c] = in && c < p.c ? static_cast<float>(__ldg(px + c)) : 0.f;
      }
#pragma unroll
      for (int u = 0; u < kLoadUnroll; ++u) {
        const int pc = u * 32 + lane;
        if (pc < p.pw)
          patch[pr * p.pw + pc] = make_uint2(pack_half2(v[u][0], v[u][1]), pack_half2(v[u][2], v[u][3]));
      }
    }
  } else {
    // The input patch, fp32 NCHW -> half, 4 channels per pixel: warp-rows of consecutive columns
    // (coalesced), no index division; the column loop is unrolled so each thread has up to
    // kLoadUnroll x C loads in flight.
    {
      const int iy0 = oy0 * p.stride - p.pad_h, ix0 = ox0 * p.stride - p.pad_w;
      const int64_t plane = static_cast<int64_t>(p.h) * p.w;
      const float* __restrict__ xc[4];
#pragma unroll
      for (int c = 0; c < 4; ++c) xc[c] = p.x + (static_cast<int64_t>(img) * p.c + (c < p.c ? c : 0)) * plane;
      const int lane = tid & 31;
      for (int pr = tid >> 5; pr < p.ph; pr += kThreads / 32) {
        const int iy = iy0 + pr;
        const bool row_in = static_cast<unsigned>(iy) < static_cast<unsigned>(p.h);
        float v[kLoadUnroll][4];
#pragma unroll
        for (int u = 0; u < kLoadUnroll; ++u) {
          const int pc = u * 32 + lane, ix = ix0 + pc;
          const bool in = row_in && pc < p.pw && static_cast<unsigned>(ix) < static_cast<unsigned>(p.w);
          const int off = in ? iy * p.w + ix : 0;  // H * W < 2^31 (checked at prepare)
#pragma unroll
          for (int c = 0; c < 4; ++c) v[u][c] = in && c < p.c ? __ldg(xc[c] + off) : 0.f;
        }
#pragma unroll
        for (int u = 0; u < kLoadUnroll; ++u) {
          const int pc = u * 32 + lane;
          if (pc < p.pw)
            patch[pr * p.pw + pc] = make_uint2(pack_half2(v[u][0], v[u][1]), pack_half2(v[u][2], v[u][3]));
        }
      }
    }
  }
  __syncthreads();

  const int lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, q = lane & 3;  // fragment row / column group
  const int oy = oy0 + warp;
  if (oy >= p.oh) return;  // a tile row below the image (whole warp); no barrier follows
  // Patch word offset of the window corner of this thread's A rows: output row `warp`, columns
  // mt * 16 + g (a0, a2) and mt * 16 + g + 8 (a1, a3).
  int a_base[2][2];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh)
      a_base[mt][hh] = (warp * p.stride * p.pw + (mt * 16 + hh * 8 + g) * p.stride) * kWordsPerPixel;
  const uint32_t* patch32 = reinterpret_cast<const uint32_t*>(patch_base);
  const int ldw32 = ldw_bytes / 4;
  // B fragments: n = nt * 8 + g, k group j (b0) and j + 4 (b1).
  const uint32_t* wrow = reinterpret_cast<const uint32_t*>(smem) + g * ldw32 + q;

  using Acc = std::conditional_t<INT8, int, float>;
  Acc acc[2][NT][4] = {};

  const int full = rs4 / kStepK;  // k steps without padding
  for (int ks = 0; ks < full; ++ks) mma_step<NT, false>(acc, patch32, wrow, tap, a_base, ks, q, ldw32);
  if (full * kStepK < p.kp) mma_step<NT, true>(acc, patch32, wrow, tap, a_base, full, q, ldw32);

  store_stem_tile<NT, INT8, false>(p, acc, img, oy, ox0, q, g);
}


// The INT8 image stem for stride 2 with even taps and padding (YOLOv5's 6x6/2 pad 2) as a conv on
// 2x2 space-to-depth blocks: block (by, bx) holds the 4 pixels (dy, dx) of rows 2by + dy, columns
// 2bx + dx, 4 bytes each (C <= 4 channels, zeros above), 16 bytes per block, and the conv becomes
// (R / 2) x (S / 2) taps of stride 1 over 16-byte blocks. A k32 step is two block taps, and an
// A fragment is one ldmatrix.x4 of 8 consecutive blocks per 8x8 matrix (128 contiguous bytes: no
// bank conflicts), instead of the tap table and eight 32-bit loads of conv_stem_kernel. The CTA
// loads the image rows of its patch as aligned 32-bit words (a warp per row, coalesced), then
// assembles the blocks in shared memory. Weights: [K][kp + 16] s8 at k = tap * 16 + (dy * 2 + dx)
// * 4 + c (zeros past the taps). Same epilogue as conv_stem_kernel (SiLU without the switch).
constexpr int kRawWords = 72;  // per staged image row: (2 * pwb * C + 3 + 4) / 4 <= 72 (checked at prepare)

__host__ __device__ constexpr int s2d_smem_bytes(int k, int kp, int ph, int pwb) {
  return weight_smem_bytes_int8(k, kp) + 2 * ph * kRawWords * 4 + (2 * ph * 4 + 15) / 16 * 16 + ph * pwb * 16;
}

template <int NT, bool SILU>
__global__ void __launch_bounds__(kThreads, kMinBlocks(NT)) conv_stem_s2d_kernel(StemParams p) {
  await_producers();
  constexpr int K = NT * 8;
  extern __shared__ __align__(16) uint8_t smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int w_bytes = weight_smem_bytes_int8(K, p.kp), ldw_bytes = w_bytes / K;
  uint32_t* raw = reinterpret_cast<uint32_t*>(smem + w_bytes);  // [2 * ph][kRawWords]
  int* row_shift = reinterpret_cast<int*>(raw + 2 * p.s2d_ph * kRawWords);  // [2 * ph] first byte
  uint8_t* blocks = reinterpret_cast<uint8_t*>(row_shift) + (2 * p.s2d_ph * 4 + 15) / 16 * 16;
  const int ox0 = blockIdx.x * kTileW, oy0 = blockIdx.y * kTileH, img = blockIdx.z;

  for (int i = tid; i < K * (p.kp / 16); i += kThreads) {
    const int row = i / (p.kp / 16), col = (i - row * (p.kp / 16)) * 16;
    *reinterpret_cast<uint4*>(smem + row * ldw_bytes + col) =
        *reinterpret_cast<const uint4*>(reinterpret_cast<const uint8_t*>(p.wq) + row * p.kp + col);
  }
  // Image rows 2 * (oy0 - pad + br) + dy, pixels from 2 * (ox0 - pad_w) on: raw word-aligned bytes.
  const int ix_start = 2 * (ox0 - p.s2d_pad_w), row_pixels = 2 * p.s2d_pwb;
  for (int rr = warp; rr < 2 * p.s2d_ph; rr += kThreads / 32) {
    const int iy = 2 * (oy0 - p.s2d_pad_h) + rr;
    uint32_t* dst = raw + rr * kRawWords;
    if (static_cast<unsigned>(iy) >= static_cast<unsigned>(p.h)) {  // padding rows: never read
      if (lane == 0) row_shift[rr] = 0;
      continue;
    }
    const int64_t b0 = ((static_cast<int64_t>(img) * p.h + iy) * p.w + ix_start) * p.c;
    const int64_t w0 = b0 >> 2;  // floor: b0 < 0 before the first image's first pixels
    const int shift = static_cast<int>(b0 - w0 * 4);
    const int words = (shift + row_pixels * p.c + 3) / 4;
    if (lane == 0) row_shift[rr] = shift;
    const uint32_t* src = reinterpret_cast<const uint32_t*>(p.xb);
#pragma unroll
    for (int j = 0; j < kRawWords / 32 + 1; ++j) {
      const int i = lane + 32 * j;
      if (i >= words) break;
      const int64_t wi = w0 + i;
      uint32_t v = 0u;
      if (wi >= 0 && wi * 4 + 4 <= p.image_bytes) {
        v = __ldg(src + wi);
      } else if (wi >= 0 && wi * 4 < p.image_bytes) {  // the buffer's last, partial word
        for (int b = 0; wi * 4 + b < p.image_bytes; ++b) v |= static_cast<uint32_t>(p.xb[wi * 4 + b]) << (8 * b);
      }
      dst[i] = v;
    }
  }
  __syncthreads();
  // Blocks: pixel (dy, dx) of block (br, bc) = image pixel column ix_start + 2 * bc + dx of raw row
  // 2 * br + dy; out-of-image pixels are zero (the padding).
  const uint32_t cmask = p.c >= 4 ? 0xffffffffu : (1u << (8 * p.c)) - 1u;
  for (int blk = tid; blk < p.s2d_ph * p.s2d_pwb; blk += kThreads) {
    const int br = blk / p.s2d_pwb, bc = blk - br * p.s2d_pwb;
    uint32_t px[4];
#pragma unroll
    for (int dy = 0; dy < 2; ++dy) {
      const int rr = 2 * br + dy, iy = 2 * (oy0 - p.s2d_pad_h) + rr;
      const bool row_in = static_cast<unsigned>(iy) < static_cast<unsigned>(p.h);
      const int shift = row_shift[rr];
      const uint32_t* src = raw + rr * kRawWords;
#pragma unroll
      for (int dx = 0; dx < 2; ++dx) {
        const int col = 2 * bc + dx, ix = ix_start + col;
        const int o = shift + col * p.c;
        uint32_t v = 0u;
        if (row_in && static_cast<unsigned>(ix) < static_cast<unsigned>(p.w))
          v = __funnelshift_r(src[o >> 2], src[(o >> 2) + 1], 8 * (o & 3)) & cmask;
        px[dy * 2 + dx] = v;
      }
    }
    *reinterpret_cast<uint4*>(blocks + blk * 16) = make_uint4(px[0], px[1], px[2], px[3]);
  }
  __syncthreads();

  const int g = lane >> 2, q = lane & 3;
  const int oy = oy0 + warp;
  if (oy >= p.oh) return;  // a tile row below the image (whole warp); no barrier follows
  // ldmatrix rows: lanes 0-7 / 8-15 give pixels 0-7 / 8-15 of an m16 tile at the step's first
  // tap, lanes 16-31 the same pixels at its second tap (a0..a3 of m16n8k32 in that order).
  const int pl = (lane & 7) + (lane & 8), second = lane >> 4;
  const uint32_t blocks_s = static_cast<uint32_t>(__cvta_generic_to_shared(blocks));
  uint32_t lane_addr[5];
#pragma unroll
  for (int ks = 0; ks < 5; ++ks) {
    int tap = 2 * ks + second;
    if (tap >= p.s2d_taps) tap = 0;  // zero weights past the taps
    const int tr = tap / p.s2d_ts, tc = tap - tr * p.s2d_ts;
    lane_addr[ks] = blocks_s + static_cast<uint32_t>(((warp + tr) * p.s2d_pwb + pl + tc) * 16);
  }
  const int ldw32 = ldw_bytes / 4;
  const uint32_t* wrow = reinterpret_cast<const uint32_t*>(smem) + g * ldw32 + q;
  int acc[2][NT][4] = {};
#pragma unroll
  for (int ks = 0; ks < 5; ++ks) {
    if (ks >= p.s2d_ksteps) break;
    uint32_t a[2][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
      asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                   : "=r"(a[mt][0]), "=r"(a[mt][1]), "=r"(a[mt][2]), "=r"(a[mt][3])
                   : "r"(lane_addr[ks] + mt * 16 * 16));
    mma_n_tiles(acc, a, wrow, ks, ldw32);
  }
  store_stem_tile<NT, true, SILU>(p, acc, img, oy, ox0, q, g);
}

using StemKernelFn = void (*)(StemParams);
template <StemSource SRC>
constexpr StemKernelFn kStemKernelsOf[8] = {
    conv_stem_kernel<1, SRC>, conv_stem_kernel<2, SRC>, conv_stem_kernel<3, SRC>, conv_stem_kernel<4, SRC>,
    conv_stem_kernel<5, SRC>, conv_stem_kernel<6, SRC>, conv_stem_kernel<7, SRC>, conv_stem_kernel<8, SRC>};
template <bool SILU>
constexpr StemKernelFn kS2dKernels[8] = {
    conv_stem_s2d_kernel<1, SILU>, conv_stem_s2d_kernel<2, SILU>, conv_stem_s2d_kernel<3, SILU>,
    conv_stem_s2d_kernel<4, SILU>, conv_stem_s2d_kernel<5, SILU>, conv_stem_s2d_kernel<6, SILU>,
    conv_stem_s2d_kernel<7, SILU>, conv_stem_s2d_kernel<8, SILU>};

StemKernelFn stem_kernel(StemSource src, int64_t k) {
  const int i = static_cast<int>(k / 8 - 1);
  switch (src) {
    case StemSource::kBytes:
      return kStemKernelsOf<StemSource::kBytes>[i];
    case StemSource::kBytesInt8:
      return kStemKernelsOf<StemSource::kBytesInt8>[i];
    default:
      return kStemKernelsOf<StemSource::kFloat>[i];
  }
}

// FusedActivation and Act list the same activations in the same order (conv2d.cu casts too).
static_assert(static_cast<int>(FusedActivation::kNone) == static_cast<int>(Act::kNone) &&
              static_cast<int>(FusedActivation::kHardSwish) == static_cast<int>(Act::kHardSwish));
Act to_act(FusedActivation f) { return static_cast<Act>(static_cast<int>(f)); }

class ConvStemKernel final : public CudaKernel {
 public:
  explicit ConvStemKernel(bool int8) : int8_(int8) {}

  Status prepare(PrepareContext& ctx, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    const std::string name = node.describe();
    if (in.empty() || in[0] == nullptr || out.empty())
      return internal_error(name + ": stem conv needs X and Y");
    const TensorInfo& x = *in[0];
    const TensorInfo* w = in.size() > 1 ? in[1] : nullptr;
    const TensorInfo* b = in.size() > 2 ? in[2] : nullptr;
    const TensorInfo& y = out[0];
    if (ctx.prop != nullptr && ctx.prop->major < 8)
      return unsupported(name + ": the direct stem conv needs sm_80 or newer (this GPU is sm_" +
                         std::to_string(ctx.prop->major * 10 + ctx.prop->minor) + ")");
    if (w == nullptr || w->constant == nullptr)
      return unsupported(name + ": the stem conv needs constant weights");
    if (b != nullptr && b->constant == nullptr)
      return unsupported(name + ": the stem conv needs a constant bias");
    if (in.size() > 3 && in[3] != nullptr) return unsupported(name + ": the stem conv has no residual input");
    if (x.dtype != DataType::kFloat32 || x.layout != Layout::kPlain || x.s2d != 1 || x.shape.size() != 4)
      return internal_error(name + ": the stem conv reads a plain fp32 NCHW input, got " +
                            dtype_name(x.dtype) + " " + shape_str(x.shape));
    if (y.dtype != DataType::kFloat16 || y.layout != Layout::kNHWC)
      return internal_error(name + ": the stem conv writes fp16 NHWC, got " + dtype_name(y.dtype));
    QYOLO_ASSIGN_OR_RETURN(ConvAttrs a, ConvAttrs::parse(node, x.shape, w->shape));
    if (!conv2d_stem_supports(x.shape, w->shape, a))
      return unsupported(name + ": the direct stem conv does not fit X " + shape_str(x.shape) + ", W " +
                         shape_str(w->shape) + " with these attributes");
    if (a.out_shape != y.shape)
      return internal_error(name + ": conv output shape " + shape_str(y.shape) + " != inferred " +
                            shape_str(a.out_shape));

    const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
    const int64_t K = w->shape[0], R = w->shape[2], S = w->shape[3];
    const int64_t OH = y.shape[2], OW = y.shape[3];
    const int stride = static_cast<int>(a.window.strides[0]);
    // 32-bit offsets within an image plane and a CTA; grid limits.
    if (N < 1 || H * W >= (int64_t{1} << 31) || OH < 1 || OW < 1 || N > 65535 ||
        (OH + kTileH - 1) / kTileH > 65535 || OW >= (int64_t{1} << 30))
      return unsupported(name + ": problem size outside the direct stem conv's limits");

    const int kstep = int8_ ? 32 : 16;
    int kp = static_cast<int>((R * S * 4 + kstep - 1) / kstep * kstep);
    // The INT8 form on 2x2 space-to-depth blocks (conv_stem_s2d_kernel) where the geometry allows.
    const int64_t pad_h = a.window.pads_begin[0], pad_w = a.window.pads_begin[1];
    const int64_t block_taps = (R / 2) * (S / 2), pwb = kTileW + S / 2 - 1;
    s2d_ = int8_ && (ctx.options == nullptr || ctx.options->stem_s2d) && stride == 2 &&
           a.window.strides[1] == 2 && R % 2 == 0 && S % 2 == 0 && pad_h % 2 == 0 && pad_w % 2 == 0 &&
           block_taps <= 10 && 2 * pwb * C + 7 <= kRawWords * 4;
    if (s2d_) kp = static_cast<int>((block_taps + 1) / 2 * 32);
    const int ph = (kTileH - 1) * stride + static_cast<int>(R),
              pw = (kTileW - 1) * stride + static_cast<int>(S);
    smem_ = s2d_    ? s2d_smem_bytes(static_cast<int>(K), kp, kTileH + static_cast<int>(R / 2) - 1, static_cast<int>(pwb))
            : int8_ ? smem_bytes_int8(static_cast<int>(K), kp, ph, pw)
                    : smem_bytes(static_cast<int>(K), kp, ph, pw);
    const int optin = ctx.prop != nullptr ? static_cast<int>(ctx.prop->sharedMemPerBlockOptin) : 48 * 1024;
    if (smem_ > optin)
      return unsupported(name + ": the direct stem conv needs " + std::to_string(smem_) +
                         " bytes of shared memory (" + std::to_string(optin) + " available)");
    // The INT8 form runs on the bytes only: its kernel is set by read_image_bytes.
    kernel_ = int8_ ? nullptr : stem_kernel(StemSource::kFloat, K);
    if (kernel_ != nullptr && smem_ > 48 * 1024)
      QYOLO_CUDA_CHECK(cudaFuncSetAttribute(kernel_, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_));

    // Weights [K][C][R][S] -> [K][kp] at k = (r * S + s) * 4 + c; zeros for c >= C and past R * S * 4;
    // each element converted by to(k, w): half, or s8 in the INT8 form.
    std::vector<float> wf = w->constant->to_float_vector();
    if (wf.size() != static_cast<size_t>(K * C * R * S))
      return invalid_argument(name + ": weight size mismatch");
    auto pack = [&](auto zero, auto to) {
      std::vector<decltype(zero)> packed(static_cast<size_t>(K * kp), zero);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t r = 0; r < R; ++r)
            for (int64_t s = 0; s < S; ++s)
              packed[static_cast<size_t>(k * kp + (s2d_ ? ((r / 2) * (S / 2) + s / 2) * 16 + ((r % 2) * 2 + s % 2) * 4 + c
                                                        : (r * S + s) * 4 + c))] =
                  to(k, wf[static_cast<size_t>(((k * C + c) * R + r) * S + s)]);
      return packed;
    };
    std::vector<float> bf(static_cast<size_t>(K), 0.f);
    if (b != nullptr) {
      bf = b->constant->to_float_vector();
      if (bf.size() != static_cast<size_t>(K)) return invalid_argument(name + ": bias size mismatch");
    }
    if (int8_) {
      // Per-output-channel symmetric s8 weights (as the INT8 conv kernel quantises them); the
      // accumulator of bytes x s8 times scale / 255 is the conv on the float image.
      std::vector<float> sw(static_cast<size_t>(K)), acc_scale(static_cast<size_t>(K));
      for (int64_t k = 0; k < K; ++k) {
        float amax = 0.f;
        for (int64_t j = 0; j < C * R * S; ++j) amax = std::max(amax, std::fabs(wf[static_cast<size_t>(k * C * R * S + j)]));
        sw[static_cast<size_t>(k)] = scale_from_amax(amax);
        acc_scale[static_cast<size_t>(k)] = sw[static_cast<size_t>(k)] / 255.f;
      }
      const std::vector<int8_t> wq =
          pack(int8_t{0}, [&](int64_t k, float v) { return quantize_int8(v, sw[static_cast<size_t>(k)]); });
      QYOLO_ASSIGN_OR_RETURN(weights_, DeviceBuffer::allocate(wq.size()));
      QYOLO_RETURN_IF_ERROR(weights_.upload(wq.data(), wq.size()));
      QYOLO_ASSIGN_OR_RETURN(acc_scale_, DeviceBuffer::allocate(acc_scale.size() * 4));
      QYOLO_RETURN_IF_ERROR(acc_scale_.upload(acc_scale.data(), acc_scale.size() * 4));
    } else {
      const std::vector<uint16_t> wh = pack(uint16_t{0}, [](int64_t, float v) { return float_to_half(v); });
      QYOLO_ASSIGN_OR_RETURN(weights_, DeviceBuffer::allocate(wh.size() * 2));
      QYOLO_RETURN_IF_ERROR(weights_.upload(wh.data(), wh.size() * 2));
    }
    // The bias, then the multiplier after the activation (ones without one: exact).
    std::vector<float> mult(static_cast<size_t>(K), 1.f);
    if (!a.output_multiplier.empty()) mult = a.output_multiplier;
    if (mult.size() != static_cast<size_t>(K)) return invalid_argument(name + ": output multiplier size mismatch");
    bf.insert(bf.end(), mult.begin(), mult.end());
    QYOLO_ASSIGN_OR_RETURN(bias_, DeviceBuffer::allocate(bf.size() * 4));
    QYOLO_RETURN_IF_ERROR(bias_.upload(bf.data(), bf.size() * 4));
    if (ctx.weight_bytes) *ctx.weight_bytes += weights_.size() + bias_.size() + acc_scale_.size();

    const Act act = to_act(a.activation);
    p_ = StemParams{};
    if (int8_) {
      p_.wq = weights_.as<int8_t>();
      p_.acc_scale = acc_scale_.as<float>();
    } else {
      p_.wt = weights_.as<__half>();
    }
    p_.in_scale = 1.f;
    p_.bias = bias_.as<float>();
    p_.mult = bias_.as<float>() + K;
    p_.c = static_cast<int>(C), p_.h = static_cast<int>(H), p_.w = static_cast<int>(W);
    p_.oh = static_cast<int>(OH), p_.ow = static_cast<int>(OW);
    p_.r = static_cast<int>(R), p_.s = static_cast<int>(S), p_.stride = stride;
    p_.pad_h = static_cast<int>(a.window.pads_begin[0]), p_.pad_w = static_cast<int>(a.window.pads_begin[1]);
    p_.kp = kp, p_.ph = ph, p_.pw = pw;
    p_.pitch = static_cast<int>(K);
    p_.pitch8 = static_cast<int>(K);
    p_.act = static_cast<int>(act);
    p_.alpha = a.activation_alpha;
    p_.small_acc =
        (ctx.options == nullptr || ctx.options->stem_conversion_free) && 255 * 127 * R * S * C < (int64_t{1} << 22);
    p_.s2d_ts = static_cast<int>(S / 2), p_.s2d_taps = static_cast<int>(block_taps);
    p_.s2d_ph = kTileH + static_cast<int>(R / 2) - 1, p_.s2d_pwb = static_cast<int>(pwb);
    p_.s2d_pad_h = static_cast<int>(pad_h / 2), p_.s2d_pad_w = static_cast<int>(pad_w / 2);
    p_.s2d_ksteps = static_cast<int>((block_taps + 1) / 2);
    p_.image_bytes = N * H * W * C;
    k_ = static_cast<int>(K);
    grid_ = dim3(static_cast<unsigned>((OW + kTileW - 1) / kTileW),
                 static_cast<unsigned>((OH + kTileH - 1) / kTileH), static_cast<unsigned>(N));
    return Status::ok();
  }

  // Concat in place: y is a channel slice of a wider NHWC buffer. pitch % 8 == 0 keeps the 16-byte
  // stores aligned (the executor places slices at 16-byte channel offsets).
  // Output 1 (the int8 copy) likewise, at 16-byte channel offsets.
  bool set_output_pitch(PrepareContext&, int index, int64_t pitch) override {
    if (index < 0 || index > 1 || pitch < k_ || pitch % (index == 0 ? 8 : 16) != 0 || pitch > (int64_t{1} << 30))
      return false;
    (index == 0 ? p_.pitch : p_.pitch8) = static_cast<int>(pitch);
    return true;
  }

  // The image's bytes instead of the float image (uint8-nhwc engines): same N, C, H, W, NHWC.
  bool read_image_bytes(PrepareContext&) override {
    if (bytes_) return false;
    bytes_ = true;
    kernel_ = s2d_ ? (p_.act == static_cast<int>(Act::kSilu) ? kS2dKernels<true> : kS2dKernels<false>)[k_ / 8 - 1]
                   : stem_kernel(int8_ ? StemSource::kBytesInt8 : StemSource::kBytes, k_);
    if (smem_ > 48 * 1024 &&
        cudaFuncSetAttribute(kernel_, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_) != cudaSuccess) {
      (void)cudaGetLastError();
      bytes_ = false;
      kernel_ = int8_ ? nullptr : stem_kernel(StemSource::kFloat, k_);
      return false;
    }
    p_.in_scale = 1.f / 255.f;
    return true;
  }

  // INT8 reader (--int8 --fp16): output 1 is the int8 NHWC copy quantised with `scale`, K channels
  // per pixel, so K must already be the 16-channel granule INT8 convs read.
  bool fuse_quantized_output(float scale) override {
    if (k_ % 16 != 0 || !(scale > 0.f) || !std::isfinite(scale) || quantized_) return false;
    p_.inv_scale = 1.0f / scale;
    scale_ = scale;
    quantized_ = true;
    return true;
  }

  Status finalize(PrepareContext&, std::span<const bool>) override {
    if (kernel_ == nullptr)
      return internal_error("the INT8 image stem conv reads the uint8 image bytes, but its input is not the engine's "
                            "uint8 image (read_image_bytes was not applied)");
    return Status::ok();
  }

  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in,
                 std::span<void* const> out) override {
    StemParams p = p_;
    if (bytes_)
      p.xb = static_cast<const uint8_t*>(in[0]);
    else
      p.x = static_cast<const float*>(in[0]);
    p.y = static_cast<__half*>(out[0]);  // null when only the int8 copy is read
    p.y8 = quantized_ && out.size() > 1 ? static_cast<int8_t*>(out[1]) : nullptr;
    if (kernel_ == nullptr || in[0] == nullptr || (p.y == nullptr && p.y8 == nullptr) ||
        reinterpret_cast<uintptr_t>(p.y) % 16 != 0 || reinterpret_cast<uintptr_t>(p.y8) % 16 != 0 ||
        (s2d_ && reinterpret_cast<uintptr_t>(p.xb) % 4 != 0))
      return internal_error("direct stem conv: missing or misaligned input/output");
    launch_kernel(kernel_, grid_, kThreads, static_cast<size_t>(smem_), ctx.stream, ctx.programmatic, p);
    QYOLO_CUDA_CHECK_LAUNCH("conv_stem_kernel");
    return Status::ok();
  }

  std::string info() const override {
    std::ostringstream os;
    os << "direct stem mma.sync " << (int8_ ? "u8.s8 (INT8)" : "f16") << (s2d_ ? " space-to-depth ldmatrix" : "") << " tile " << kTileH << "x" << kTileW
       << (bytes_ ? " uint8 NHWC image" : "") << " smem=" << smem_ << "B";
    if (p_.pitch != k_ || p_.pitch8 != k_) os << " pitched";
    if (quantized_) os << " ->int8 scale=" << scale_;
    return os.str();
  }

 private:
  StemKernelFn kernel_ = nullptr;
  int smem_ = 0, k_ = 0;
  bool int8_ = false, quantized_ = false, bytes_ = false, s2d_ = false;
  float scale_ = 0.f;
  dim3 grid_;
  DeviceBuffer weights_, bias_, acc_scale_;
  StemParams p_{};
};

}  // namespace

bool conv2d_stem_supports(const Shape& x, const Shape& w, const ConvAttrs& a) {
  if (x.size() != 4 || w.size() != 4) return false;
  const int64_t C = x[1], K = w[0], R = w[2], S = w[3];
  if (C < 1 || C > 4 || w[1] != C) return false;
  if (K % 8 != 0 || K < 8 || K > 64) return false;
  if (R < 1 || S < 1 || R * S * 4 > 256) return false;
  if (a.window.strides.empty() || (kTileW - 1) * a.window.strides[0] + S > kLoadUnroll * 32)
    return false;  // patch row
  if (a.group != 1 || a.has_residual) return false;
  const WindowGeometry& win = a.window;
  if (win.strides.size() != 2 || win.dilations.size() != 2 || win.pads_begin.size() != 2 ||
      win.pads_end.size() != 2)
    return false;
  if (win.dilations[0] != 1 || win.dilations[1] != 1) return false;
  if (win.strides[0] != win.strides[1] || win.strides[0] < 1 || win.strides[0] > 4) return false;
  if (win.pads_begin != win.pads_end || win.pads_begin[0] < 0 || win.pads_begin[1] < 0) return false;
  return true;
}

Result<std::unique_ptr<CudaKernel>> make_cuda_conv2d_stem(const Node&) {
  return std::unique_ptr<CudaKernel>(new ConvStemKernel(false));
}

Result<std::unique_ptr<CudaKernel>> make_cuda_conv2d_image_stem_int8(const Node&) {
  return std::unique_ptr<CudaKernel>(new ConvStemKernel(true));
}

}  // namespace qyolo::cuda
