// CUDA backend: N-d iteration plans (POD, passed by value to kernels) for strided copies,
// broadcasting elementwise ops and layout/dtype conversion. Operand 0 is the output; the
// iteration follows its physical order so that writes are coalesced.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "qyolo/tensor.h"

namespace qyolo::cuda {

inline constexpr int kMaxNd = 8;

template <int N, typename I>
struct NdPlan {
  int rank = 0;
  I numel = 0;
  I dims[kMaxNd] = {};
  I strides[N][kMaxNd] = {};
  // 32-bit plans: division by dims[d] as a multiply-high and shift (valid below 2^31).
  uint32_t mul[kMaxNd] = {};
  uint32_t shift[kMaxNd] = {};
};

// Magic numbers for unsigned division by d (1 <= d < 2^31) of dividends below 2^31:
// n / d == (umulhi(n, mul) + n) >> shift.
inline void fast_divisor(uint32_t d, uint32_t& mul, uint32_t& shift) {
  uint32_t s = 0;
  while (s < 32 && (uint64_t{1} << s) < d) ++s;
  shift = s;
  mul = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << s) - d)) / d + 1);
}

// Builds a plan over `shape` (logical) where operand k's element offset is sum(coord[d] *
// strides[k][d]) (0 on broadcast dims). Orders dims by operand 0's strides (descending), drops
// size-1 dims and merges dims that are contiguous in every operand. Returns false if the merged
// rank exceeds kMaxNd.
bool make_nd_plan(const Shape& shape, std::span<const std::vector<int64_t>> strides, int n_ops,
                  NdPlan<4, int64_t>& out);

// Narrows a plan to 32-bit indices when every offset fits; false otherwise.
template <int N>
bool narrow_plan(const NdPlan<4, int64_t>& p, NdPlan<N, int32_t>& out) {
  int64_t limit = INT32_MAX;
  if (p.numel > limit) return false;
  out.rank = p.rank;
  out.numel = static_cast<int32_t>(p.numel);
  for (int d = 0; d < p.rank; ++d) {
    out.dims[d] = static_cast<int32_t>(p.dims[d]);
    fast_divisor(static_cast<uint32_t>(std::max<int64_t>(p.dims[d], 1)), out.mul[d], out.shift[d]);
  }
  for (int k = 0; k < N; ++k) {
    int64_t maxoff = 0;
    for (int d = 0; d < p.rank; ++d) {
      maxoff += (p.dims[d] - 1) * p.strides[k][d];
      out.strides[k][d] = static_cast<int32_t>(p.strides[k][d]);
    }
    if (maxoff > limit) return false;
  }
  return true;
}

template <int N>
void copy_plan(const NdPlan<4, int64_t>& p, NdPlan<N, int64_t>& out) {
  out.rank = p.rank;
  out.numel = p.numel;
  for (int d = 0; d < p.rank; ++d) {
    out.dims[d] = p.dims[d];
    for (int k = 0; k < N; ++k) out.strides[k][d] = p.strides[k][d];
  }
}

// Strides of an input of shape `in` broadcast against an output of rank `out_rank` (numpy
// alignment on the right), given the input's own per-dim strides; broadcast dims get 0.
std::vector<int64_t> broadcast_strides(const Shape& in, const std::vector<int64_t>& in_strides, size_t out_rank);

#ifdef __CUDACC__
template <int N, typename I>
__device__ __forceinline__ void nd_offsets(const NdPlan<N, I>& p, I idx, I (&off)[N]) {
#pragma unroll
  for (int k = 0; k < N; ++k) off[k] = 0;
  for (int d = p.rank - 1; d >= 0; --d) {
    I q;
    if constexpr (sizeof(I) == 4) {
      const uint32_t u = static_cast<uint32_t>(idx);
      q = static_cast<I>((__umulhi(u, p.mul[d]) + u) >> p.shift[d]);
    } else {
      q = idx / p.dims[d];
    }
    const I c = idx - q * p.dims[d];
    idx = q;
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] += c * p.strides[k][d];
  }
}
#endif

}  // namespace qyolo::cuda
