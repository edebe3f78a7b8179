// CPU helpers shared by the elementwise kernels (unary, binary, clip, where, expand, cast, Q/DQ):
// OpenMP range splitting, broadcast iteration, dtype dispatch and float16 staging.
#pragma once

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "ir/ops/binary.h"
#include "qyolo/tensor.h"

namespace qyolo::cpu {

// Elementwise loops over fewer elements than this stay on one thread.
inline constexpr int64_t kParallelGrain = int64_t{1} << 15;

// Returns v through a volatile, so the optimiser cannot specialise a loop on the constant. Without it
// GCC threads a clamp against a constant bound into a separate code path ("control flow in loop")
// and leaves the loop scalar; with a bound it cannot see, the clamp becomes minps/maxps.
template <class T>
inline T opaque(T v) {
  volatile T o = v;
  return o;
}

// Calls f(begin, end) over contiguous pieces of [0, n): one piece per thread when n is large enough
// (piece bounds are multiples of 16 so vector loops start aligned), else one call for all of it.
template <class F>
void parallel_ranges(int64_t n, F&& f, int64_t grain = kParallelGrain) {
  if (n <= 0) return;
  const int64_t threads = omp_get_max_threads();
  const int64_t tasks = std::min<int64_t>(threads, n / std::max<int64_t>(grain, 1));
  if (tasks <= 1 || omp_in_parallel()) {
    f(int64_t{0}, n);
    return;
  }
  auto bound = [&](int64_t t) { return t == tasks ? n : ((n * t / tasks) & ~int64_t{15}); };
#pragma omp parallel for schedule(static) num_threads(static_cast <int>(tasks))
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t b = bound(t), e = bound(t + 1);
    if (e > b) f(b, e);
  }
}

// Visits contiguous runs of a broadcast: f(out_offset, in_offsets, in_steps, len), where input k's
// elements for the run are in[k][in_offsets[k] + i * in_steps[k]], i < len, and in_steps[k] is 0 or 1.
// Runs are processed in parallel for large outputs.
template <size_t N, class F>
void for_each_broadcast(const BroadcastPlan& p, F&& f) {
  if (p.numel <= 0) return;
  const size_t rank = p.dims.size();
  const int64_t inner = p.dims[rank - 1];
  const int64_t rows = p.numel / inner;
  std::array<int64_t, N> step;
  for (size_t k = 0; k < N; ++k) step[k] = p.strides[k][rank - 1];
  auto row_offsets = [&](int64_t row, std::array<int64_t, N>& off, std::vector<int64_t>* idx) {
    off.fill(0);
    for (size_t d = rank - 1; d-- > 0;) {
      const int64_t i = row % p.dims[d];
      row /= p.dims[d];
      if (idx) (*idx)[d] = i;
      for (size_t k = 0; k < N; ++k) off[k] += i * p.strides[k][d];
    }
  };
  const int64_t threads = omp_get_max_threads();
  if (rows < 4 * threads) {
    // Few long runs: split each run into pieces.
    const bool parallel = p.numel >= 2 * kParallelGrain && !omp_in_parallel();
    int64_t pieces = 1;
    if (parallel)
      pieces = std::clamp<int64_t>((4 * threads + rows - 1) / rows, 1, std::max<int64_t>(inner / 4096, 1));
    const int64_t tasks = rows * pieces;
#pragma omp parallel for schedule(static) if (parallel && tasks > 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t row = t / pieces, piece = t % pieces;
      const int64_t b = piece == 0 ? 0 : ((inner * piece / pieces) & ~int64_t{15});
      const int64_t e = piece == pieces - 1 ? inner : ((inner * (piece + 1) / pieces) & ~int64_t{15});
      if (e <= b) continue;
      std::array<int64_t, N> off;
      row_offsets(row, off, nullptr);
      for (size_t k = 0; k < N; ++k) off[k] += b * step[k];
      f(row * inner + b, off, step, e - b);
    }
    return;
  }
  // Many runs: each thread walks a block of runs with an odometer.
  parallel_ranges(
      rows,
      [&](int64_t r0, int64_t r1) {
        std::vector<int64_t> idx(rank - 1, 0);
        std::array<int64_t, N> off;
        row_offsets(r0, off, &idx);
        for (int64_t r = r0; r < r1; ++r) {
          f(r * inner, off, step, inner);
          for (size_t d = rank - 1; d-- > 0;) {
            for (size_t k = 0; k < N; ++k) off[k] += p.strides[k][d];
            if (++idx[d] < p.dims[d]) break;
            for (size_t k = 0; k < N; ++k) off[k] -= p.strides[k][d] * p.dims[d];
            idx[d] = 0;
          }
        }
      },
      std::max<int64_t>(kParallelGrain / inner, 1));
}

// Calls f(T{}) with the C++ type of `t`; returns false for float16 (no C++ type: stage through
// float32 with to_float32 / store_float32).
template <class F>
bool visit_dtype(DataType t, F&& f) {
  switch (t) {
    case DataType::kFloat32:
      f(float{});
      return true;
    case DataType::kInt8:
      f(int8_t{});
      return true;
    case DataType::kUInt8:
      f(uint8_t{});
      return true;
    case DataType::kInt32:
      f(int32_t{});
      return true;
    case DataType::kInt64:
      f(int64_t{});
      return true;
    case DataType::kBool:
      f(bool{});
      return true;
    case DataType::kFloat16:
      return false;
  }
  return false;
}

// float16 -> float32 copy (other dtypes are returned as is).
inline Tensor to_float32(const Tensor& t) {
  if (t.dtype() != DataType::kFloat16) return t;
  Tensor out = Tensor::uninitialized(DataType::kFloat32, t.shape());
  const uint16_t* s = t.data<uint16_t>();
  float* d = out.data<float>();
  parallel_ranges(t.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) d[i] = half_to_float(s[i]);
  });
  return out;
}

// float32 -> float16 into `dst` (same shape).
inline void store_float32(const Tensor& src, Tensor& dst) {
  const float* s = src.data<float>();
  uint16_t* d = dst.data<uint16_t>();
  parallel_ranges(src.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) d[i] = float_to_half(s[i]);
  });
}

}  // namespace qyolo::cpu
