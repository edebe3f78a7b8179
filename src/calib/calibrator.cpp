#include "calib/calibrator.h"

#include <algorithm>
#include <cctype>

#include "calib/thresholds.h"
#include "quant/quant_params.h"

namespace qyolo {

Result<CalibAlgo> parse_calib_algo(std::string_view name) {
  std::string s(name);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "entropy" || s == "entropy2" || s == "entropycalibration2") return CalibAlgo::kEntropy;
  if (s == "minmax" || s == "max" || s == "minmaxcalibration") return CalibAlgo::kMinMax;
  if (s == "percentile" || s == "percentilecalibration") return CalibAlgo::kPercentile;
  if (s == "mse" || s == "msecalibration") return CalibAlgo::kMse;
  return invalid_argument("unknown calibration algorithm '" + std::string(name) +
                          "' (expected entropy, minmax, percentile or mse)");
}

const char* calib_algo_cache_name(CalibAlgo algo) {
  switch (algo) {
    case CalibAlgo::kEntropy:
      return "EntropyCalibration2";
    case CalibAlgo::kMinMax:
      return "MinMaxCalibration";
    case CalibAlgo::kPercentile:
      return "PercentileCalibration";
    case CalibAlgo::kMse:
      return "MseCalibration";
  }
  return "UnknownCalibration";
}

Calibrator::Calibrator(CalibAlgo algo, double percentile, size_t num_bins)
    : algo_(algo), percentile_(percentile), num_bins_(num_bins) {}

void Calibrator::collect(const std::string& tensor, const float* x, size_t n) {
  auto it = stats_.find(tensor);
  if (it == stats_.end()) it = stats_.emplace(tensor, TensorStats(num_bins_)).first;
  it->second.collect(x, n);
}

Result<double> Calibrator::amax(const TensorStats& stats) const {
  return amax(stats, algo_);
}

Result<double> Calibrator::amax(const TensorStats& stats, CalibAlgo algo) const {
  switch (algo) {
    case CalibAlgo::kMinMax:
      return static_cast<double>(stats.absmax());
    case CalibAlgo::kEntropy:
      return entropy_amax(stats.histogram());
    case CalibAlgo::kPercentile:
      return percentile_amax(stats.histogram(), percentile_);
    case CalibAlgo::kMse:
      return mse_amax(stats.histogram());
  }
  return internal_error("unhandled calibration algorithm");
}

Result<CalibrationTable> Calibrator::finish() const {
  return finish(algo_);
}

Result<CalibrationTable> Calibrator::finish(CalibAlgo algo) const {
  CalibrationTable table;
  table.header_version = kCalibCacheVersion;
  table.algorithm = calib_algo_cache_name(algo);
  for (const auto& [name, stats] : stats_) {
    if (stats.nonfinite_count() > 0)
      return invalid_argument("tensor '" + name + "': " + std::to_string(stats.nonfinite_count()) +
                              " NaN/inf values seen during calibration");
    auto a = amax(stats, algo);
    if (!a.is_ok()) return a.status().with_context("calibrating tensor '" + name + "'");
    table.scales[name] = scale_from_amax(*a);
  }
  return table;
}

}  // namespace qyolo
