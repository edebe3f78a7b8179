#include "calib/histogram.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace qyolo {

double Histogram::total() const {
  return std::accumulate(counts.begin(), counts.end(), 0.0);
}

TensorStats::TensorStats(size_t num_bins) : num_bins_(std::max<size_t>(num_bins, 1)), counts_(num_bins_, 0) {}

void TensorStats::grow_to(double new_absmax) {
  const double nb = static_cast<double>(num_bins_);
  if (bin_width_ == 0.0) {
    // First nonzero value: the range is exactly [0, absmax]; earlier zeros belong to bin 0.
    bin_width_ = new_absmax / nb;
    counts_[0] += zeros_before_range_;
    zeros_before_range_ = 0;
    return;
  }
  const double old_range = bin_width_ * nb;
  if (new_absmax >= old_range * nb) {
    // The whole old range fits in the new bin 0, so any wider width keeps the merge exact.
    const uint64_t all = std::accumulate(counts_.begin(), counts_.end(), uint64_t{0});
    std::fill(counts_.begin(), counts_.end(), 0);
    counts_[0] = all;
    bin_width_ = new_absmax / nb;
    return;
  }
  // Integer factor: new bin J covers old bins [J*k, J*k + k) exactly.
  auto k = static_cast<size_t>(std::ceil(new_absmax / old_range));
  while (static_cast<double>(k) * old_range < new_absmax) ++k;
  std::vector<uint64_t> merged(num_bins_, 0);
  for (size_t j = 0; j < num_bins_; ++j) merged[j / k] += counts_[j];
  counts_ = std::move(merged);
  bin_width_ *= static_cast<double>(k);
}

void TensorStats::collect(const float* x, size_t n) {
  if (n == 0 || x == nullptr) return;
  // Pass 1: batch extrema, so the range is fixed before any value is binned.
  float bmin = std::numeric_limits<float>::infinity();
  float bmax = -bmin;
  float babs = 0.0f;
  uint64_t finite = 0;
  for (size_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) continue;
    ++finite;
    bmin = std::min(bmin, v);
    bmax = std::max(bmax, v);
    babs = std::max(babs, std::fabs(v));
  }
  nonfinite_ += n - finite;
  if (finite == 0) return;
  if (count_ == 0) {
    min_ = bmin;
    max_ = bmax;
    absmax_ = babs;
  } else {
    min_ = std::min(min_, bmin);
    max_ = std::max(max_, bmax);
    absmax_ = std::max(absmax_, babs);
  }
  count_ += finite;

  if (babs > 0.0f && static_cast<double>(babs) > range()) grow_to(babs);
  if (bin_width_ == 0.0) {  // everything so far is zero
    zeros_before_range_ += finite;
    return;
  }
  // Pass 2: bin |x|. Values at or past the top edge land in the last bin.
  const double inv_width = 1.0 / bin_width_;
  const size_t last = num_bins_ - 1;
  for (size_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) continue;
    const double idx = static_cast<double>(std::fabs(v)) * inv_width;
    ++counts_[idx >= static_cast<double>(last) ? last : static_cast<size_t>(idx)];
  }
}

Histogram TensorStats::histogram() const {
  Histogram h;
  if (bin_width_ == 0.0) return h;
  size_t end = num_bins_;
  while (end > 0 && counts_[end - 1] == 0) --end;
  h.bin_width = bin_width_;
  h.counts.assign(counts_.begin(), counts_.begin() + static_cast<std::ptrdiff_t>(end));
  return h;
}

}  // namespace qyolo
