// qyolo — per-tensor statistics collected during INT8 calibration.
//
// TensorStats keeps the running min / max / absmax and a histogram of |x| over [0, range) with a
// fixed bin count (2048, as TensorRT and pytorch-quantization use). The first batch with a nonzero
// value sets range = its absmax. When a later batch exceeds the range, the range grows by an
// integer factor k (the smallest that covers the new absmax) and existing counts are merged k bins
// into one: exact re-binning, no mass split between bins. pytorch-quantization instead keeps the
// bin width and appends bins, which can explode memory when an early batch has a tiny range.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace qyolo {

// Histogram of |x|: bin j covers [j * bin_width, (j + 1) * bin_width); the last bin also holds
// values equal to its upper edge. Counts are doubles so synthetic (fractional) histograms work.
struct Histogram {
  std::vector<double> counts;
  double bin_width = 0.0;

  size_t num_bins() const { return counts.size(); }
  double range() const { return bin_width * static_cast<double>(counts.size()); }
  double total() const;
};

class TensorStats {
 public:
  static constexpr size_t kDefaultBins = 2048;

  // num_bins == 0 is treated as 1.
  explicit TensorStats(size_t num_bins = kDefaultBins);

  // Adds n values. Non-finite values (NaN, +-inf) are counted in nonfinite_count() and otherwise
  // ignored: one inf would make the histogram range useless.
  void collect(const float* x, size_t n);

  uint64_t count() const { return count_; }  // finite values seen
  uint64_t nonfinite_count() const { return nonfinite_; }
  bool empty() const { return count_ == 0; }
  // 0 when empty().
  float min() const { return empty() ? 0.0f : min_; }
  float max() const { return empty() ? 0.0f : max_; }
  float absmax() const { return empty() ? 0.0f : absmax_; }

  size_t num_bins() const { return num_bins_; }
  // Current histogram range (0 until a nonzero value is seen).
  double range() const { return bin_width_ * static_cast<double>(num_bins_); }

  // The histogram with trailing empty bins removed, so its last bin holds absmax (as in
  // pytorch-quantization, whose last edge tracks the running max). Nothing or only zeros seen ->
  // empty counts and bin_width 0; every threshold of that is amax 0.
  Histogram histogram() const;

 private:
  void grow_to(double new_absmax);

  size_t num_bins_;
  std::vector<uint64_t> counts_;
  double bin_width_ = 0.0;           // 0 until the first nonzero |x|
  uint64_t zeros_before_range_ = 0;  // zeros seen while bin_width_ == 0
  uint64_t count_ = 0;
  uint64_t nonfinite_ = 0;
  float min_ = 0.0f, max_ = 0.0f, absmax_ = 0.0f;
};

}  // namespace qyolo
