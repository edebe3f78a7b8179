// INT8 Conv 2-D on tensor cores: our own implicit-GEMM kernel (mma.sync m16n8k32 s8 x s8 -> s32,
// sm_80+), with the whole epilogue fused: per-channel dequantisation, bias, activation, residual
// add, and optionally requantisation of the output for the next INT8 convolution.
//
// Scale convention (src/quant/quant_params.h): real = scale * q, symmetric, q in [-127, 127].
// The numbers are those of the CPU INT8 kernel (src/backends/cpu/conv2d_int8.cpp):
//   x_q = round(x / s_x) (a quantize step, or the producer's requantising epilogue)
//   w_q[c] = round(W[c] / s_w[c]),  s_w[c] = max|W[c]| / 127
//   y[c] = act(s_x * s_w[c] * (sum(x_q * w_q[c]) + b[c] / (s_x * s_w[c]))) + residual
//   y_q  = round(y / s_next)        (fused requantisation, when the only readers are INT8 convs)
//
// GEMM view (NHWC): M = N*OH*OW output pixels, N = output channels, K = R*S*Cp with the input
// channels padded to Cp (a multiple of 16, zeros) so that every 16-byte chunk of A is 16 channels
// of one pixel at one filter tap. A is gathered from the input by cp.async (zero-fill for padding
// and tails), B is the packed weight [Cout][R][S][Cp]. Shared-memory rows are 64 + 16 bytes, which
// makes the ldmatrix reads conflict-free without swizzling.
//
// Tactics: several tile shapes; prepare() times each on the real problem and keeps the fastest
// (memoised by problem key, so identical convolutions and engine reloads skip the timing).
// On Hopper (compute capability 9.0) the tactics include a wgmma kernel (sm_90a code): the same
// gather into 128-byte-swizzled shared memory, two warpgroups issuing wgmma from it. This file
// is built for sm_90a and compute_80 PTX only (CMakeLists.txt: QYOLO_INT8_CUDA_FLAGS).
//
// With half between layers (--int8 --fp16) cuDNN's runtime-fusion INT8 engines are one more
// tactic: the same int8 input and packed weights, int32 accumulation, then dequantisation, bias,
// activation, residual and (for an int8 output) requantisation fused by cuDNN. They write one
// output, half or int8, so the choice is final only once the executor knows which outputs are
// read (finalize()); it is timed against our kernel on that configuration.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/cudnn_graph.h"
#include "backends/cuda/yolo_decode.cuh"
#include "ir/ops/conv2d.h"
#include "quant/quant_params.h"

// The compute_75 PTX pass compiles the tensor-core kernel bodies out (sm_80+ only), leaving the
// device helpers unreferenced there.
#pragma nv_diag_suppress 177

