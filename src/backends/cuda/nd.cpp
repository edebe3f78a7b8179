#include "backends/cuda/nd.h"

#include <algorithm>
#include <numeric>

namespace qyolo::cuda {

bool make_nd_plan(const Shape& shape, std::span<const std::vector<int64_t>> strides, int n_ops,
                  NdPlan<4, int64_t>& out) {
  out = NdPlan<4, int64_t>{};
  out.numel = shape_numel(shape);
  const size_t r = shape.size();
  std::vector<size_t> order;
  for (size_t d = 0; d < r; ++d)
    if (shape[d] != 1) order.push_back(d);
  // Physical order of the output: larger strides outside (stable for equal strides).
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return strides[0][a] > strides[0][b]; });
  std::vector<int64_t> dims;
  std::vector<std::vector<int64_t>> st(static_cast<size_t>(n_ops));
  for (size_t d : order) {
    bool merge = !dims.empty();
    for (int k = 0; merge && k < n_ops; ++k)
      merge = st[k].back() == strides[k][d] * shape[d];
    if (merge) {
      dims.back() *= shape[d];
      for (int k = 0; k < n_ops; ++k) st[k].back() = strides[k][d];
    } else {
      dims.push_back(shape[d]);
      for (int k = 0; k < n_ops; ++k) st[k].push_back(strides[k][d]);
    }
  }
  if (dims.empty()) {
    dims.push_back(1);
    for (int k = 0; k < n_ops; ++k) st[k].push_back(0);
  }
  if (dims.size() > static_cast<size_t>(kMaxNd)) return false;
  out.rank = static_cast<int>(dims.size());
  for (size_t d = 0; d < dims.size(); ++d) {
    out.dims[d] = dims[d];
    for (int k = 0; k < n_ops; ++k) out.strides[k][d] = st[k][d];
  }
  return true;
}

std::vector<int64_t> broadcast_strides(const Shape& in, const std::vector<int64_t>& in_strides, size_t out_rank) {
  std::vector<int64_t> s(out_rank, 0);
  const size_t off = out_rank - in.size();
  for (size_t d = 0; d < in.size(); ++d) s[off + d] = in[d] == 1 ? 0 : in_strides[d];
  return s;
}

}  // namespace qyolo::cuda
