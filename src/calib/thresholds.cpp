#include "calib/thresholds.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "quant/quant_params.h"

namespace qyolo {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

bool all_zero(const Histogram& h) {
  return std::all_of(h.counts.begin(), h.counts.end(), [](double c) { return c == 0.0; });
}

}  // namespace

Status validate_histogram(const Histogram& h) {
  for (size_t j = 0; j < h.counts.size(); ++j) {
    const double c = h.counts[j];
    if (!std::isfinite(c) || c < 0.0)
      return invalid_argument("histogram bin " + std::to_string(j) + " has count " + std::to_string(c) +
                              " (must be finite and >= 0)");
  }
  if (!all_zero(h) && !(std::isfinite(h.bin_width) && h.bin_width > 0.0))
    return invalid_argument("histogram bin_width " + std::to_string(h.bin_width) +
                            " must be finite and > 0 for a non-empty histogram");
  return Status::ok();
}

Result<double> minmax_amax(const Histogram& h) {
  QYOLO_RETURN_IF_ERROR(validate_histogram(h));
  for (size_t j = h.counts.size(); j > 0; --j)
    if (h.counts[j - 1] > 0.0) return static_cast<double>(j) * h.bin_width;
  return 0.0;
}

Result<double> percentile_amax(const Histogram& h, double percentile) {
  QYOLO_RETURN_IF_ERROR(validate_histogram(h));
  if (!(percentile >= 0.0 && percentile <= 100.0))
    return invalid_argument("percentile " + std::to_string(percentile) + " is outside [0, 100]");
  if (all_zero(h)) return 0.0;
  const double total = h.total();
  const double target = percentile / 100.0;
  // Same arithmetic as np.cumsum(hist / total) + np.searchsorted(cdf, p / 100) (side='left').
  double cdf = 0.0;
  for (size_t j = 0; j < h.counts.size(); ++j) {
    cdf += h.counts[j] / total;
    if (cdf >= target) return static_cast<double>(j) * h.bin_width;
  }
  return h.range();  // rounding kept the CDF below target: searchsorted returns nbins
}

Result<double> entropy_amax(const Histogram& h, size_t num_quant_bins, size_t start_bin) {
  QYOLO_RETURN_IF_ERROR(validate_histogram(h));
  if (num_quant_bins == 0) return invalid_argument("entropy calibration needs num_quant_bins > 0");
  if (all_zero(h)) return 0.0;
  std::vector<double> bins = h.counts;
  const size_t n = bins.size();
  if (n >= 2) bins[0] = bins[1];
  if (std::all_of(bins.begin(), bins.end(), [](double c) { return c == 0.0; })) {
    // Only bin 0 had data (pytorch-quantization would divide 0 by 0 here): keep all of it.
    return minmax_amax(h);
  }

  // suffix[i] = sum(bins[i:]), the outliers folded into P[i-1] for candidate i.
  std::vector<double> suffix(n + 1, 0.0);
  for (size_t j = n; j > 0; --j) suffix[j - 1] = suffix[j] + bins[j - 1];

  const size_t first = std::clamp<size_t>(start_bin, 1, n);
  std::vector<double> group_sum(num_quant_bins), p(n), q(n);
  std::vector<size_t> group_nonzero(num_quant_bins), group_of(n);
  double best_kl = kInf;
  size_t best_i = n;
  for (size_t i = first; i <= n; ++i) {
    std::fill(group_sum.begin(), group_sum.end(), 0.0);
    std::fill(group_nonzero.begin(), group_nonzero.end(), 0);
    // group_of[j] = floor(j * num_quant_bins / i), stepped without a division per bin.
    size_t g = 0, next_edge = i;  // next_edge = (g + 1) * i
    for (size_t j = 0; j < i; ++j) {
      while (j * num_quant_bins >= next_edge) ++g, next_edge += i;
      group_of[j] = g;
      if (bins[j] == 0.0) continue;
      group_sum[g] += bins[j];
      ++group_nonzero[g];
    }
    double sum_p = 0.0, sum_q = 0.0;
    for (size_t j = 0; j < i; ++j) {
      p[j] = bins[j];
      q[j] = bins[j] == 0.0 ? 0.0 : group_sum[group_of[j]] / static_cast<double>(group_nonzero[group_of[j]]);
    }
    p[i - 1] += suffix[i];
    for (size_t j = 0; j < i; ++j) {
      sum_p += p[j];
      sum_q += q[j];
    }
    double kl = 0.0;
    if (sum_q == 0.0) {
      kl = kInf;
    } else {
      for (size_t j = 0; j < i && kl < kInf; ++j) {
        if (p[j] == 0.0) continue;
        if (q[j] == 0.0) {
          kl = kInf;
          break;
        }
        const double pn = p[j] / sum_p;
        kl += pn * std::log(pn / (q[j] / sum_q));
      }
    }
    if (std::isnan(kl)) kl = kInf;
    // Ties go to the larger threshold, like pytorch-quantization's reversed argmin.
    if (kl <= best_kl) {
      best_kl = kl;
      best_i = i;
    }
  }
  return static_cast<double>(best_i) * h.bin_width;
}

Result<double> mse_amax(const Histogram& h, size_t start_bin) {
  QYOLO_RETURN_IF_ERROR(validate_histogram(h));
  if (all_zero(h)) return 0.0;
  const size_t n = h.counts.size();
  const double w = h.bin_width;
  const size_t first = n > start_bin ? start_bin : 0;
  double best_err = kInf;
  double best_amax = 0.0;
  for (size_t i = first; i < n; ++i) {
    const double amax = (static_cast<double>(i) + 0.5) * w;
    const double s = kInt8QMax / amax;  // fake_tensor_quant: scale = 127 / amax
    double err = 0.0;
    for (size_t j = 0; j < n; ++j) {
      if (h.counts[j] == 0.0) continue;
      const double c = (static_cast<double>(j) + 0.5) * w;
      const double qv = std::clamp(std::nearbyint(c * s), -double{kInt8QMax}, double{kInt8QMax});
      const double d = qv / s - c;
      err += h.counts[j] * d * d;
    }
    if (err < best_err) {  // first minimum, like np.argmin
      best_err = err;
      best_amax = amax;
    }
  }
  return best_amax;
}

}  // namespace qyolo