namespace qyolo::cuda {

namespace {

struct ConvInt8Params {
  const int8_t* x;         // NHWC [N][H][W][Cp]
  const int8_t* wt;        // [K][R][S][Cp]
  const float* out_scale;  // [K]: s_x * s_w[c]
  const float* bias_q;     // [K]: b[c] / out_scale[c] (accumulator units), or nullptr
  const float* out_mult;   // [K]: times the activation's output (ConvAttrs::output_multiplier), or nullptr
  const void* residual;    // like y (NHWC [N][OH][OW][K]), or int8 (residual_int8), or nullptr
  void* y;                 // NHWC [N][OH][OW][K], half or float; nullptr: not written
  int8_t* yq;              // NHWC [N][OH][OW][K] int8 (requantised), or nullptr
  float yq_scale, yq_inv_scale;
  int fast_math;  // half between layers: fast exp/division in the epilogue (cuda_common.cuh)
  int n, h, w, cp, k, r, s, oh, ow;
  int pad_h, pad_w, stride_h, stride_w, dil_h, dil_w;
  int m;      // n * oh * ow
  int kgemm;  // r * s * cp
  int act;
  float alpha;
  int y_fp32;  // y (and residual) are float instead of half
  int y_ld, yq_ld;  // elements between output pixels in y / yq: K, or more when written into a concat
  int decode;       // the detect head: y is the YOLO decode of the conv output (dec), not the output
  // The residual is int8 NHWC (residual_ld channels between pixels), added as residual_scale * r.
  int residual_int8, residual_ld;
  float residual_scale;
  YoloDecodeParams dec;
};

// BK: bytes (= int8 elements) of K per pipeline stage, 64 or 128. Shared-memory rows are BK + 16
// bytes: 80 or 144, both odd multiples of 16 bytes, so 8 consecutive rows hit 8 distinct 16-byte
// bank groups and ldmatrix is conflict-free without swizzling.
template <int BM_, int BN_, int BK_, int WARPS_M_, int WARPS_N_, int STAGES_>
struct TileConfig {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, WARPS_M = WARPS_M_, WARPS_N = WARPS_N_, STAGES = STAGES_;
  static constexpr int kThreads = WARPS_M * WARPS_N * 32;
  static constexpr int kChunks = BK / 16;  // 16-byte chunks per row and stage
  static constexpr int kRow = BK + 16;
  static constexpr int WTM = BM / WARPS_M, WTN = BN / WARPS_N;
  static constexpr int MT = WTM / 16, NT = WTN / 8;
  static constexpr int kStageBytes = (BM + BN) * kRow;
  // The pipeline buffers, or the staged epilogue's float tile if that is larger.
  static constexpr int kEpilogueBytes = BM * (BN + 4) * 4;
  static constexpr int kSmem = STAGES * kStageBytes > kEpilogueBytes ? STAGES * kStageBytes : kEpilogueBytes;
  static_assert(BK == 64 || BK == 128, "BK");
  static_assert(WTM % 16 == 0 && WTN % 16 == 0, "warp tile: 16-row A fragments, pairs of n8 B fragments");
  static_assert((BM * kChunks) % kThreads == 0, "A chunks per thread");
};

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

__device__ __forceinline__ void mma_s8(int (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// Staged epilogue, shared by the kernels: the accumulators are dequantised (+ bias, activation)
// into a float tile in shared memory [BM][BN + 4] (+4 spreads rows over banks), then store_tile
// finishes each pixel's channels with coalesced, vectorised residual loads and stores.
struct EpiloguePair {
  float s0 = 0.f, s1 = 0.f, b0 = 0.f, b1 = 0.f, m0 = 1.f, m1 = 1.f;
  // Channels col, col + 1.
  __device__ __forceinline__ EpiloguePair(const ConvInt8Params& p, int col) {
    if (col < p.k) {
      s0 = p.out_scale[col];
      if (p.bias_q) b0 = p.bias_q[col];
      if (p.out_mult) m0 = p.out_mult[col];
    }
    if (col + 1 < p.k) {
      s1 = p.out_scale[col + 1];
      if (p.bias_q) b1 = p.bias_q[col + 1];
      if (p.out_mult) m1 = p.out_mult[col + 1];
    }
  }
  // The multiplier after the activation (1 without: exact), as the CPU INT8 epilogue applies it.
  __device__ __forceinline__ float2 operator()(const ConvInt8Params& p, int acc0, int acc1) const {
    const float x0 = (static_cast<float>(acc0) + b0) * s0;
    const float x1 = (static_cast<float>(acc1) + b1) * s1;
    const Act act = static_cast<Act>(p.act);
    if (p.fast_math) return make_float2(apply_act_fast(act, x0, p.alpha) * m0, apply_act_fast(act, x1, p.alpha) * m1);
    return make_float2(apply_act(act, x0, p.alpha) * m0, apply_act(act, x1, p.alpha) * m1);
  }
};

// Rows m0.. and channels n0.. of the tile to y / yq (or through the fused decode); K % 8 == 0 gets
// 8 channels of one pixel per thread (16/8-byte vectors), odd K one element per thread.
template <int BM, int BN, int kThreads>
__device__ __forceinline__ void store_tile(const ConvInt8Params& p, const float* tile, int m0, int n0, int tid) {
  constexpr int kPitch = BN + 4;
  static_assert(kThreads % BN == 0, "the decode epilogue: whole rows per pass");
  if (p.decode) {
    // The fused YOLO decode: pixel row = (n * OH + h) * OW + w, channel col = a * C + c ->
    // output [n][a][h][w][c]. Each thread keeps one channel and walks rows, advancing (n, h, w)
    // instead of dividing per element; neighbouring threads write neighbouring c (coalesced).
    constexpr int kRowStep = kThreads / BN;
    const int lc = tid % BN, col = n0 + lc;
    if (col >= p.k) return;
    const YoloDecodeParams& d = p.dec;
    const int a = col / d.C, c = col - a * d.C;
    int lr = tid / BN, row = m0 + lr;
    int w = row % p.ow, t = row / p.ow;
    int h = t % p.oh, img = t / p.oh;
    for (; lr < BM && row < p.m; lr += kRowStep, row += kRowStep) {
      const float v = tile[lr * kPitch + lc];
      const int64_t cell = (static_cast<int64_t>(a) * d.H + h) * d.W + w;
      const int64_t od = static_cast<int64_t>(img) * d.out_pitch + cell * d.C + c;
      if (d.out_half)
        static_cast<__half*>(p.y)[od] = yolo_decode_one<__half>(d, v, c, cell * 2, static_cast<const __half*>(d.grid),
                                                                static_cast<const __half*>(d.anchor));
      else
        static_cast<float*>(p.y)[od] = yolo_decode_one<float>(d, v, c, cell * 2, static_cast<const float*>(d.grid),
                                                              static_cast<const float*>(d.anchor));
      for (w += kRowStep; w >= p.ow;) {
        w -= p.ow;
        if (++h == p.oh) h = 0, ++img;
      }
    }
    return;
  }
  if ((p.k & 7) != 0) {
    // Odd channel counts (the detect head's 3 * (5 + classes)): one element per thread,
    // consecutive threads on consecutive channels of a pixel row (coalesced, no vectors).
    for (int idx = tid; idx < BM * BN; idx += kThreads) {
      const int lr = idx / BN, lc = idx % BN;
      const int row = m0 + lr, col = n0 + lc;
      if (row >= p.m || col >= p.k) continue;
      float v = tile[lr * kPitch + lc];
      const int64_t o = static_cast<int64_t>(row) * p.k + col;
      if (p.residual && p.residual_int8)
        v += p.residual_scale *
             static_cast<float>(static_cast<const int8_t*>(p.residual)[static_cast<int64_t>(row) * p.residual_ld + col]);
      else if (p.residual)
        v += p.y_fp32 ? static_cast<const float*>(p.residual)[o] : __half2float(static_cast<const __half*>(p.residual)[o]);
      if (p.y) {
        const int64_t oy = static_cast<int64_t>(row) * p.y_ld + col;
        if (p.y_fp32) static_cast<float*>(p.y)[oy] = v;
        else static_cast<__half*>(p.y)[oy] = __float2half_rn(v);
      }
      if (p.yq)
        p.yq[static_cast<int64_t>(row) * p.yq_ld + col] =
            p.fast_math ? quantize_s8_fast(v, p.yq_inv_scale) : quantize_s8(v, p.yq_scale);
    }
    return;
  }
  constexpr int kGroups = BN / 8;
  for (int idx = tid; idx < BM * kGroups; idx += kThreads) {
    const int lr = idx / kGroups, lg = idx % kGroups;
    const int row = m0 + lr, col = n0 + lg * 8;
    if (row >= p.m || col >= p.k) continue;
    const float4 lo = *reinterpret_cast<const float4*>(tile + lr * kPitch + lg * 8);
    const float4 hi = *reinterpret_cast<const float4*>(tile + lr * kPitch + lg * 8 + 4);
    float v[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
    const int64_t o = static_cast<int64_t>(row) * p.k + col;
    if (p.residual && p.residual_int8) {
      const uint2 rv = *reinterpret_cast<const uint2*>(static_cast<const int8_t*>(p.residual) +
                                                       static_cast<int64_t>(row) * p.residual_ld + col);
      const int8_t* rq = reinterpret_cast<const int8_t*>(&rv);
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] += p.residual_scale * static_cast<float>(rq[k]);
    } else if (p.residual) {
      if (p.y_fp32) {
        const float4 r0 = *reinterpret_cast<const float4*>(static_cast<const float*>(p.residual) + o);
        const float4 r1 = *reinterpret_cast<const float4*>(static_cast<const float*>(p.residual) + o + 4);
        v[0] += r0.x, v[1] += r0.y, v[2] += r0.z, v[3] += r0.w, v[4] += r1.x, v[5] += r1.y, v[6] += r1.z, v[7] += r1.w;
      } else {
        const uint4 rv = *reinterpret_cast<const uint4*>(static_cast<const __half*>(p.residual) + o);
        const __half2* rh = reinterpret_cast<const __half2*>(&rv);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          const float2 f = __half22float2(rh[k]);
          v[2 * k] += f.x, v[2 * k + 1] += f.y;
        }
      }
    }
    if (p.y) {
      const int64_t oy = static_cast<int64_t>(row) * p.y_ld + col;
      if (p.y_fp32) {
        float* y = static_cast<float*>(p.y) + oy;
        *reinterpret_cast<float4*>(y) = make_float4(v[0], v[1], v[2], v[3]);
        *reinterpret_cast<float4*>(y + 4) = make_float4(v[4], v[5], v[6], v[7]);
      } else {
        uint4 hv;
        __half2* hh = reinterpret_cast<__half2*>(&hv);
#pragma unroll
        for (int k = 0; k < 4; ++k) hh[k] = __floats2half2_rn(v[2 * k], v[2 * k + 1]);
        *reinterpret_cast<uint4*>(static_cast<__half*>(p.y) + oy) = hv;
      }
    }
    if (p.yq) {
      uint2 qv;
      int8_t* qs = reinterpret_cast<int8_t*>(&qv);
#pragma unroll
      for (int k = 0; k < 8; ++k)
        qs[k] = p.fast_math ? quantize_s8_fast(v[k], p.yq_inv_scale) : quantize_s8(v[k], p.yq_scale);
      *reinterpret_cast<uint2*>(p.yq + static_cast<int64_t>(row) * p.yq_ld + col) = qv;
    }
  }
}

// This thread's share of the implicit-GEMM gather, the same in both INT8 kernels: kAIters A rows
// (output pixels, fixed across K; per row the element offset of its (ih0, iw0) corner in x, which
// may lie outside the image and is only used with a tap that lands inside, and the corner for the
// bounds checks) and the K position of its 16-byte chunk, k = (r * S + s) * Cp + c.
template <int kAIters, int kRowsPerPass>
struct GemmGather {
  int64_t a_off[kAIters];
  int a_ih[kAIters], a_iw[kAIters];
  int ld_k, ld_c, ld_r, ld_s;
  int dh = 0, dw = 0, tap_off = 0;  // the current k-tile's tap (begin_tile)
  bool kvalid = false;

  __device__ __forceinline__ GemmGather(const ConvInt8Params& p, int m0, int row0, int kc) {
#pragma unroll
    for (int i = 0; i < kAIters; ++i) {
      const int gm = m0 + row0 + i * kRowsPerPass;
      if (gm < p.m) {
        const int ow = gm % p.ow, t = gm / p.ow;
        const int oh = t % p.oh, img = t / p.oh;
        a_ih[i] = oh * p.stride_h - p.pad_h;
        a_iw[i] = ow * p.stride_w - p.pad_w;
        a_off[i] = (static_cast<int64_t>(img) * p.h * p.w + static_cast<int64_t>(a_ih[i]) * p.w + a_iw[i]) * p.cp;
      } else {
        a_off[i] = 0;
        a_ih[i] = -(1 << 28);  // never inside the image
        a_iw[i] = 0;
      }
    }
    ld_k = kc * 16;
    ld_c = ld_k % p.cp;
    const int rs = ld_k / p.cp;
    ld_r = rs / p.s;
    ld_s = rs % p.s;
  }
  // The tap this k-tile's chunk reads (the same for every row).
  __device__ __forceinline__ void begin_tile(const ConvInt8Params& p) {
    kvalid = ld_k < p.kgemm;
    dh = ld_r * p.dil_h;
    dw = ld_s * p.dil_w;
    tap_off = (dh * p.w + dw) * p.cp + ld_c;
  }
  // Source of A row i's chunk; nullptr where it is zero (padding, past K).
  __device__ __forceinline__ const int8_t* a_src(const ConvInt8Params& p, int i) const {
    const int ih = a_ih[i] + dh, iw = a_iw[i] + dw;
    const bool v = kvalid && static_cast<unsigned>(ih) < static_cast<unsigned>(p.h) &&
                   static_cast<unsigned>(iw) < static_cast<unsigned>(p.w);
    return v ? p.x + (a_off[i] + tap_off) : nullptr;
  }
  // Source of weight row gn's chunk; nullptr past K or past the output channels.
  __device__ __forceinline__ const int8_t* b_src(const ConvInt8Params& p, int gn) const {
    return kvalid && gn < p.k ? p.wt + static_cast<int64_t>(gn) * p.kgemm + ld_k : nullptr;
  }
  __device__ __forceinline__ void advance(const ConvInt8Params& p, int bk) {
    ld_k += bk;
    ld_c += bk;
    while (ld_c >= p.cp) {
      ld_c -= p.cp;
      if (++ld_s == p.s) {
        ld_s = 0;
        ++ld_r;
      }
    }
  }
};

// cp.async of 16 bytes from src, or 16 zeros when src is null (`any`: a valid address).
__device__ __forceinline__ void cp_async16_or_zero(void* smem, const int8_t* src, const int8_t* any) {
  cp_async16(smem, src ? src : any, src ? 16 : 0);
}

template <class C>
__global__ void __launch_bounds__(C::kThreads) conv_int8_kernel(ConvInt8Params p) {
  await_producers();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  extern __shared__ __align__(16) uint8_t smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp % C::WARPS_M, wn = warp / C::WARPS_M;
  const int m0 = blockIdx.x * C::BM, n0 = blockIdx.y * C::BN;
  constexpr int kRow = C::kRow;
  constexpr int kRowsPerPass = C::kThreads / C::kChunks;
  constexpr int kAIters = C::BM / kRowsPerPass;
  constexpr int kBIters = (C::BN + kRowsPerPass - 1) / kRowsPerPass;
  const int kc = tid % C::kChunks;  // this thread's 16-byte chunk within a BK-byte K slice
  const int row0 = tid / C::kChunks;

  GemmGather<kAIters, kRowsPerPass> gather(p, m0, row0, kc);
  auto load_stage = [&](int stage) {
    uint8_t* as = smem + stage * C::kStageBytes;
    uint8_t* bs = as + C::BM * kRow;
    gather.begin_tile(p);
#pragma unroll
    for (int i = 0; i < kAIters; ++i) cp_async16_or_zero(as + (row0 + i * kRowsPerPass) * kRow + kc * 16, gather.a_src(p, i), p.x);
#pragma unroll
    for (int i = 0; i < kBIters; ++i) {
      const int row = row0 + i * kRowsPerPass;
      if (row < C::BN) cp_async16_or_zero(bs + row * kRow + kc * 16, gather.b_src(p, n0 + row), p.wt);
    }
  };
  auto advance = [&]() { gather.advance(p, C::BK); };

  int acc[C::MT][C::NT][4];
#pragma unroll
  for (int i = 0; i < C::MT; ++i)
#pragma unroll
    for (int j = 0; j < C::NT; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[i][j][q] = 0;

  const int ktiles = (p.kgemm + C::BK - 1) / C::BK;
#pragma unroll
  for (int st = 0; st < C::STAGES - 1; ++st) {
    if (st < ktiles) load_stage(st);
    advance();
    cp_async_commit();
  }

  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<C::STAGES - 2>();
    __syncthreads();
    const int next = kt + C::STAGES - 1;
    if (next < ktiles) load_stage(next % C::STAGES);
    advance();
    cp_async_commit();

    const uint8_t* as = smem + (kt % C::STAGES) * C::kStageBytes;
    const uint8_t* bs = as + C::BM * kRow;
#pragma unroll
    for (int kk = 0; kk < C::BK / 32; ++kk) {
      uint32_t af[C::MT][4];
      uint32_t bf[C::NT / 2][4];
#pragma unroll
      for (int mt = 0; mt < C::MT; ++mt) {
        const int row = wm * C::WTM + mt * 16 + (lane & 15);
        ldmatrix_x4(af[mt], as + row * kRow + kk * 32 + (lane >> 4) * 16);
      }
#pragma unroll
      for (int j = 0; j < C::NT / 2; ++j) {
        const int row = wn * C::WTN + j * 16 + (lane & 7) + ((lane >> 4) << 3);
        ldmatrix_x4(bf[j], bs + row * kRow + kk * 32 + ((lane >> 3) & 1) * 16);
      }
#pragma unroll
      for (int mt = 0; mt < C::MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < C::NT; ++nt)
          mma_s8(acc[mt][nt], af[mt], bf[nt / 2][(nt & 1) * 2], bf[nt / 2][(nt & 1) * 2 + 1]);
    }
  }
  cp_async_wait<0>();
  const int g = lane >> 2, t = lane & 3;
  __syncthreads();  // every warp is done reading the pipeline buffers
  float* tile = reinterpret_cast<float*>(smem);
#pragma unroll
  for (int nt = 0; nt < C::NT; ++nt) {
    const int lc = wn * C::WTN + nt * 8 + 2 * t;
    const EpiloguePair e(p, n0 + lc);
#pragma unroll
    for (int mt = 0; mt < C::MT; ++mt)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const int lr = wm * C::WTM + mt * 16 + g + hf * 8;
        *reinterpret_cast<float2*>(tile + lr * (C::BN + 4) + lc) = e(p, acc[mt][nt][hf * 2], acc[mt][nt][hf * 2 + 1]);
      }
  }
  __syncthreads();
  store_tile<C::BM, C::BN, C::kThreads>(p, tile, m0, n0, tid);
#endif
}


// ---- Hopper (sm_90a): wgmma ----------------------------------------------------------------
// The same implicit GEMM with the tensor-core work on wgmma: two warpgroups (256 threads) each own
// 64 rows of a 128 x BN tile; A and B stay in shared memory in the 128-byte-swizzled K-major layout
// wgmma reads through matrix descriptors (BK = 128 bytes = one swizzle row), filled by the same
// cp.async gather. Built only into the sm_90a code (and chosen only on compute capability 9.0).

// Shared-memory matrix descriptor: 128-byte swizzle, 8-row groups 1024 bytes apart.
__device__ __forceinline__ uint64_t wgmma_desc(const void* smem_ptr) {
  const uint64_t a = static_cast<uint64_t>(__cvta_generic_to_shared(smem_ptr));
  return ((a & 0x3FFFF) >> 4) | (uint64_t{1} << 16) | (uint64_t{1024 >> 4} << 32) | (uint64_t{1} << 62);
}
__device__ __forceinline__ void wgmma_fence() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
// Waits until at most N committed wgmma groups of this warpgroup are still running.
template <int N> __device__ __forceinline__ void wgmma_wait() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
// cp.async writes are ordinary (generic-proxy) shared-memory writes; wgmma reads through the async
// proxy: each writing thread fences before the barrier.
__device__ __forceinline__ void fence_proxy_async() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_m64n64k32(int (&d)[32], uint64_t desc_a, uint64_t desc_b, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k32.s32.s8.s8 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p;\n}\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]), "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]), "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]), "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31])
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
#endif
}
__device__ __forceinline__ void wgmma_m64n128k32(int (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p;\n}\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]), "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]), "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]), "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]), "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]), "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]), "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]), "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
#endif
}

