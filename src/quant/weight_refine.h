// Weight-side PTQ refinements of an INT8 engine, decided once on calibration data and stored as
// weight overrides (src/quant/weight_overrides.h), so CPU and CUDA lower them unchanged:
//  - clip: per output channel, the clip alpha of the weights that minimises the squared rounding +
//    clipping error sum (W - Q_alpha(W))^2 (instead of alpha = max|W[c]|); stored as the clipped
//    weights clamp(W, -alpha, alpha), whose max-abs scale is then alpha / 127 on every backend.
//  - bias: empirical bias correction. The INT8 network (with the quantised upstream, and the clip
//    if chosen) and FP32 run on calibration images; per conv output channel the mean shift
//    E[y_int8 - y_fp32] of the pre-activation conv output is subtracted from the bias. All convs
//    are corrected at once; `iterations` > 1 measures the shift left and corrects again (the
//    upstream corrections move the downstream shifts).
#pragma once

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "quant/weight_overrides.h"
#include "qyolo/engine.h"

namespace qyolo {

// s * round(W / s) per output channel (dim 0), s = max|W[c]| / 127: what the INT8 convs compute.
Tensor fake_quantize_weights(const Tensor& w);

// sum over w of (w - Q(w))^2 for clip alpha: Q(w) = s * clamp(round(w / s), -127, 127),
// s = scale_from_amax(alpha), the INT8 conv's arithmetic on clamp(W, -alpha, alpha).
double clipped_weight_error(std::span<const float> w, float alpha);

// The alpha among max|w| * k / steps, k = steps / 2 .. steps, with the least clipped_weight_error
// (ties: the largest alpha, i.e. the least clipping). max|w| itself when that is 0.
float mse_weight_clip(std::span<const float> w, int steps = 200);

struct ClipReport {
  int convs = 0;
  int64_t channels = 0, channels_clipped = 0;
  double error_before = 0, error_after = 0;  // sum of squared weight errors, all INT8 convs
};

// Clipped weights of every conv `int8_engine` runs in INT8 (their weight initializers as named in
// the prepared graph), on top of `base` (overrides already chosen; their weights are clipped).
Result<WeightOverrides> clip_int8_weights(const Engine& int8_engine, const WeightOverrides& base,
                                          ClipReport* report = nullptr);

struct BiasCorrectionReport {
  int convs = 0;
  int images = 0;
  // Mean |E[y_int8 - y_fp32]| over all corrected channels, before each iteration's correction
  // and after the last (one more measurement).
  std::vector<double> mean_abs_shift;
};

using RefineLogFn = std::function<void(const std::string& line)>;

// Empirical bias correction (see the top) of the INT8 engine built from `onnx_path` with
// `int8_options` and `base` overrides, on `image_files` letterboxed to input_h x input_w. Returns
// `base` plus the corrected biases. With measure_after, one more INT8 pass reports the shift left.
Result<WeightOverrides> correct_biases(const std::string& onnx_path, const BuildOptions& int8_options,
                                       const WeightOverrides& base, const std::vector<std::string>& image_files,
                                       int input_h, int input_w, int iterations, bool measure_after,
                                       BiasCorrectionReport* report = nullptr, const RefineLogFn& log = nullptr);

}  // namespace qyolo
