// CUDA backend: device helpers shared by the kernels (element load/store in float, activation
// functions, launch sizes).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace qyolo::cuda {

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }

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

// Blocks for a grid-stride loop over n elements.
inline unsigned grid_for(int64_t n, int threads, int max_blocks = 65535 * 8) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > max_blocks) b = max_blocks;
  return static_cast<unsigned>(b);
}

}  // namespace qyolo::cuda
