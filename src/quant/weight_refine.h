// Weight-side PTQ refinements of an INT8 engine, decided once on calibration data and stored as
// weight overrides (src/quant/weight_overrides.h), so CPU and CUDA lower them unchanged:
//  - clip: per output channel, the clip alpha of the weights that minimises the squared rounding +
//    clipping error sum (W - Q_alpha(W))^2 (instead of alpha = max|W[c]|); stored as the clipped
//    weights clamp(W, -alpha, alpha), whose max-abs scale is then alpha / 127 on every backend.
//  - bias: empirical bias correction of each conv's own mean shift. The INT8 network (with the
//    quantised upstream, and the clip if chosen) runs on calibration images; per conv output
//    channel, the mean of its pre-activation INT8 output minus the mean the FP32 conv (the model's
//    weights and bias) gives on the same inputs (W . mean input patch + b: the conv is linear) is
//    subtracted from the bias. Every conv is corrected from one pass; `iterations` > 1 measures
//    again with the corrections in place. (Correcting the total shift E[y_int8 - y_fp32] of all
//    convs at once instead counts every upstream shift again downstream: yolov5n's proxy fell to
//    0.26.)
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
// Same on a prepared graph that quantize_graph has marked (convs carrying qyolo_input_scale).
WeightOverrides clip_int8_weights(const SpecializedGraph& int8_graph, const WeightOverrides& base,
                                  ClipReport* report = nullptr);

struct BiasCorrectionReport {
  int convs = 0;
  int images = 0;
  // Mean |local shift| over all corrected channels, before each iteration's correction and
  // after the last (with measure_after: one more measurement).
  std::vector<double> mean_abs_shift;
};

using RefineLogFn = std::function<void(const std::string& line)>;

// Empirical bias correction (see the top) of the INT8 engine built from `onnx_path` with
// `int8_options` and `base` overrides, on `image_files` letterboxed to input_h x input_w. Returns
// `base` plus the corrected biases. With measure_after, one more INT8 pass reports the shift left.
Result<WeightOverrides> correct_biases(const std::string& onnx_path, const BuildOptions& int8_options,
                                       const WeightOverrides& base,
                                       const std::vector<std::string>& image_files, int input_h, int input_w,
                                       int iterations, bool measure_after,
                                       BiasCorrectionReport* report = nullptr,
                                       const RefineLogFn& log = nullptr);

}  // namespace qyolo
