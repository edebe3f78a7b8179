// The YOLOv5 box decode of one output element, shared by the QyoloYoloDecode kernel
// (yolo_decode.cu) and the INT8 head conv that fuses it into its epilogue (conv2d_int8.cu), so
// both round identically. Arithmetic rounds like the unfused graph (one rounding per ONNX op: no
// FMA contraction).
#pragma once

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/cuda_kernel.h"

namespace qyolo::cuda {

// Element c of anchor a at cell (h, w): v is the raw head output; g_idx = ((a*H + h)*W + w)*2
// indexes GRID/ANCHOR_GRID [A][H][W][2]. FAST: the sigmoid with the fast exp and division
// intrinsics (relative error ~1e-6), for inputs that arrive as half (rounded to ~5e-4 already).
template <typename TO, typename TG, bool FAST = false>
__device__ __forceinline__ TO yolo_decode_one(const YoloDecodeParams& p, float v, int c, int64_t g_idx,
                                              const TG* __restrict__ grid, const TG* __restrict__ anchor) {
  const float s = FAST ? __fdividef(1.0f, 1.0f + __expf(-v)) : 1.0f / (1.0f + expf(-v));
  float y;
  if (c < 2) {
    y = __fmul_rn(__fadd_rn(__fmul_rn(s, p.c1), to_f(grid[g_idx + c])), p.stride);
  } else if (c < 4) {
    const float b = __fmul_rn(s, p.c2);
    const float pw = p.square ? __fmul_rn(b, b) : powf(b, p.c3);
    y = __fmul_rn(pw, to_f(anchor[g_idx + c - 2]));
  } else {
    y = s;
  }
  return from_f<TO>(y);
}

}  // namespace qyolo::cuda
