// Calibration statistics, threshold functions and the Calibrator.
// Entropy and MSE are checked against slow reference implementations written here from the
// pytorch-quantization description (different loop structure, explicit group bounds); percentile
// against analytic quantiles of |x|.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "calib/calibrator.h"
#include "calib/histogram.h"
#include "calib/thresholds.h"
#include "quant/quant_params.h"
#include "test_support.h"

namespace qyolo {
namespace {

constexpr size_t kBins = 2048;
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---- synthetic histograms -------------------------------------------------------------------

// Expected counts of |x| for N samples with CDF(|x| <= t) = cdf(t), over [0, range) in kBins bins.
// Realistic mode rounds counts to integers (sparse tails) and drops trailing empty bins, as
// TensorStats::histogram() does; exact mode keeps the fractional expected counts.
template <typename Cdf>
Histogram analytic_hist(double n, double range, Cdf cdf, bool realistic) {
  Histogram h;
  h.bin_width = range / kBins;
  h.counts.resize(kBins);
  for (size_t j = 0; j < kBins; ++j) {
    const double c = n * (cdf((j + 1) * h.bin_width) - cdf(j * h.bin_width));
    h.counts[j] = realistic ? std::round(c) : c;
  }
  while (realistic && h.counts.back() == 0) h.counts.pop_back();
  return h;
}

double half_normal_cdf(double t) {
  return std::erf(t / std::sqrt(2.0));
}  // sigma = 1
double exponential_cdf(double t) {
  return 1.0 - std::exp(-t);
}  // |Laplace(0, 1)|

// 1e8 samples: dense enough tails that the thresholds approach their large-sample values.
Histogram gaussian_hist(bool realistic = true) {
  return analytic_hist(1e8, 6.0, half_normal_cdf, realistic);
}
Histogram laplace_hist(bool realistic = true) {
  return analytic_hist(1e8, 20.0, exponential_cdf, realistic);
}
// 1e7 Gaussian samples (sigma 1) plus 3 outliers at 50 sigma, the histogram's top bin.
Histogram heavy_tail_hist() {
  Histogram h = analytic_hist(1e7, 50.0, half_normal_cdf, true);
  h.counts.resize(kBins, 0.0);
  h.counts.back() += 3;
  return h;
}

// ---- reference implementations --------------------------------------------------------------

// KL(P || Q) for candidate i, written from the description: explicit group bounds
// [ceil(g*i/nq), ceil((g+1)*i/nq)) instead of j*nq/i, p*(log p - log q) instead of p*log(p/q).
double reference_kl(const std::vector<double>& bins, size_t i, size_t nq) {
  std::vector<double> p(bins.begin(), bins.begin() + i);
  double outliers = 0;
  for (size_t k = i; k < bins.size(); ++k) outliers += bins[k];
  p[i - 1] += outliers;
  std::vector<double> q(i, 0.0);
  for (size_t g = 0; g < nq; ++g) {
    const size_t lo = (g * i + nq - 1) / nq, hi = ((g + 1) * i + nq - 1) / nq;
    double mass = 0;
    int nonzero = 0;
    for (size_t j = lo; j < hi; ++j) {
      mass += bins[j];
      nonzero += bins[j] != 0;
    }
    for (size_t j = lo; j < hi; ++j) q[j] = bins[j] != 0 ? mass / nonzero : 0.0;
  }
  const double sp = std::accumulate(p.begin(), p.end(), 0.0), sq = std::accumulate(q.begin(), q.end(), 0.0);
  double kl = 0;
  for (size_t j = 0; j < i; ++j) {
    if (p[j] == 0) continue;
    if (q[j] == 0) return kInf;
    kl += (p[j] / sp) * (std::log(p[j] / sp) - std::log(q[j] / sq));
  }
  return kl;
}

struct EntropyRef {
  double amax;
  std::vector<double> kl;  // kl[i] for candidate i (kInf below the first candidate)
};

EntropyRef reference_entropy(const Histogram& h, size_t nq = 128, size_t start = 128) {
  std::vector<double> bins = h.counts;
  bins[0] = bins[1];
  EntropyRef r{0, std::vector<double>(bins.size() + 1, kInf)};
  double best = kInf;
  for (size_t i = start; i <= bins.size(); ++i) {
    r.kl[i] = reference_kl(bins, i, nq);
    best = std::min(best, r.kl[i]);
  }
  size_t best_i = bins.size();
  while (best_i > start && r.kl[best_i] != best) --best_i;  // last minimum
  r.amax = best_i * h.bin_width;
  return r;
}

// Expected squared error of fake-quantizing bin centres, summed explicitly per candidate.
double reference_mse_amax(const Histogram& h, size_t start = 128) {
  const size_t n = h.counts.size();
  double best = kInf, best_amax = 0;
  for (size_t i = (n > start ? start : 0); i < n; ++i) {
    const double amax = h.bin_width * (2.0 * i + 1.0) / 2.0;
    const double step = amax / 127.0;
    double err = 0;
    for (size_t j = 0; j < n; ++j) {
      const double c = h.bin_width * (2.0 * j + 1.0) / 2.0;
      double rec;
      if (c >= amax) {
        rec = amax;  // clipped: 127 * step == amax
      } else {
        const double lv = std::floor(c / step);  // round to nearest, ties to even
        const double frac = c / step - lv;
        double qv = frac > 0.5 ? lv + 1 : (frac < 0.5 ? lv : (std::fmod(lv, 2.0) == 0 ? lv : lv + 1));
        rec = std::min(qv, 127.0) * step;
      }
      err += h.counts[j] * (rec - c) * (rec - c);
    }
    if (err < best) best = err, best_amax = amax;
  }
  return best_amax;
}

// t with cdf(t) = p * cdf(range) by bisection (the quantile of |x| truncated to the histogram).
template <typename Cdf>
double truncated_quantile(Cdf cdf, double range, double p) {
  double lo = 0, hi = range;
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    (cdf(mid) < p * cdf(range) ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

double value_of(const Result<double>& r) {
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? r.value() : std::nan("");
}

// ---- minmax / percentile --------------------------------------------------------------------

TEST(ThresholdMinMax, IsUpperEdgeOfLastNonEmptyBin) {
  Histogram h{std::vector<double>(100, 0.0), 0.25};
  h.counts[3] = 7;
  h.counts[41] = 1;
  EXPECT_DOUBLE_EQ(value_of(minmax_amax(h)), 42 * 0.25);
}

TEST(ThresholdPercentile, GaussianMatchesAnalyticQuantile) {
  const Histogram h = gaussian_hist(/*realistic=*/false);
  for (double p : {99.0, 99.9, 99.99}) {
    const double t = truncated_quantile(half_normal_cdf, 6.0, p / 100);
    const double bins = t / h.bin_width;
    ASSERT_GT(std::fabs(bins - std::round(bins)), 1e-6) << "quantile on a bin edge: ambiguous test";
    // Lower edge of the bin containing the quantile.
    EXPECT_NEAR(value_of(percentile_amax(h, p)), std::floor(bins) * h.bin_width, 1e-12) << "p=" << p;
  }
  // Sanity: the two-sided 99.99% Gaussian quantile is 3.8906 sigma.
  EXPECT_NEAR(value_of(percentile_amax(h, 99.99)), 3.8906, 0.01);
}

TEST(ThresholdPercentile, LaplacianMatchesClosedForm) {
  const Histogram h = laplace_hist(/*realistic=*/false);
  for (double p : {99.0, 99.9, 99.99}) {
    const double t = -std::log(1.0 - (p / 100) * (1.0 - std::exp(-20.0)));
    const double bins = t / h.bin_width;
    ASSERT_GT(std::fabs(bins - std::round(bins)), 1e-6);
    EXPECT_NEAR(value_of(percentile_amax(h, p)), std::floor(bins) * h.bin_width, 1e-12) << "p=" << p;
  }
}

TEST(ThresholdPercentile, RejectsOutOfRange) {
  const Histogram h = gaussian_hist();
  EXPECT_EQ(percentile_amax(h, 100.5).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(percentile_amax(h, -1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(percentile_amax(h, std::nan("")).status().code(), StatusCode::kInvalidArgument);
}

// ---- entropy --------------------------------------------------------------------------------

TEST(ThresholdEntropy, GaussianMatchesReference) {
  const Histogram h = gaussian_hist();
  const EntropyRef ref = reference_entropy(h);
  const double amax = value_of(entropy_amax(h));
  EXPECT_DOUBLE_EQ(amax, ref.amax);
  // Sanity band: KL clips only the sparse far tail of a light-tailed distribution.
  EXPECT_GT(amax, 4.0);
  EXPECT_LT(amax, value_of(minmax_amax(h)));
}

TEST(ThresholdEntropy, LaplacianMatchesReference) {
  const Histogram h = laplace_hist();
  const double amax = value_of(entropy_amax(h));
  EXPECT_DOUBLE_EQ(amax, reference_entropy(h).amax);
  EXPECT_GT(amax, 8.0);
  EXPECT_LT(amax, value_of(minmax_amax(h)));
}

TEST(ThresholdEntropy, NonDefaultParametersMatchReference) {
  const Histogram h = laplace_hist();
  EXPECT_DOUBLE_EQ(value_of(entropy_amax(h, 64, 300)), reference_entropy(h, 64, 300).amax);
}

TEST(ThresholdEntropy, UniformKeepsFullRange) {
  // Every shorter candidate folds mass onto P[i-1] that Q cannot match; at i = nbins Q == P.
  const Histogram h{std::vector<double>(kBins, 1000.0), 0.01};
  EXPECT_DOUBLE_EQ(value_of(entropy_amax(h)), kBins * 0.01);
  EXPECT_DOUBLE_EQ(reference_entropy(h).amax, kBins * 0.01);
}

TEST(ThresholdEntropy, HeavyTailMatchesReference) {
  const Histogram h = heavy_tail_hist();
  EXPECT_DOUBLE_EQ(value_of(entropy_amax(h)), reference_entropy(h).amax);
}

TEST(ThresholdEntropy, ZeroBinSpikeIsIgnored) {
  // Post-ReLU tensors pile up exact zeros in bin 0; bins[0] = bins[1] makes that spike irrelevant.
  Histogram h = laplace_hist();
  const double expected = reference_entropy(h).amax;
  for (double zeros : {0.0, h.counts[1], 5e8}) {
    h.counts[0] = zeros;
    EXPECT_DOUBLE_EQ(value_of(entropy_amax(h)), expected) << "bin 0 count " << zeros;
  }
}

// ---- mse ------------------------------------------------------------------------------------

TEST(ThresholdMse, GaussianMatchesReference) {
  const Histogram h = gaussian_hist();
  const double amax = value_of(mse_amax(h));
  EXPECT_DOUBLE_EQ(amax, reference_mse_amax(h));
  // Published MSE-optimal 8-bit clipping for a Gaussian is about 3.92 sigma (Banner et al., ACIQ).
  EXPECT_GT(amax, 3.7);
  EXPECT_LT(amax, 4.2);
}

TEST(ThresholdMse, LaplacianMatchesReference) {
  const Histogram h = laplace_hist();
  const double amax = value_of(mse_amax(h));
  EXPECT_DOUBLE_EQ(amax, reference_mse_amax(h));
  // ACIQ: about 9.89 b for 8 bits (its rounding-noise model is approximate).
  EXPECT_GT(amax, 9.0);
  EXPECT_LT(amax, 10.5);
}

TEST(ThresholdMse, HeavyTailAndUniformMatchReference) {
  const Histogram heavy = heavy_tail_hist();
  EXPECT_DOUBLE_EQ(value_of(mse_amax(heavy)), reference_mse_amax(heavy));
  const Histogram uniform{std::vector<double>(kBins, 1000.0), 0.01};
  EXPECT_DOUBLE_EQ(value_of(mse_amax(uniform)), reference_mse_amax(uniform));
}

// ---- properties and degenerate histograms ---------------------------------------------------

TEST(ThresholdProperties, HeavyTailOutliersAreClippedExceptByMinMax) {
  const Histogram h = heavy_tail_hist();
  const double absmax = 50.0;
  EXPECT_DOUBLE_EQ(value_of(minmax_amax(h)), absmax);
  for (const auto& [name, amax] : {std::pair{"entropy", value_of(entropy_amax(h))},
                                   std::pair{"percentile", value_of(percentile_amax(h, 99.99))},
                                   std::pair{"mse", value_of(mse_amax(h))}}) {
    EXPECT_LT(amax, 0.2 * absmax) << name;
    EXPECT_GT(amax, 1.0) << name;  // still keeps the body of the Gaussian
  }
}

TEST(ThresholdDegenerate, AllZerosAndEmptyGiveZero) {
  for (const Histogram& h : {Histogram{std::vector<double>(kBins, 0.0), 0.01}, Histogram{{}, 0.0},
                             Histogram{std::vector<double>(10, 0.0), 0.0}}) {
    EXPECT_EQ(value_of(minmax_amax(h)), 0.0);
    EXPECT_EQ(value_of(percentile_amax(h, 99.99)), 0.0);
    EXPECT_EQ(value_of(entropy_amax(h)), 0.0);
    EXPECT_EQ(value_of(mse_amax(h)), 0.0);
  }
}

TEST(ThresholdDegenerate, SpikeInTopBin) {
  // All values equal: TensorStats puts them in the top bin of [0, absmax].
  Histogram h{std::vector<double>(kBins, 0.0), 0.01};
  h.counts.back() = 5000;
  EXPECT_DOUBLE_EQ(value_of(minmax_amax(h)), kBins * 0.01);
  EXPECT_DOUBLE_EQ(value_of(percentile_amax(h, 99.99)), (kBins - 1) * 0.01);  // lower edge
  EXPECT_DOUBLE_EQ(value_of(entropy_amax(h)), kBins * 0.01);                  // only i = nbins has finite KL
  EXPECT_DOUBLE_EQ(value_of(mse_amax(h)), (kBins - 0.5) * 0.01);  // the spike's centre: zero error
}

TEST(ThresholdDegenerate, SpikeInMiddleBin) {
  Histogram h{std::vector<double>(kBins, 0.0), 0.01};
  h.counts[1500] = 5000;
  EXPECT_DOUBLE_EQ(value_of(minmax_amax(h)), 1501 * 0.01);
  EXPECT_DOUBLE_EQ(value_of(percentile_amax(h, 50)), 1500 * 0.01);
  // KL is +inf up to i = 1500 and 0 from 1501 on; ties go to the last candidate.
  EXPECT_DOUBLE_EQ(value_of(entropy_amax(h)), kBins * 0.01);
  EXPECT_DOUBLE_EQ(value_of(mse_amax(h)), 1500.5 * 0.01);
}

TEST(ThresholdDegenerate, MseTiesGoToFirstCandidate) {
  // 64 bins (< start_bin, so every centre is a candidate), spike at centre 3.5 w. Both amax = 3.5 w
  // and amax = 63.5 w reproduce it exactly (127 * 3.5 / 63.5 = 7); np.argmin keeps the first.
  Histogram h{std::vector<double>(64, 0.0), 0.5};
  h.counts[3] = 100;
  EXPECT_DOUBLE_EQ(value_of(mse_amax(h)), 3.5 * 0.5);
}

TEST(ThresholdDegenerate, SingleBinHistogram) {
  const Histogram h{{5.0}, 0.1};
  EXPECT_DOUBLE_EQ(value_of(minmax_amax(h)), 0.1);
  EXPECT_DOUBLE_EQ(value_of(percentile_amax(h, 99.99)), 0.0);  // lower edge of bin 0
  EXPECT_DOUBLE_EQ(value_of(entropy_amax(h)), 0.1);            // single candidate i = 1
  EXPECT_DOUBLE_EQ(value_of(mse_amax(h)), 0.05);               // single candidate: centre of bin 0
  // Only bin 0 filled in a longer histogram: bins[0] = bins[1] would erase it; all mass is kept.
  Histogram zero_bin{std::vector<double>(300, 0.0), 0.1};
  zero_bin.counts[0] = 9;
  EXPECT_DOUBLE_EQ(value_of(entropy_amax(zero_bin)), 0.1);
}

TEST(ThresholdValidation, RejectsBadHistograms) {
  EXPECT_EQ(entropy_amax(Histogram{{1.0, -2.0}, 0.1}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(mse_amax(Histogram{{1.0, std::nan("")}, 0.1}).status().code(), StatusCode::kInvalidArgument);
  const auto r = percentile_amax(Histogram{{1.0, 2.0}, 0.0}, 50);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("bin_width"), std::string::npos);
  EXPECT_EQ(entropy_amax(gaussian_hist(), 0).status().code(), StatusCode::kInvalidArgument);
}

// ---- TensorStats ----------------------------------------------------------------------------

// Direct binning of |v| with the given width, trimmed after the last non-empty bin.
std::vector<double> direct_bins(const std::vector<float>& v, double width, size_t nbins) {
  std::vector<double> c(nbins, 0.0);
  for (float x : v) c[std::min<size_t>(static_cast<size_t>(std::fabs(x) / width), nbins - 1)] += 1;
  while (!c.empty() && c.back() == 0) c.pop_back();
  return c;
}

TEST(CalibStats, SingleBatchRangeIsAbsmax) {
  TensorStats s(16);
  const std::vector<float> x = {-4.0f, 0.1f, 1.9f, 2.1f, -0.6f, 3.99f, 0.0f};
  s.collect(x.data(), x.size());
  EXPECT_EQ(s.count(), x.size());
  EXPECT_EQ(s.min(), -4.0f);
  EXPECT_EQ(s.max(), 3.99f);
  EXPECT_EQ(s.absmax(), 4.0f);
  const Histogram h = s.histogram();
  EXPECT_DOUBLE_EQ(h.bin_width, 0.25);
  // |x| bins of width 0.25: 0.1,0.0 -> 0; 0.6 -> 2; 1.9 -> 7; 2.1 -> 8; 3.99 and 4.0 (top edge) -> 15.
  std::vector<double> expected(16, 0.0);
  expected[0] = 2, expected[2] = 1, expected[7] = 1, expected[8] = 1, expected[15] = 2;
  EXPECT_EQ(h.counts, expected);
}

TEST(CalibStats, GrowthMergesExistingCountsExactly) {
  constexpr size_t nb = 2048;
  const double w1 = 1.0 / nb;
  // Batch 1: bin centres of the fine grid (never on a coarse edge) plus the absmax 1.0.
  std::vector<float> b1;
  for (size_t m = 0; m < nb; m += 7) b1.push_back(static_cast<float>((m + 0.5) * w1) * (m % 2 ? -1.f : 1.f));
  b1.push_back(1.0f);
  const std::vector<float> b2 = {2.5f, -0.3f, 1.7f};
  TensorStats s(nb);
  s.collect(b1.data(), b1.size());
  s.collect(b2.data(), b2.size());
  // 2.5 > range 1 -> factor k = 3: width 3/2048, range 3.
  const Histogram h = s.histogram();
  EXPECT_DOUBLE_EQ(h.bin_width, 3 * w1);
  std::vector<float> all = b1;
  all.insert(all.end(), b2.begin(), b2.end());
  const std::vector<double> expected = direct_bins(all, 3 * w1, nb);
  // 1.0 sat in old top bin 2047 -> new bin 682 (direct binning also gives floor(2048/3) = 682).
  EXPECT_EQ(h.counts, expected);
  EXPECT_EQ(s.absmax(), 2.5f);
  EXPECT_EQ(s.min(), *std::min_element(all.begin(), all.end()));
  EXPECT_EQ(s.max(), 2.5f);
}

TEST(CalibStats, HugeGrowthAndLeadingZeros) {
  TensorStats s(8);
  const std::vector<float> zeros(5, 0.0f), small = {1e-3f, 5e-4f}, big = {80.0f, 15.0f};
  s.collect(zeros.data(), zeros.size());
  EXPECT_TRUE(s.histogram().counts.empty());  // only zeros so far
  s.collect(small.data(), small.size());
  s.collect(big.data(), big.size());
  // 80 >= 8 * range(1e-3): everything earlier collapses into bin 0 of width 10.
  const Histogram h = s.histogram();
  EXPECT_DOUBLE_EQ(h.bin_width, 10.0);
  EXPECT_EQ(h.counts, (std::vector<double>{7, 1, 0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(s.count(), 9u);
}

TEST(CalibStats, NonFiniteValuesAreCountedNotBinned) {
  TensorStats s(4);
  const std::vector<float> x = {1.0f, std::numeric_limits<float>::infinity(), std::nanf(""), -2.0f};
  s.collect(x.data(), x.size());
  EXPECT_EQ(s.count(), 2u);
  EXPECT_EQ(s.nonfinite_count(), 2u);
  EXPECT_EQ(s.absmax(), 2.0f);
  EXPECT_EQ(s.histogram().counts, (std::vector<double>{0, 0, 1, 1}));
}

// ---- Calibrator -----------------------------------------------------------------------------

TEST(CalibAlgoNames, ParseAndCacheNames) {
  EXPECT_EQ(*parse_calib_algo("entropy"), CalibAlgo::kEntropy);
  EXPECT_EQ(*parse_calib_algo("EntropyCalibration2"), CalibAlgo::kEntropy);
  EXPECT_EQ(*parse_calib_algo("MinMax"), CalibAlgo::kMinMax);
  EXPECT_EQ(*parse_calib_algo("percentile"), CalibAlgo::kPercentile);
  EXPECT_EQ(*parse_calib_algo("MSE"), CalibAlgo::kMse);
  const auto bad = parse_calib_algo("kl");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("'kl'"), std::string::npos);
  EXPECT_STREQ(calib_algo_cache_name(CalibAlgo::kEntropy), "EntropyCalibration2");
  EXPECT_STREQ(calib_algo_cache_name(CalibAlgo::kMinMax), "MinMaxCalibration");
  for (CalibAlgo a : {CalibAlgo::kEntropy, CalibAlgo::kMinMax, CalibAlgo::kPercentile, CalibAlgo::kMse})
    EXPECT_EQ(*parse_calib_algo(calib_algo_cache_name(a)), a);
}

struct TwoTensors {
  std::vector<float> a1, a2, b;  // tensor "a" in two batches, tensor "b" in one
};

TwoTensors make_two_tensors() {
  std::mt19937 rng(1234);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::exponential_distribution<float> expo(2.0f);
  TwoTensors t;
  for (int i = 0; i < 40000; ++i) t.a1.push_back(gauss(rng));
  for (int i = 0; i < 40000; ++i) t.a2.push_back(0.5f * gauss(rng));  // inside batch 1's range
  for (int i = 0; i < 60000; ++i) t.b.push_back(expo(rng));           // ReLU-like, >= 0
  return t;
}

// Histogram over [0, absmax] built directly from the data (no growth happens in these inputs).
Histogram direct_hist(const std::vector<float>& v) {
  float absmax = 0;
  for (float x : v) absmax = std::max(absmax, std::fabs(x));
  const double w = static_cast<double>(absmax) / kBins;
  return Histogram{direct_bins(v, w, kBins), w};
}

TEST(CalibCalibrator, ScalesAreThresholdOver127PerTensor) {
  const TwoTensors t = make_two_tensors();
  std::vector<float> a_all = t.a1;
  a_all.insert(a_all.end(), t.a2.begin(), t.a2.end());
  const Histogram ha = direct_hist(a_all), hb = direct_hist(t.b);
  const float abs_a = *std::max_element(a_all.begin(), a_all.end(),
                                        [](float x, float y) { return std::fabs(x) < std::fabs(y); });
  const float abs_b = *std::max_element(t.b.begin(), t.b.end());

  struct Case {
    CalibAlgo algo;
    double amax_a, amax_b;
  };
  const std::vector<Case> cases = {
      {CalibAlgo::kMinMax, std::fabs(abs_a), abs_b},
      {CalibAlgo::kEntropy, value_of(entropy_amax(ha)), value_of(entropy_amax(hb))},
      {CalibAlgo::kPercentile, value_of(percentile_amax(ha, 99.9)), value_of(percentile_amax(hb, 99.9))},
      {CalibAlgo::kMse, value_of(mse_amax(ha)), value_of(mse_amax(hb))},
  };
  for (const Case& c : cases) {
    Calibrator cal(c.algo, 99.9);
    cal.collect("a", t.a1.data(), t.a1.size());
    cal.collect("b", t.b.data(), t.b.size());
    cal.collect("a", t.a2.data(), t.a2.size());
    const auto table = cal.finish();
    ASSERT_TRUE(table.is_ok()) << table.status().to_string();
    EXPECT_EQ(table->algorithm, calib_algo_cache_name(c.algo));
    EXPECT_EQ(table->header_version, "8601");
    ASSERT_EQ(table->scales.size(), 2u);
    EXPECT_EQ(table->scales.at("a"), static_cast<float>(c.amax_a / 127.0)) << calib_algo_cache_name(c.algo);
    EXPECT_EQ(table->scales.at("b"), static_cast<float>(c.amax_b / 127.0)) << calib_algo_cache_name(c.algo);
    EXPECT_GT(c.amax_a, 0.0);
    EXPECT_GT(c.amax_b, 0.0);
  }
}

TEST(CalibCalibrator, MinMaxUsesExactAbsmaxAfterGrowth) {
  // After the range grows to 3.0 the histogram's top edge no longer equals absmax (2.5).
  Calibrator cal(CalibAlgo::kMinMax);
  const std::vector<float> b1 = {1.0f, -0.5f}, b2 = {-2.5f, 0.25f};
  cal.collect("t", b1.data(), b1.size());
  cal.collect("t", b2.data(), b2.size());
  const auto table = cal.finish();
  ASSERT_TRUE(table.is_ok()) << table.status().to_string();
  EXPECT_EQ(table->scales.at("t"), static_cast<float>(2.5 / 127.0));
  EXPECT_NE(value_of(minmax_amax(cal.stats().at("t").histogram())), 2.5);
}

TEST(CalibCalibrator, ZeroTensorGetsMinScaleAndNanFails) {
  Calibrator cal(CalibAlgo::kEntropy);
  const std::vector<float> zeros(100, 0.0f);
  cal.collect("dead_relu", zeros.data(), zeros.size());
  const auto table = cal.finish();
  ASSERT_TRUE(table.is_ok()) << table.status().to_string();
  EXPECT_EQ(table->scales.at("dead_relu"), kMinScale);

  const std::vector<float> bad = {1.0f, std::nanf("")};
  cal.collect("/model.2/Mul_output_0", bad.data(), bad.size());
  const auto failed = cal.finish();
  ASSERT_FALSE(failed.is_ok());
  EXPECT_NE(failed.status().message().find("/model.2/Mul_output_0"), std::string::npos);
}

TEST(CalibCalibrator, InvalidPercentileReportedWithTensor) {
  Calibrator cal(CalibAlgo::kPercentile, 150.0);
  const std::vector<float> x = {1.0f, 2.0f};
  cal.collect("images", x.data(), x.size());
  const auto r = cal.finish();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'images'"), std::string::npos);
  EXPECT_NE(r.status().message().find("150"), std::string::npos);
}

TEST(CalibQuantParams, ScaleConvention) {
  EXPECT_EQ(scale_from_amax(12.7), static_cast<float>(12.7 / 127.0));
  EXPECT_EQ(scale_from_amax(0.0), kMinScale);
  EXPECT_EQ(scale_from_amax(std::nan("")), kMinScale);
  EXPECT_EQ(quantize_int8(1.25f, 0.5f), 2);       // 2.5 -> 2 (ties to even)
  EXPECT_EQ(quantize_int8(1.75f, 0.5f), 4);       // 3.5 -> 4
  EXPECT_EQ(quantize_int8(-100.0f, 0.5f), -127);  // saturates at -127, never -128
  EXPECT_EQ(dequantize_int8(-127, 0.5f), -63.5f);
}

}  // namespace
}  // namespace qyolo
