// Pooling window tables shared by the CPU MaxPool and AveragePool kernels.
#pragma once

#include <array>
#include <vector>

#include "ir/ops/conv2d.h"

namespace qyolo::cpu {

// Per spatial dim (always 3: missing leading dims have size 1), per output index: the first input
// position of the window and the valid kernel taps [lo, hi) (taps inside the input), plus the number
// of taps inside the padded input (count_include_pad divisor).
struct PoolDim {
  int64_t in = 1, out = 1, dil = 1;
  std::vector<int64_t> start, lo, hi, padded_count;
};

inline std::array<PoolDim, 3> make_pool_dims(const Shape& x, const WindowGeometry& w) {
  std::array<PoolDim, 3> dims;
  const size_t k = x.size() - 2, skip = 3 - k;
  for (size_t i = 0; i < 3; ++i) {
    PoolDim& p = dims[i];
    int64_t kernel = 1, stride = 1, pb = 0, pe = 0;
    if (i >= skip) {
      const size_t j = i - skip;
      p.in = x[2 + j];
      p.out = w.out[j];
      p.dil = w.dilations[j];
      kernel = w.kernel[j];
      stride = w.strides[j];
      pb = w.pads_begin[j];
      pe = w.pads_end[j];
    }
    for (int64_t o = 0; o < p.out; ++o) {
      const int64_t s = o * stride - pb;
      int64_t lo = 0, hi = 0, padded = 0;
      bool any = false;
      for (int64_t t = 0; t < kernel; ++t) {
        const int64_t pos = s + t * p.dil;
        if (pos >= -pb && pos < p.in + pe) ++padded;
        if (pos >= 0 && pos < p.in) {
          if (!any) lo = t;
          hi = t + 1;
          any = true;
        }
      }
      p.start.push_back(s);
      p.lo.push_back(lo);
      p.hi.push_back(hi);
      p.padded_count.push_back(padded);
    }
  }
  return dims;
}

}  // namespace qyolo::cpu
