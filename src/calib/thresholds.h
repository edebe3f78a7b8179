// qyolo — calibration thresholds: pure functions from a histogram of |x| to amax.
//
// All follow pytorch-quantization's calib/histogram.py (TensorRT tools/pytorch-quantization,
// _compute_amax_{entropy,mse,percentile}), which is the public reference for TensorRT's
// EntropyCalibration2. Bin edges are edge[j] = j * bin_width.
//
// Every function returns 0 for an empty or all-zero histogram; the caller substitutes a tiny scale
// (scale_from_amax in quant/quant_params.h does). Errors: negative / non-finite counts, a
// non-positive bin width on a non-empty histogram, an out-of-range parameter.
#pragma once

#include <cstddef>

#include "calib/histogram.h"
#include "qyolo/status.h"

namespace qyolo {

// Upper edge of the last non-empty bin (the histogram's view of absmax). Calibrator's MinMax uses
// the exact running absmax instead.
Result<double> minmax_amax(const Histogram& h);

// pytorch-quantization convention: idx = first bin whose CDF (cumulative sum of count/total)
// reaches percentile/100, amax = edge[idx], i.e. the LOWER edge of that bin. So the result can
// sit up to one bin below the true quantile, and percentile 100 gives the lower edge of the last
// non-empty bin. percentile must be in [0, 100].
Result<double> percentile_amax(const Histogram& h, double percentile = 99.99);

// KL-divergence threshold (TensorRT EntropyCalibration2 as reproduced by pytorch-quantization's
// _compute_amax_entropy):
//  * bins[0] is replaced by bins[1] (suppresses the post-ReLU spike at zero);
//  * for every candidate i in [start_bin, nbins] (stride 1): P = bins[:i] with sum(bins[i:]) added
//    to P[i-1]; Q = bins[:i] (without the outliers) merged into num_quant_bins groups
//    (bin j -> group floor(j * num_quant_bins / i)), each group's mass spread evenly over its
//    non-zero bins, zero where bins[j] == 0; KL(P || Q) after normalising both, with 0*log(0/q) = 0
//    and p > 0, q == 0 -> +inf;
//  * amax = edge[i*] for the LAST i* reaching the minimum (upper edge of bin i*-1; not the
//    (i + 0.5) * width of the legacy TensorRT description).
// A histogram with fewer than start_bin bins has the single candidate i = nbins. If only bin 0
// holds data (erased by the substitution) the result is minmax_amax.
Result<double> entropy_amax(const Histogram& h, size_t num_quant_bins = 128, size_t start_bin = 128);

// MSE threshold (pytorch-quantization _compute_amax_mse): candidates are the bin centres c_i for
// i in [start_bin, nbins); for each, every bin centre is fake-quantized symmetric int8
// (round-half-even(c * 127 / amax) clamped to [-127, 127], times amax / 127) and the error is
// sum_j counts[j] * (fq(c_j) - c_j)^2 (clipping above amax plus rounding inside). amax = the
// FIRST minimising centre. With nbins <= start_bin all centres are candidates.
Result<double> mse_amax(const Histogram& h, size_t start_bin = 128);

// The validation every threshold function applies; exposed for callers that build histograms.
Status validate_histogram(const Histogram& h);

}  // namespace qyolo
