// Per-tensor choice among calibrators ("qyolo calibrate --algo auto"): for every tensor a conv
// reads, each candidate threshold (one per calibrator, from the same statistics) is judged by the
// error it causes at the outputs of the convs that read the tensor, after their fused bias and
// activation, with the conv weights quantised as the engine quantises them (per output channel).
// Only that tensor is quantised while judging it (the inputs are the FP32 activations), so every
// tensor is judged independently. Output positions and channels are sampled (deterministically)
// to bound the cost.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "calib/calib_cache.h"
#include "ir/graph.h"
#include "quant/calibrate_model.h"
#include "qyolo/engine.h"

namespace qyolo {

struct ScaleChoiceOptions {
  int positions_per_conv = 256;  // sampled output pixels per image and conv
  int channels_per_conv = 32;    // sampled output channels (all when the conv has fewer)
};

struct ScaleChoiceReport {
  int tensors_judged = 0;
  std::map<std::string, int> chosen;  // candidate algorithm name -> tensors that chose it
};

// `candidates` share tensor names (e.g. calibrate_algorithms' tables); `images` are network inputs
// at a shape the FP32 `engine` accepts. Returns a table with the first candidate's scales, each
// tensor a conv reads replaced by its best candidate's (ties: the earlier candidate). The table's
// algorithm is "PerTensorCalibration".
Result<CalibrationTable> choose_scales_per_tensor(const Engine& fp32, const std::vector<Tensor>& images,
                                                  const std::vector<CalibrationTable>& candidates,
                                                  const ScaleChoiceOptions& options = {},
                                                  ScaleChoiceReport* report = nullptr);

// `qyolo calibrate --algo auto`: one calibration pass for mse, minmax, entropy and percentile (mse
// first: tensors no conv reads keep its scale), then choose_scales_per_tensor on the first
// `judge_images` calibration images.
Result<CalibrationTable> calibrate_per_tensor(const Engine& fp32, const std::string& image_folder,
                                              const CalibrationOptions& options, int judge_images = 4,
                                              CalibrationReport* report = nullptr,
                                              const ProgressFn& progress = nullptr,
                                              ScaleChoiceReport* choice = nullptr);

// The error measure for one conv and one input tensor: sum over the sampled outputs of
// (act(conv(x) + b) - act(conv_q(q(x, s)) + b))^2 for each scale in `scales`, added to `err`
// (one entry per scale), and of act(conv(x) + b)^2 added to `ref`. conv_q uses per-channel int8
// weights. Exposed for tests.
Status accumulate_conv_error(const Node& conv, const Tensor& x, const Tensor& weight, const Tensor* bias,
                             const std::vector<float>& scales, const ScaleChoiceOptions& options,
                             unsigned seed, std::vector<double>& err, double& ref);

}  // namespace qyolo
