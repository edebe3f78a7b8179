// CUDA backend: warp and block reductions and dtype-erased element access, shared by the kernels
// of the ops beyond YOLOv5 (softmax, reduce, layer_norm, matmul, argmax, top_k, gather_elements).
// Kept apart from cuda_common.cuh so that the INT8 conv (the slow compile) does not depend on it.
#pragma once

#include "backends/cuda/cuda_common.cuh"

namespace qyolo::cuda {

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024), returned to every thread.
// `scratch` holds 32 floats of shared memory; the call ends with a barrier so it may be reused.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float t = lane < warps ? scratch[lane] : 0.f;
  t = warp_sum(t);
  __syncthreads();
  return t;
}

// Element i of a float or half array (runtime type: `half` true for kFloat16) as float.
__device__ __forceinline__ float load_f(const void* p, int64_t i, bool half) {
  return half ? __half2float(static_cast<const __half*>(p)[i]) : static_cast<const float*>(p)[i];
}
__device__ __forceinline__ void store_f(void* p, int64_t i, float v, bool half) {
  if (half)
    static_cast<__half*>(p)[i] = __float2half_rn(v);
  else
    static_cast<float*>(p)[i] = v;
}

}  // namespace qyolo::cuda