template <int BN> struct WgmmaN;
template <> struct WgmmaN<64> {
  static __device__ __forceinline__ void mma(int (&d)[32], uint64_t a, uint64_t b, int sd) { wgmma_m64n64k32(d, a, b, sd); }
};
template <> struct WgmmaN<128> {
  static __device__ __forceinline__ void mma(int (&d)[64], uint64_t a, uint64_t b, int sd) { wgmma_m64n128k32(d, a, b, sd); }
};

template <int BN_, int STAGES_>
struct WgmmaConfig {
  static constexpr int BM = 128, BN = BN_, BK = 128, STAGES = STAGES_;
  static constexpr int kThreads = 256;
  static constexpr int kChunks = BK / 16;  // 16-byte chunks per 128-byte row
  static constexpr int kStageBytes = (BM + BN) * BK;
  static constexpr int kEpilogueBytes = BM * (BN + 4) * 4;
  // + 1024: the swizzle atoms need a 1024-byte-aligned base.
  static constexpr int kSmem = (STAGES * kStageBytes > kEpilogueBytes ? STAGES * kStageBytes : kEpilogueBytes) + 1024;
};

template <class C>
__global__ void __launch_bounds__(C::kThreads) conv_int8_wgmma_kernel(ConvInt8Params p) {
  await_producers();
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(16) uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
  const int m0 = blockIdx.x * C::BM, n0 = blockIdx.y * C::BN;
  constexpr int kRowsPerPass = C::kThreads / C::kChunks;  // 32
  constexpr int kAIters = C::BM / kRowsPerPass;
  constexpr int kBIters = C::BN / kRowsPerPass;
  const int kc = tid % C::kChunks;
  const int row0 = tid / C::kChunks;

  GemmGather<kAIters, kRowsPerPass> gather(p, m0, row0, kc);
  // Row r's 16-byte chunk c lands at chunk c ^ (r % 8) of its 128-byte row (the 128B swizzle).
  auto load_stage = [&](int stage) {
    uint8_t* as = smem + stage * C::kStageBytes;
    uint8_t* bs = as + C::BM * C::BK;
    gather.begin_tile(p);
#pragma unroll
    for (int i = 0; i < kAIters; ++i) {
      const int row = row0 + i * kRowsPerPass;
      cp_async16_or_zero(as + row * C::BK + ((kc ^ (row & 7)) << 4), gather.a_src(p, i), p.x);
    }
#pragma unroll
    for (int i = 0; i < kBIters; ++i) {
      const int row = row0 + i * kRowsPerPass;
      cp_async16_or_zero(bs + row * C::BK + ((kc ^ (row & 7)) << 4), gather.b_src(p, n0 + row), p.wt);
    }
  };
  auto advance = [&]() { gather.advance(p, C::BK); };

  int acc[C::BN / 2];
#pragma unroll
  for (int i = 0; i < C::BN / 2; ++i) acc[i] = 0;

  // One k-tile's wgmma stays in flight while the next tile is waited for and issued, so the
  // buffer refilled at iteration kt is the one iteration kt - 2 read: every warpgroup has waited
  // for that (wgmma_wait<1> at kt - 1) before this iteration's barrier. Loads run STAGES - 2 ahead.
  static_assert(C::STAGES >= 3, "one stage computing, one in flight, one loading");
  const int ktiles = (p.kgemm + C::BK - 1) / C::BK;
#pragma unroll
  for (int st = 0; st < C::STAGES - 2; ++st) {
    if (st < ktiles) load_stage(st);
    advance();
    cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<C::STAGES - 3>();  // this thread's part of tile kt has landed
    fence_proxy_async();
    __syncthreads();
    const int next = kt + C::STAGES - 2;
    if (next < ktiles) load_stage(next % C::STAGES);
    advance();
    cp_async_commit();

    const uint8_t* as = smem + (kt % C::STAGES) * C::kStageBytes;
    const uint8_t* bs = as + C::BM * C::BK;
    const uint64_t da = wgmma_desc(as + wg * 64 * C::BK), db = wgmma_desc(bs);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < C::BK / 32; ++kk)  // 32 bytes of K per wgmma: the start address moves 2 x 16 bytes
      WgmmaN<C::BN>::mma(acc, da + 2 * kk, db + 2 * kk, 1);
    wgmma_commit();
    wgmma_wait<1>();
  }
  wgmma_wait<0>();
  cp_async_wait<0>();
  __syncthreads();  // every warpgroup is done reading the pipeline buffers

  // Accumulator layout (per warpgroup): n8 block j holds rows w*16 + lane/4 (+8) and columns
  // 8j + 2 (lane % 4) (+1) in acc[4j .. 4j+3].
  float* tile = reinterpret_cast<float*>(smem);
  const int g = lane >> 2, t = lane & 3, wrow = wg * 64 + (warp & 3) * 16 + g;
