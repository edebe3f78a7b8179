// CUDA backend: device helpers shared by the kernels (element load/store in float, activation
// functions, launch sizes).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

namespace qyolo::cuda {

// Programmatic dependent launch (PDL, sm_90+). Every kernel of this backend starts with
// await_producers(): it waits until the kernel before it in the stream has finished and its writes
// are visible (griddepcontrol.wait; a no-op for a kernel launched the usual way), then lets the
// next kernel in the stream begin launching (griddepcontrol.launch_dependents). The next kernel's
// blocks can then be resident and waiting when this one ends, instead of being launched after it:
// at batch 1 most kernels run a few microseconds and that gap is a large part of each.
__device__ __forceinline__ void await_producers() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}

// kernel<<<grid, block, smem, stream>>>(args...), launched programmatically when `programmatic`
// (LaunchContext::programmatic: sm_90+ and not turned off). A launch error is read by
// QYOLO_CUDA_CHECK_LAUNCH afterwards, as for <<<>>>.
template <typename... Params, typename... Args>
inline void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                          bool programmatic, Args&&... args) {
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = &attr;
  cfg.numAttrs = programmatic ? 1u : 0u;
  (void)cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }

// The i-th run of 8 consecutive elements of x (16-byte aligned) as float: one 16-byte load for
// half, two for float.
__device__ __forceinline__ void load8(const __half* x, int64_t i, float (&f)[8]) {
  const uint4 v = reinterpret_cast<const uint4*>(x)[i];
  const __half2* h = reinterpret_cast<const __half2*>(&v);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 t = __half22float2(h[k]);
    f[2 * k] = t.x;
    f[2 * k + 1] = t.y;
  }
}
__device__ __forceinline__ void load8(const float* x, int64_t i, float (&f)[8]) {
  const float4 a = reinterpret_cast<const float4*>(x)[2 * i], b = reinterpret_cast<const float4*>(x)[2 * i + 1];
  f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}

// Activations shared by the conv epilogue and the unary kernels.
enum class Act : int { kNone = 0, kRelu, kSilu, kSigmoid, kLeakyRelu, kHardSwish };

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float apply_act(Act a, float x, float alpha) {
  switch (a) {
    case Act::kNone: return x;
    case Act::kRelu: return x > 0.f ? x : 0.f;
    case Act::kSilu: return x / (1.0f + expf(-x));
    case Act::kSigmoid: return sigmoidf_(x);
    case Act::kLeakyRelu: return x >= 0.f ? x : x * alpha;
    case Act::kHardSwish: return x * fminf(fmaxf(x + 3.f, 0.f), 6.f) / 6.f;
  }
  return x;
}

// q = round_half_even(v / scale) saturated to [-127, 127] (src/quant/quant_params.h): v / scale,
// not v * (1 / scale), like ONNX QuantizeLinear and the CPU INT8 kernel; NaN -> 0.
__device__ __forceinline__ int8_t quantize_s8(float v, float scale) {
  float q = rintf(__fdiv_rn(v, scale));
  q = fminf(fmaxf(q, -127.f), 127.f);
  return static_cast<int8_t>(q != q ? 0.f : q);
}

// Fast variants for builds that keep half precision between layers (--int8 --fp16): __expf and
// approximate division/reciprocal err by a few fp32 ulps, far below the half or int8 rounding that
// follows, and cost a fraction of the exact sequences (the INT8 conv epilogue is issue-bound).
__device__ __forceinline__ float apply_act_fast(Act a, float x, float alpha) {
  switch (a) {
    case Act::kSilu: return __fdividef(x, 1.0f + __expf(-x));
    case Act::kSigmoid: return __fdividef(1.0f, 1.0f + __expf(-x));
    case Act::kHardSwish: return x * fminf(fmaxf(x + 3.f, 0.f), 6.f) * (1.0f / 6.0f);
    default: return apply_act(a, x, alpha);
  }
}
// q = round_half_even(v * inv_scale), saturated; may differ from quantize_s8 by one step when
// v / scale lies within an ulp of a .5 tie.
__device__ __forceinline__ int8_t quantize_s8_fast(float v, float inv_scale) {
  float q = rintf(v * inv_scale);
  q = fminf(fmaxf(q, -127.f), 127.f);
  return static_cast<int8_t>(q != q ? 0.f : q);
}

// The same integer as quantize_s8_fast in the low byte of the returned word, without the
// float -> int conversion (a quarter-rate instruction, like int -> float, exp2 and the
// reciprocal: an epilogue with four of them per element is bound by that pipe): adding 1.5 x 2^23
// rounds |t| <= 127 to the nearest integer, ties to even, and leaves it in the low mantissa bits
// (two's complement mod 2^22). NaN saturates to -127 instead of 0 (fmaxf drops it).
__device__ __forceinline__ uint32_t quantize_s8_bits(float v, float inv_scale) {
  const float t = fminf(fmaxf(v * inv_scale, -127.f), 127.f);
  return __float_as_uint(t + 12582912.f);
}
// float(a) for |a| < 2^22, exactly, without the int -> float conversion: the integer added to the
// bits of 1.5 x 2^23, minus 1.5 x 2^23 (both steps exact).
__device__ __forceinline__ float small_int_to_float(int a) { return __int_as_float(a + 0x4B400000) - 12582912.f; }

// Blocks for a grid-stride loop over n elements.
inline unsigned grid_for(int64_t n, int threads, int max_blocks = 65535 * 8) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > max_blocks) b = max_blocks;
  return static_cast<unsigned>(b);
}

// Splits a flat output index of an N x C x OH x OW tensor stored NCHW or NHWC into coordinates.
template <bool NHWC>
__device__ __forceinline__ void split_image_index(int64_t i, int64_t c_dim, int64_t h_dim, int64_t w_dim, int& n,
                                                  int& c, int& y, int& x) {
  if (NHWC) {
    c = static_cast<int>(i % c_dim); i /= c_dim;
    x = static_cast<int>(i % w_dim); i /= w_dim;
    y = static_cast<int>(i % h_dim); i /= h_dim;
  } else {
    x = static_cast<int>(i % w_dim); i /= w_dim;
    y = static_cast<int>(i % h_dim); i /= h_dim;
    c = static_cast<int>(i % c_dim); i /= c_dim;
  }
  n = static_cast<int>(i);
}

}  // namespace qyolo::cuda
