// CUDA backend: strided N-d copy with element type conversion (float <-> half, or a raw move of
// any element size). The building block of Transpose, Slice, Split, Concat and the executor's
// layout/dtype conversions.
#pragma once

#include <cuda_runtime.h>

#include <vector>

#include "backends/cuda/nd.h"
#include "qyolo/status.h"

namespace qyolo::cuda {

struct NdCopy {
  DataType dst_type = DataType::kFloat32, src_type = DataType::kFloat32;
  bool narrow = false;  // 32-bit indexing
  NdPlan<2, int32_t> p32;
  NdPlan<2, int64_t> p64;
  int64_t dst_offset = 0, src_offset = 0;  // elements
  int64_t numel = 0;
  bool memcpy_ok = false;  // both contiguous with the same type: one cudaMemcpyAsync
  // Same type, two dims, contiguous rows of at least 512 bytes: one cudaMemcpy2DAsync.
  bool memcpy2d_ok = false;
  size_t row_bytes = 0, rows = 0, dst_pitch = 0, src_pitch = 0;
  // Same type with a contiguous innermost run: the plan in units of vec_bytes (16, 8 or 4),
  // used when both base pointers are aligned to it.
  int vec_bytes = 0;
  bool vec_narrow = false;
  NdPlan<2, int32_t> v32;
  NdPlan<2, int64_t> v64;
  int64_t vec_dst_offset = 0, vec_src_offset = 0, vec_numel = 0;
};

// Iterates `shape`; element c goes from src[src_offset + c . src_strides] to
// dst[dst_offset + c . dst_strides]. Errors on unsupported type pairs.
Result<NdCopy> make_nd_copy(const Shape& shape, const std::vector<int64_t>& dst_strides, int64_t dst_offset,
                            DataType dst_type, const std::vector<int64_t>& src_strides, int64_t src_offset,
                            DataType src_type);

Status enqueue_nd_copy(const NdCopy& c, const void* src, void* dst, cudaStream_t stream,
                       bool programmatic = false);

}  // namespace qyolo::cuda