#pragma unroll
  for (int j = 0; j < C::BN / 8; ++j) {
    const int lc = j * 8 + 2 * t;
    const EpiloguePair e(p, n0 + lc);
    *reinterpret_cast<float2*>(tile + wrow * (C::BN + 4) + lc) = e(p, acc[4 * j], acc[4 * j + 1]);
    *reinterpret_cast<float2*>(tile + (wrow + 8) * (C::BN + 4) + lc) = e(p, acc[4 * j + 2], acc[4 * j + 3]);
  }
  __syncthreads();
  store_tile<C::BM, C::BN, C::kThreads>(p, tile, m0, n0, tid);
#endif
}

// yq = requantised y, 8 channels per thread (K % 16 == 0, 16-byte aligned rows): the int8 copy
// when a cuDNN INT8 engine writes the half output and INT8 convs read the value too.
__global__ void requantize_half_kernel(const __half* __restrict__ y, int y_ld, int8_t* __restrict__ yq, int yq_ld,
                                       int k8, int64_t total, float inv_scale) {
  await_producers();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t row = i / k8;
  const int c = static_cast<int>(i - row * k8) * 8;
  float f[8];
  load8(y + row * y_ld + c, 0, f);
  alignas(8) int8_t q[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) q[j] = quantize_s8_fast(f[j], inv_scale);
  *reinterpret_cast<uint2*>(yq + row * yq_ld + c) = *reinterpret_cast<const uint2*>(q);
}

Status launch_requantize(const void* y, int y_ld, int8_t* yq, int yq_ld, int k, int m, float inv_scale,
                         cudaStream_t stream, bool pdl = false) {
  const int64_t total = static_cast<int64_t>(m) * (k / 8);
  constexpr int kThreads = 256;
  launch_kernel(requantize_half_kernel, static_cast<unsigned>((total + kThreads - 1) / kThreads), kThreads, 0, stream, pdl,
                static_cast<const __half*>(y), y_ld, yq, yq_ld, k / 8, total, inv_scale);
  QYOLO_CUDA_CHECK_LAUNCH("requantize_half_kernel");
  return Status::ok();
}

// The tactics: tile shapes for large and small channel counts.
struct Tactic {
  const char* name;
  int bm, bn, bk, threads, smem;
  void (*kernel)(ConvInt8Params);
  bool sm90a = false;  // wgmma: compute capability 9.0 only
};

template <int BM, int BN, int BK, int WM, int WN, int ST> constexpr Tactic tactic(const char* name) {
  using C = TileConfig<BM, BN, BK, WM, WN, ST>;
  return {name, C::BM, C::BN, C::BK, C::kThreads, C::kSmem, &conv_int8_kernel<C>};
}
template <int BN, int ST> constexpr Tactic wgmma_tactic(const char* name) {
  using C = WgmmaConfig<BN, ST>;
  return {name, C::BM, C::BN, C::BK, C::kThreads, C::kSmem, &conv_int8_wgmma_kernel<C>, true};
}

