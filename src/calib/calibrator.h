// qyolo — post-training calibration: per-tensor statistics -> calibration table.
//
// The engine feeds every activation it wants quantized through collect() for each calibration
// batch (FP32 values), then finish() turns each tensor's statistics into
// scale = scale_from_amax(amax) (quant/quant_params.h) with amax from:
//   kEntropy    entropy_amax(histogram)        cache name EntropyCalibration2 (TensorRT's)
//   kMinMax     exact running absmax           cache name MinMaxCalibration (TensorRT's)
//   kPercentile percentile_amax(histogram, p)  cache name PercentileCalibration (qyolo's)
//   kMse        mse_amax(histogram)            cache name MseCalibration (qyolo's)
// A tensor that only ever held zeros gets kMinScale. Not thread-safe: one collector thread.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "calib/calib_cache.h"
#include "calib/histogram.h"
#include "qyolo/status.h"

namespace qyolo {

enum class CalibAlgo { kEntropy, kMinMax, kPercentile, kMse };

// Case-insensitive: "entropy" / "entropy2" / "EntropyCalibration2", "minmax" / "max" /
// "MinMaxCalibration", "percentile" / "PercentileCalibration", "mse" / "MseCalibration".
Result<CalibAlgo> parse_calib_algo(std::string_view name);
// The <Algorithm> of the cache header TRT-8601-<Algorithm>.
const char* calib_algo_cache_name(CalibAlgo algo);

class Calibrator {
 public:
  // percentile is used by kPercentile only; an invalid one is reported by finish().
  explicit Calibrator(CalibAlgo algo, double percentile = 99.99, size_t num_bins = TensorStats::kDefaultBins);

  void collect(const std::string& tensor, const float* x, size_t n);

  // One scale per collected tensor. Fails, naming the tensor, if it saw NaN/inf (a broken FP32
  // reference run must not silently produce a cache) or a threshold function fails.
  Result<CalibrationTable> finish() const;
  // The same statistics under another algorithm (one calibration pass, several tables).
  Result<CalibrationTable> finish(CalibAlgo algo) const;

  // amax for one tensor's statistics under this calibrator's algorithm.
  Result<double> amax(const TensorStats& stats) const;
  Result<double> amax(const TensorStats& stats, CalibAlgo algo) const;

  CalibAlgo algo() const { return algo_; }
  const std::map<std::string, TensorStats>& stats() const { return stats_; }

 private:
  CalibAlgo algo_;
  double percentile_;
  size_t num_bins_;
  std::map<std::string, TensorStats> stats_;
};

}  // namespace qyolo
