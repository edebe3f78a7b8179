// Strided copies shared by the layout kernels (Slice, Transpose): a view of the source with
// per-dim element strides (possibly negative), copied row by row into a dense output.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "qyolo/status.h"

namespace qyolo::cpu {

// Output element (i0..ik) = src[base + sum i_d * strides[d]] (strides in elements, may be negative).
// Dims are collapsed in prepare(): size-1 dims dropped, neighbours merged when contiguous in the source.
struct StridedView {
  std::vector<int64_t> shape, strides;
  int64_t base = 0;

  void collapse() {
    std::vector<int64_t> s, st;
    for (size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == 1) continue;
      if (!s.empty() && st.back() == strides[i] * shape[i]) {
        s.back() *= shape[i];
        st.back() = strides[i];
      } else {
        s.push_back(shape[i]);
        st.push_back(strides[i]);
      }
    }
    if (s.empty()) {
      s.push_back(1);
      st.push_back(1);
    }
    shape = std::move(s);
    strides = std::move(st);
  }
};

template <typename T>
inline void strided_copy(const StridedView& v, const T* src, T* dst) {
  const size_t r = v.shape.size();
  const int64_t inner = v.shape[r - 1], inner_stride = v.strides[r - 1];
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < r; ++d) rows *= v.shape[d];
#pragma omp parallel for schedule(static) if (rows * inner > (1 << 15))
  for (int64_t row = 0; row < rows; ++row) {
    int64_t off = v.base, rem = row;
    for (size_t d = r - 1; d-- > 0;) {
      off += (rem % v.shape[d]) * v.strides[d];
      rem /= v.shape[d];
    }
    const T* s = src + off;
    T* o = dst + row * inner;
    if (inner_stride == 1) {
      std::memcpy(o, s, static_cast<size_t>(inner) * sizeof(T));
    } else {
      for (int64_t j = 0; j < inner; ++j) o[j] = s[j * inner_stride];
    }
  }
}

inline Status strided_copy_bytes(const StridedView& v, size_t elem, const void* src, void* dst) {
  switch (elem) {
    case 1:
      strided_copy(v, static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst));
      break;
    case 2:
      strided_copy(v, static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst));
      break;
    case 4:
      strided_copy(v, static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst));
      break;
    case 8:
      strided_copy(v, static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst));
      break;
    default:
      return internal_error("unexpected element size " + std::to_string(elem));
  }
  return Status::ok();
}

}  // namespace qyolo::cpu