// Append only: engine files store tactic indices (by problem key, with the GPU name).
const Tactic kTactics[] = {
    tactic<128, 128, 64, 2, 2, 3>("igemm_128x128x64_s3"),  tactic<128, 64, 64, 2, 2, 4>("igemm_128x64x64_s4"),
    tactic<64, 64, 64, 2, 2, 4>("igemm_64x64x64_s4"),      tactic<128, 32, 64, 4, 1, 4>("igemm_128x32x64_s4"),
    tactic<64, 32, 64, 2, 1, 4>("igemm_64x32x64_s4"),      tactic<256, 64, 64, 4, 2, 3>("igemm_256x64x64_s3"),
    tactic<128, 16, 64, 4, 1, 4>("igemm_128x16x64_s4"),    tactic<128, 128, 128, 2, 2, 3>("igemm_128x128x128_s3"),
    tactic<128, 64, 128, 2, 2, 4>("igemm_128x64x128_s4"),  tactic<64, 64, 128, 2, 2, 4>("igemm_64x64x128_s4"),
    tactic<256, 64, 128, 4, 2, 3>("igemm_256x64x128_s3"),  tactic<256, 128, 128, 4, 2, 3>("igemm_256x128x128_s3"),
    tactic<128, 32, 128, 4, 1, 4>("igemm_128x32x128_s4"),
    // Two stages: for small K (1x1 convs on few channels, the stem) a deep pipeline has nothing to
    // overlap, and half the shared memory doubles the CTAs per SM.
    tactic<128, 32, 64, 4, 1, 2>("igemm_128x32x64_s2"),    tactic<64, 32, 64, 2, 1, 2>("igemm_64x32x64_s2"),
    tactic<128, 64, 64, 2, 2, 2>("igemm_128x64x64_s2"),    tactic<64, 64, 64, 2, 2, 2>("igemm_64x64x64_s2"),
    tactic<256, 64, 64, 4, 2, 2>("igemm_256x64x64_s2"),
    // Small outputs (batch 1 at 20x20): more CTAs.
    tactic<64, 16, 64, 2, 1, 4>("igemm_64x16x64_s4"),
    // Hopper.
    wgmma_tactic<64, 4>("wgmma_128x64x128_s4"),            wgmma_tactic<128, 4>("wgmma_128x128x128_s4"),
    wgmma_tactic<128, 3>("wgmma_128x128x128_s3"),          wgmma_tactic<64, 6>("wgmma_128x64x128_s6"),
};
constexpr int kNumTactics = static_cast<int>(sizeof(kTactics) / sizeof(kTactics[0]));

Status launch(const Tactic& t, const ConvInt8Params& p, cudaStream_t stream, bool pdl = false) {
  const dim3 grid(static_cast<unsigned>((p.m + t.bm - 1) / t.bm), static_cast<unsigned>((p.k + t.bn - 1) / t.bn));
  if (grid.y > 65535) return unsupported("int8 conv: too many output channels");
  launch_kernel(t.kernel, grid, t.threads, t.smem, stream, pdl, p);
  QYOLO_CUDA_CHECK_LAUNCH(t.name);
  return Status::ok();
}

// Which output a cuDNN INT8 engine writes: the half one, the int8 one, or, when both are read, both
// from one graph or the half one followed by our requantisation pass.
enum class CudnnOut { kHalf, kInt8, kHalfThenRequantise, kHalfAndInt8 };

class ConvInt8Kernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext& ctx, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    const TensorInfo& x = *in[0];
    const TensorInfo* w = in.size() > 1 ? in[1] : nullptr;
    const TensorInfo* b = in.size() > 2 ? in[2] : nullptr;
    const TensorInfo* r = in.size() > 3 ? in[3] : nullptr;
    const TensorInfo& y = out[0];
    name_ = node.describe();
    if (ctx.prop->major < 8)
      return unsupported(name_ + ": the INT8 tensor-core convolution needs sm_80 or newer (this GPU is sm_" +
                         std::to_string(ctx.prop->major * 10 + ctx.prop->minor) + ")");
    if (w == nullptr || w->constant == nullptr) return unsupported(name_ + ": INT8 convolution needs constant weights");
    if (b != nullptr && b->constant == nullptr) return unsupported(name_ + ": INT8 convolution needs a constant bias");
    if (x.dtype != DataType::kInt8 || x.layout != Layout::kNHWC || x.shape.size() != 4)
      return internal_error(name_ + ": INT8 convolution expects a quantised NHWC input");
    QYOLO_ASSIGN_OR_RETURN(input_scale_, node.attr_float("qyolo_input_scale"));
    if (!(input_scale_ > 0.f) || !std::isfinite(input_scale_))
      return invalid_argument(name_ + ": invalid input scale " + std::to_string(input_scale_));
    // The logical input shape is the unpadded one; the quantised value has Cp >= C channels, and
    // with space-to-depth (x.s2d = f) holds the image at 1/f resolution with f*f*C channels.
    const int f = x.s2d;
    Shape xs = x.shape;
    const int64_t cp = xs[1];
    xs[1] = w->shape[1];
    xs[2] *= f;
    xs[3] *= f;
    QYOLO_ASSIGN_OR_RETURN(ConvAttrs a, ConvAttrs::parse(node, xs, w->shape));
    if (a.group != 1) return unsupported(name_ + ": INT8 convolution supports group = 1 only");
    // y may have more channels than the weights (padded output, the 255-channel detect heads with
    // half out: fp16_pad_channels): the extra ones get zero weights and readers see the first K.
    Shape y_model = y.shape;
    if (y_model.size() == 4) y_model[1] = w->shape[0];
    if (a.out_shape != y_model || y.shape[1] < w->shape[0] || (y.shape[1] != w->shape[0] && (r || y.dtype != DataType::kFloat16)))
      return internal_error(name_ + ": conv output shape mismatch");
    if (cp % 16 != 0 || cp < w->shape[1] * f * f) return internal_error(name_ + ": quantised input channels not padded to 16");
    const auto& win = a.window;
    if (f > 1 && (win.strides[0] != f || win.strides[1] != f || win.dilations[0] != 1 || win.dilations[1] != 1 ||
                  w->shape[2] % f || w->shape[3] % f || win.pads_begin[0] % f || win.pads_begin[1] % f))
      return internal_error(name_ + ": space-to-depth input does not fit this convolution");
    if (y.layout != Layout::kNHWC || (y.dtype != DataType::kFloat16 && y.dtype != DataType::kFloat32))
      return internal_error(name_ + ": INT8 convolution writes float/half NHWC");
    // The residual: like the output, or int8 NHWC (an INT8 reader's copy: channels padded to 16)
    // with the scale of the node's qyolo_residual_scale.
    const bool residual_int8 = r && r->dtype == DataType::kInt8;
    if (residual_int8) {
      QYOLO_ASSIGN_OR_RETURN(const float rs, node.attr_float("qyolo_residual_scale"));
      if (!(rs > 0.f) || !std::isfinite(rs)) return invalid_argument(name_ + ": invalid residual scale " + std::to_string(rs));
      if (r->layout != Layout::kNHWC || r->shape.size() != 4 || r->shape[0] != y.shape[0] || r->shape[2] != y.shape[2] ||
          r->shape[3] != y.shape[3] || r->shape[1] < y.shape[1] || r->shape[1] % 16 != 0 || r->s2d != 1)
        return internal_error(name_ + ": int8 residual must be the NHWC int8 copy of a value shaped like the output");
      residual_scale_ = rs;
      residual_ld_ = static_cast<int>(r->shape[1]);
    } else if (r && (r->dtype != y.dtype || r->layout != y.layout || r->shape != y.shape)) {
      return internal_error(name_ + ": residual must match the output");
    }

    const int64_t K_model = w->shape[0], K = y.shape[1], C = w->shape[1], R = w->shape[2], S = w->shape[3];
    const int64_t Rf = R / f, Sf = S / f;  // the taps of the equivalent stride-1 conv
    const int64_t kgemm = Rf * Sf * cp;
    const int64_t M = y.shape[0] * y.shape[2] * y.shape[3];
    if (M >= (int64_t{1} << 31) || kgemm >= (int64_t{1} << 31) || x.numel() >= (int64_t{1} << 40))
      return unsupported(name_ + ": problem too large for the INT8 convolution kernel");

    // Per-output-channel weight quantisation, packed [K][R][S][Cp] (pad channels zero).
    std::vector<float> wf = w->constant->to_float_vector();
    std::vector<int8_t> wq(static_cast<size_t>(K * kgemm), 0);
    std::vector<float> out_scale(static_cast<size_t>(K), input_scale_), bias_q(static_cast<size_t>(K), 0.f);
    const int64_t per_out = C * R * S;
    for (int64_t k = 0; k < K_model; ++k) {
      const float* src = wf.data() + k * per_out;
      float amax = 0.f;
      for (int64_t j = 0; j < per_out; ++j) amax = std::max(amax, std::fabs(src[j]));
      const float sw = scale_from_amax(amax);
      out_scale[static_cast<size_t>(k)] = input_scale_ * sw;
      // Tap (rr, s) of the original kernel is tap (rr / f, s / f) of the stride-1 conv, on
      // channel ((rr % f) * f + s % f) * C + c of the space-to-depth input.
      for (int64_t c = 0; c < C; ++c)
        for (int64_t rr = 0; rr < R; ++rr)
          for (int64_t s = 0; s < S; ++s) {
            const int64_t tap = (rr / f) * Sf + s / f, ch = ((rr % f) * f + s % f) * C + c;
            wq[static_cast<size_t>(k * kgemm + tap * cp + ch)] = quantize_int8(src[(c * R + rr) * S + s], sw);
          }
    }
    std::vector<float> bf;
    if (b != nullptr) {
      bf = b->constant->to_float_vector();
      if (bf.size() != static_cast<size_t>(K_model)) return invalid_argument(name_ + ": bias size mismatch");
      bf.resize(static_cast<size_t>(K), 0.f);
      for (int64_t k = 0; k < K_model; ++k)
        bias_q[static_cast<size_t>(k)] = bf[static_cast<size_t>(k)] / out_scale[static_cast<size_t>(k)];
    }
    QYOLO_ASSIGN_OR_RETURN(weights_, DeviceBuffer::allocate(wq.size()));
    QYOLO_RETURN_IF_ERROR(weights_.upload(wq.data(), wq.size()));
    QYOLO_ASSIGN_OR_RETURN(scales_, DeviceBuffer::allocate(static_cast<size_t>(K) * 8));
    QYOLO_RETURN_IF_ERROR(scales_.upload(out_scale.data(), static_cast<size_t>(K) * 4));
    QYOLO_RETURN_IF_ERROR(scales_.upload(bias_q.data(), static_cast<size_t>(K) * 4, static_cast<size_t>(K) * 4));
    if (ctx.weight_bytes) *ctx.weight_bytes += weights_.size() + scales_.size();
    if (!a.output_multiplier.empty()) {  // channels beyond the model's (padded): 1
      std::vector<float> m(a.output_multiplier.begin(), a.output_multiplier.end());
      m.resize(static_cast<size_t>(K), 1.f);
      QYOLO_ASSIGN_OR_RETURN(mult_, DeviceBuffer::allocate(m.size() * 4));
      QYOLO_RETURN_IF_ERROR(mult_.upload(m.data(), m.size() * 4));
      if (ctx.weight_bytes) *ctx.weight_bytes += mult_.size();
    }

    p_ = ConvInt8Params{};
    p_.out_mult = mult_.as<float>();
    p_.wt = weights_.as<int8_t>();
    p_.out_scale = scales_.as<float>();
    p_.bias_q = b ? scales_.as<float>() + K : nullptr;
    p_.n = static_cast<int>(x.shape[0]), p_.h = static_cast<int>(x.shape[2]), p_.w = static_cast<int>(x.shape[3]);
    p_.cp = static_cast<int>(cp), p_.k = static_cast<int>(K), p_.r = static_cast<int>(Rf), p_.s = static_cast<int>(Sf);
    p_.oh = static_cast<int>(y.shape[2]), p_.ow = static_cast<int>(y.shape[3]);
    p_.pad_h = static_cast<int>(win.pads_begin[0] / f), p_.pad_w = static_cast<int>(win.pads_begin[1] / f);
    p_.stride_h = static_cast<int>(win.strides[0] / f), p_.stride_w = static_cast<int>(win.strides[1] / f);
    p_.dil_h = static_cast<int>(win.dilations[0]), p_.dil_w = static_cast<int>(win.dilations[1]);
    p_.m = static_cast<int>(M);
    p_.kgemm = static_cast<int>(kgemm);
    p_.act = static_cast<int>(a.activation);
    p_.alpha = a.activation_alpha;
    p_.y_fp32 = y.dtype == DataType::kFloat32;
    p_.y_ld = p_.yq_ld = static_cast<int>(K);
    // With half between layers (--int8 --fp16) nothing downstream can see the fast functions'
    // few-ulp error; --int8 alone keeps the CPU INT8 backend's exact arithmetic.
    p_.fast_math = ctx.options->int8_fp16 ? 1 : 0;
    has_residual_ = r != nullptr;
    p_.residual_int8 = residual_int8 ? 1 : 0;
    p_.residual_ld = residual_int8 ? residual_ld_ : static_cast<int>(K);
    p_.residual_scale = residual_scale_;
    s2d_ = f;
    macs_ = static_cast<double>(M) * static_cast<double>(K_model) * static_cast<double>(C * R * S);

    hopper_ = ctx.prop->major == 9 && ctx.prop->minor == 0;
    for (const Tactic& t : kTactics)
      if (t.smem > 48 * 1024 && (hopper_ || !t.sm90a))
        QYOLO_CUDA_CHECK(cudaFuncSetAttribute(t.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, t.smem));

    std::ostringstream key;
    key << "i8conv:" << p_.n << 'x' << cp << 'x' << p_.h << 'x' << p_.w << ':' << K << 'x' << R << 'x' << S << ':'
        << p_.pad_h << ',' << p_.pad_w << ':' << p_.stride_h << ',' << p_.stride_w << ':' << p_.dil_h << ','
        << p_.dil_w << ':' << (p_.y_fp32 ? "f32" : "f16") << ":s2d" << f << ':' << ctx.prop->name;
    const int forced = ctx.options->int8_tactic;
    if (forced >= 0) {
      if (forced >= kNumTactics)
        return invalid_argument("int8 tactic " + std::to_string(forced) + " does not exist (0.." +
                                std::to_string(kNumTactics - 1) + ")");
      if (kTactics[forced].sm90a && !hopper_)
        return unsupported(std::string("int8 tactic ") + kTactics[forced].name + " needs an sm_90 (Hopper) GPU");
      tactic_ = forced;
    } else if (auto it = ctx.tune_cache->find(key.str());
               it != ctx.tune_cache->end() && !it->second.empty() && it->second[0] >= 0 && it->second[0] < kNumTactics &&
               (hopper_ || !kTactics[it->second[0]].sm90a)) {
      tactic_ = static_cast<int>(it->second[0]);
    } else {
      QYOLO_RETURN_IF_ERROR(choose_tactic(ctx, x, y));
      (*ctx.tune_cache)[key.str()] = {tactic_};
    }

    // cuDNN's INT8 engines: half between layers only (--int8 alone keeps the CPU's arithmetic),
    // an activation cuDNN has, 16-byte aligned half rows.
    const auto act = graph_activation(a.activation);
    cudnn_eligible_ = ctx.options->cudnn_int8 > 0 && ctx.options->cudnn_graph && ctx.options->int8_fp16 && forced < 0 &&
                      !p_.y_fp32 && act.has_value() && K % 8 == 0;
    if (cudnn_eligible_) {
      key_ = key.str();
      cudnn_base_ = GraphConvProblem{};
      GraphConvProblem& g = cudnn_base_;
      g.dtype = CUDNN_DATA_INT8;
      g.n = p_.n, g.c = g.cg = cp, g.h = p_.h, g.w = p_.w;
      g.k = K, g.r = Rf, g.s = Sf, g.oh = p_.oh, g.ow = p_.ow;
      g.pad[0] = p_.pad_h, g.pad[1] = p_.pad_w;
      g.stride[0] = p_.stride_h, g.stride[1] = p_.stride_w;
      g.dil[0] = p_.dil_h, g.dil[1] = p_.dil_w;
      g.fused = true;
      g.bias = b != nullptr;
      g.residual = has_residual_;
      if (residual_int8) {
        g.residual_dtype = CUDNN_DATA_INT8;
        g.residual_scale = residual_scale_;
        g.residual_pitch = residual_ld_;
      }
      g.act = *act;
      g.multiplier = mult_.get() != nullptr;
      if (b != nullptr) {  // cuDNN dequantises first, then adds the real bias
        QYOLO_ASSIGN_OR_RETURN(bias_real_, DeviceBuffer::allocate(static_cast<size_t>(K) * 4));
        QYOLO_RETURN_IF_ERROR(bias_real_.upload(bf.data(), static_cast<size_t>(K) * 4));
      }
      QYOLO_RETURN_IF_ERROR(choose_cudnn(ctx, CudnnOut::kHalf, K));
    }
    return Status::ok();
  }

  Status finalize(PrepareContext& ctx, std::span<const bool> written) override {
    if (!cudnn_eligible_) return Status::ok();
    const bool y_out = !written.empty() && written[0];
    const bool q_out = fused_quant_ && written.size() > 1 && written[1];
    if (p_.decode || (!y_out && !q_out)) {  // our kernel: the decode (or nothing read at all)
      use_cudnn_ = false;
      cudnn_.reset();
      return Status::ok();
    }
    const CudnnOut o = y_out && q_out ? CudnnOut::kHalfThenRequantise : q_out ? CudnnOut::kInt8 : CudnnOut::kHalf;
    const int64_t pitch = o == CudnnOut::kInt8 ? p_.yq_ld : p_.y_ld;
    const bool same = o == planned_out_ || (o == CudnnOut::kHalfThenRequantise && planned_out_ == CudnnOut::kHalfAndInt8);
    if (same && pitch == planned_pitch_) return Status::ok();
    return choose_cudnn(ctx, o, pitch);
  }

  // The executor asks this kernel to also write its output requantised with `scale` (the input
  // scale of every INT8 convolution reading it), so no separate quantize pass is needed.
  bool fuse_quantized_output(float scale) override {
    if (!(scale > 0.f) || p_.k % 16 != 0 || p_.decode) return false;
    p_.yq_scale = scale;
    p_.yq_inv_scale = 1.0f / scale;
    fused_quant_ = true;
    return true;
  }

  // Concat in place: output 0 (float) or 1 (the requantised int8) written with a pixel pitch of
  // `pitch` channels. Multiples of 16 keep every vector store aligned.
  bool set_output_pitch(PrepareContext&, int index, int64_t pitch) override {
    if (p_.decode) {  // output 0 is the decode's [N][A][H][W][C]: batch items `pitch` apart
      if (index != 0 || pitch < p_.dec.per_n) return false;
      p_.dec.out_pitch = pitch;
      return true;
    }
    if (pitch < p_.k || pitch % 16 != 0 || p_.k % 16 != 0 || pitch > (int64_t{1} << 30)) return false;
    if (index == 0) p_.y_ld = static_cast<int>(pitch);
    else if (index == 1 && fused_quant_) p_.yq_ld = static_cast<int>(pitch);
    else return false;
    return true;
  }

  // The detect head: the YOLO decode of this conv's output, written instead of it.
  bool fuse_yolo_decode(const YoloDecodeParams& d) override {
    if (fused_quant_ || has_residual_ || d.A * d.C != p_.k || d.H != p_.oh || d.W != p_.ow || !d.grid || !d.anchor ||
        d.out_pitch < d.per_n || d.per_n != static_cast<int64_t>(d.A) * d.H * d.W * d.C)
      return false;
    p_.decode = 1;
    p_.dec = d;
    return true;
  }

  size_t workspace_bytes() const override { return use_cudnn_ ? cudnn_->workspace_bytes() : 0; }

  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in, std::span<void* const> out) override {
    if (use_cudnn_) {
      const bool q = planned_out_ == CudnnOut::kInt8, dual = planned_out_ == CudnnOut::kHalfAndInt8;
      QYOLO_RETURN_IF_ERROR(cudnn_->execute(ctx.cudnn, in[0], weights_.get(), q ? out[1] : out[0], ctx.workspace,
                                            bias_real_.get(), has_residual_ ? in[3] : nullptr, scales_.get(),
                                            q || dual ? inv_scale_.get() : nullptr, mult_.get(),
                                            dual ? out[1] : nullptr));
      if (planned_out_ != CudnnOut::kHalfThenRequantise) return Status::ok();
      return launch_requantize(out[0], p_.y_ld, static_cast<int8_t*>(out[1]), p_.yq_ld, p_.k, p_.m, p_.yq_inv_scale,
                               ctx.stream, ctx.programmatic);
    }
    ConvInt8Params p = p_;
    p.x = static_cast<const int8_t*>(in[0]);
    p.residual = has_residual_ ? in[3] : nullptr;
    p.y = out[0];
    p.yq = fused_quant_ && out.size() > 1 ? static_cast<int8_t*>(out[1]) : nullptr;
    return launch(kTactics[tactic_], p, ctx.stream, ctx.programmatic);
  }

  float tuned_ms() const override { return use_cudnn_ ? cudnn_ms_ : tuned_ms_; }

  std::string info() const override {
    std::ostringstream os;
    if (use_cudnn_) {
      os << "int8 cudnn " << cudnn_->info()
         << (planned_out_ == CudnnOut::kInt8           ? " ->int8 +requant"
             : planned_out_ == CudnnOut::kHalf         ? " ->half"
             : planned_out_ == CudnnOut::kHalfAndInt8 ? " ->half+int8"
                                                       : " ->half +requant pass");
      if (own_ms_ > 0) os << " (ours " << kTactics[tactic_].name << " " << own_ms_ << "ms)";
      return os.str();
    }
    os << "int8 " << kTactics[tactic_].name << (s2d_ > 1 ? " s2d" : "") << (fused_quant_ ? " +requant" : "")
       << (p_.decode ? " +decode" : "");
    if (tuned_ms_ > 0) os << " " << tuned_ms_ << "ms " << 2.0 * macs_ / (tuned_ms_ * 1e9) << "TOPS";
    if (cudnn_ms_ > 0) os << " (cudnn " << cudnn_ms_ << "ms)";
    return os.str();
  }

 private:
  // Times every tactic on scratch tensors of the real problem; keeps the fastest.
  Status choose_tactic(PrepareContext& ctx, const TensorInfo& x, const TensorInfo& y) {
    QYOLO_ASSIGN_OR_RETURN(auto xb, DeviceBuffer::allocate(x.nbytes()));
    QYOLO_ASSIGN_OR_RETURN(auto yb, DeviceBuffer::allocate(y.nbytes()));
    QYOLO_CUDA_CHECK(cudaMemsetAsync(xb.get(), 0x11, x.nbytes(), ctx.stream));
    ConvInt8Params p = p_;
    p.x = xb.as<int8_t>();
    p.y = yb.get();
    p.residual = nullptr;
    float best = 0.f;
    tactic_ = -1;
    for (int i = 0; i < kNumTactics; ++i) {
      const Tactic& t = kTactics[i];
      // Tiles far wider than the layer, or deeper than its K, only waste work.
      if (t.bn >= 64 && p.k <= t.bn / 2) continue;
      if (t.bk > 64 && p.kgemm <= 64) continue;
      if (t.sm90a && !hopper_) continue;
      QYOLO_ASSIGN_OR_RETURN(const float ms, time_launches(ctx.stream, 1, macs_ > 5e9 ? 3 : 10,
                                                            [&] { return launch(t, p, ctx.stream); }));
      if (tactic_ < 0 || ms < best) {
        best = ms;
        tactic_ = i;
      }
    }
    if (tactic_ < 0) return internal_error(name_ + ": no INT8 tactic applies");
    tuned_ms_ = best;
    return Status::ok();
  }

  // cuDNN's INT8 engine for one output configuration (`pitch` elements between output pixels of
  // the output it writes). Kept when it times faster than our kernel's tactic on the same
  // configuration (with both outputs: plus the requantisation pass); the choice is a tactic
  // ("i8cudnn:": heuristic rank, engine id, use), and plans are shared by identical convs.
  Status choose_cudnn(PrepareContext& ctx, CudnnOut out, int64_t pitch) {
    use_cudnn_ = false;
    cudnn_.reset();
    cudnn_ms_ = own_ms_ = 0.f;
    planned_out_ = out;
    planned_pitch_ = pitch;
    const bool int8_out = out == CudnnOut::kInt8, dual = out == CudnnOut::kHalfAndInt8;
    if ((out == CudnnOut::kHalfThenRequantise || dual) && (p_.k % 16 != 0 || p_.yq_ld % 16 != 0)) return Status::ok();
    if (out == CudnnOut::kHalfThenRequantise && ctx.options->cudnn_int8_copy) {
      // One graph writing both outputs first; the half output and our pass where it has no engine
      // or our kernel beats it.
      QYOLO_RETURN_IF_ERROR(choose_cudnn(ctx, CudnnOut::kHalfAndInt8, pitch));
      if (use_cudnn_) return Status::ok();
      planned_out_ = out;
    }
    if (int8_out || dual) {
      if (p_.k % 16 != 0) return Status::ok();
      const float inv = p_.yq_inv_scale;
      QYOLO_ASSIGN_OR_RETURN(inv_scale_, DeviceBuffer::allocate(4));
      QYOLO_RETURN_IF_ERROR(inv_scale_.upload(&inv, 4));
    }
    GraphConvProblem gp = cudnn_base_;
    gp.y_dtype = int8_out ? CUDNN_DATA_INT8 : CUDNN_DATA_HALF;
    gp.y_pitch = pitch == p_.k ? 0 : pitch;
    gp.int8_copy = dual;
    gp.y8_pitch = dual && p_.yq_ld != p_.k ? p_.yq_ld : 0;
    std::ostringstream ks;
    ks << "i8cudnn:" << key_ << ":b" << gp.bias << "r" << gp.residual << (p_.residual_int8 ? "i8" : "") << "a"
       << static_cast<int>(gp.act) << (gp.multiplier ? "m1" : "")
       << (int8_out ? ":i8" : out == CudnnOut::kHalf ? ":f16" : dual ? ":f16+i8" : ":f16+q") << ":pitch" << pitch
       << (dual ? ":pitch8_" + std::to_string(p_.yq_ld) : "");
    const std::string key = ks.str();
    auto& tc = *ctx.tune_cache;
    auto& objs = *ctx.object_cache;
    GraphConvPlan::Tactic tactic;
    int64_t use = -1;
    if (auto it = tc.find(key); it != tc.end() && it->second.size() == 3) {
      tactic = {it->second[0], it->second[1]};
      use = it->second[2];
    }
    if (use == 0) return Status::ok();
    if (auto it = objs.find(key); use == 1 && it != objs.end() && it->second) {
      cudnn_ = static_cast<const GraphConvPlan*>(it->second.get())->share();
    } else {
      ensure_tuning_workspace(ctx);
      auto plan = GraphConvPlan::create(ctx.cudnn, ctx.stream, gp, weights_.get(), ctx.options->workspace_limit,
                                        ctx.tuning_workspace, ctx.options->cudnn_int8_max_plans, false, &tactic);
      cudaGetLastError();
      if (!plan) {  // no cuDNN engine for it here: our kernel
        tc[key] = {-1, -1, 0};
        return Status::ok();
      }
      cudnn_ = std::move(plan).value();
      cudnn_ms_ = cudnn_->tuned_ms();
      if (use < 0 && ctx.options->cudnn_int8 == 2) {
        use = 1;
      } else if (use < 0) {
        // After the dual graph's attempt own_ms_ may already hold our kernel on the same two outputs.
        if (!(own_ms_ > 0.f)) {
          QYOLO_ASSIGN_OR_RETURN(own_ms_, time_own(ctx, out, pitch));
        }
        if (out == CudnnOut::kHalfThenRequantise) {
          // Timed back to back, the second kernel hides its launch; in the engine it waits for
          // the first (a dependent CUDA-graph node: ~2 us on an H100, which decides at batch 1).
          constexpr float kDependentLaunchMs = 0.002f;
          QYOLO_ASSIGN_OR_RETURN(float requant_ms, time_requantize(ctx, pitch));
          cudnn_ms_ += requant_ms + kDependentLaunchMs;
        }
        use = cudnn_ms_ > 0 && own_ms_ > 0 && cudnn_ms_ < own_ms_ ? 1 : 0;
      }
      tc[key] = {tactic.heuristic_index, tactic.engine, use};
      if (use == 1) objs[key] = std::shared_ptr<void>(cudnn_->share().release(), [](void* q) { delete static_cast<GraphConvPlan*>(q); });
    }
    use_cudnn_ = use == 1;
    if (!use_cudnn_) cudnn_.reset();
    return Status::ok();
  }

  // Our kernel's chosen tactic timed on one output configuration (as choose_cudnn plans it).
  Result<float> time_own(PrepareContext& ctx, CudnnOut out, int64_t pitch) {
    const size_t x_bytes = static_cast<size_t>(p_.n) * p_.h * p_.w * p_.cp;
    const size_t rows = static_cast<size_t>(p_.m);
    const bool int8_out = out == CudnnOut::kInt8,
               both = out == CudnnOut::kHalfThenRequantise || out == CudnnOut::kHalfAndInt8;
    QYOLO_ASSIGN_OR_RETURN(auto xb, DeviceBuffer::allocate(x_bytes));
    QYOLO_ASSIGN_OR_RETURN(auto yb, DeviceBuffer::allocate(rows * static_cast<size_t>(pitch) * (int8_out ? 1 : 2)));
    DeviceBuffer rb, qb;
    QYOLO_CUDA_CHECK(cudaMemsetAsync(xb.get(), 0x11, x_bytes, ctx.stream));
    ConvInt8Params p = p_;
    p.x = xb.as<int8_t>();
    p.y = int8_out ? nullptr : yb.get();
    p.yq = int8_out ? yb.as<int8_t>() : nullptr;
    p.y_ld = p.yq_ld = static_cast<int>(pitch);
    if (both) {
      QYOLO_ASSIGN_OR_RETURN(qb, DeviceBuffer::allocate(rows * static_cast<size_t>(p_.yq_ld)));
      p.yq = qb.as<int8_t>();
      p.yq_ld = p_.yq_ld;
    }
    p.residual = nullptr;
    if (has_residual_) {
      const size_t res_bytes = p_.residual_int8 ? static_cast<size_t>(p_.residual_ld) : static_cast<size_t>(p_.k) * 2;
      QYOLO_ASSIGN_OR_RETURN(rb, DeviceBuffer::allocate(rows * res_bytes));
      QYOLO_CUDA_CHECK(cudaMemsetAsync(rb.get(), 0, rb.size(), ctx.stream));
      p.residual = rb.get();
    }
    return time_launches(ctx.stream, 1, 5, [&] { return launch(kTactics[tactic_], p, ctx.stream); });
  }

  // The requantisation pass after a half-output cuDNN engine, on scratch.
  Result<float> time_requantize(PrepareContext& ctx, int64_t pitch) {
    const size_t rows = static_cast<size_t>(p_.m);
    QYOLO_ASSIGN_OR_RETURN(auto yb, DeviceBuffer::allocate(rows * static_cast<size_t>(pitch) * 2));
    QYOLO_ASSIGN_OR_RETURN(auto qb, DeviceBuffer::allocate(rows * static_cast<size_t>(p_.yq_ld)));
    QYOLO_CUDA_CHECK(cudaMemsetAsync(yb.get(), 0, yb.size(), ctx.stream));
    return time_launches(ctx.stream, 1, 5, [&] {
      return launch_requantize(yb.get(), static_cast<int>(pitch), qb.as<int8_t>(), p_.yq_ld, p_.k, p_.m, p_.yq_inv_scale,
                               ctx.stream);
    });
  }

  std::string name_;
  float input_scale_ = 0.f;
  DeviceBuffer weights_, scales_, mult_;
  // cuDNN INT8 tactic (choose_cudnn): the problem without output configuration, the real bias,
  // the requantisation scalar 1/s_next on the device.
  bool cudnn_eligible_ = false, use_cudnn_ = false;
  CudnnOut planned_out_ = CudnnOut::kHalf;
  int64_t planned_pitch_ = 0;
  std::string key_;
  GraphConvProblem cudnn_base_;
  std::unique_ptr<GraphConvPlan> cudnn_;
  DeviceBuffer bias_real_, inv_scale_;
  float cudnn_ms_ = 0.f, own_ms_ = 0.f;
  ConvInt8Params p_{};
  bool has_residual_ = false, fused_quant_ = false, hopper_ = false;
  float residual_scale_ = 0.f;
  int residual_ld_ = 0;
  int s2d_ = 1;
  int tactic_ = 0;
  float tuned_ms_ = 0.f;
  double macs_ = 0.0;
};

}  // namespace

int cuda_int8_tactic_count() { return kNumTactics; }

Result<std::unique_ptr<CudaKernel>> make_cuda_conv2d_int8(const Node&) {
  return std::unique_ptr<CudaKernel>(new ConvInt8Kernel());
}

}  // namespace qyolo::cuda
