// Automatic mixed precision for INT8 engines (qyolo build --int8 --accuracy-budget):
//  1. rank_layer_sensitivity quantises one conv at a time (every other conv in float) and measures
//     the network output's error against FP32 on calibration images (as polygraphy / ModelOpt /
//     yolo_deepstream's `sensitive` rank layers);
//  2. plan_mixed_precision keeps the k most sensitive convs in float for the smallest k whose
//     held-out accuracy proxy (src/quant/accuracy_proxy.h) stays within the budget.
// The result is a float-layers regex (BuildOptions::float_layers_regex): a rule of the build's
// precision plan (src/quant/precision_plan_pass.h), which the engine file stores.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "quant/accuracy_proxy.h"
#include "qyolo/engine.h"

namespace qyolo {

struct LayerSensitivity {
  std::string node;  // conv node name in the prepared graph
  double nsr = 0;    // output noise-to-signal ratio with only this conv in INT8 (see below)
  int64_t macs = 0;  // multiply-accumulates per image at the engine's opt shape
};

// Convs an INT8 engine runs in INT8 at its opt shape, in graph order, with their MACs.
Result<std::vector<LayerSensitivity>> int8_convs(const Engine& int8_engine);

// Output error of `candidate` against `reference` summed over batches: per channel of the output
// (its last dim when that is the smaller of the last two, e.g. YOLOv5's 85 of [N, 25200, 85], else
// the one before, e.g. YOLOv8's 84 of [N, 84, 8400]) sum (ref - cand)^2 / sum ref^2, averaged over
// channels, so box coordinates (hundreds of pixels) and scores (0..1) weigh alike.
class OutputError {
 public:
  Status add(const Tensor& reference, const Tensor& candidate);
  double nsr() const;

 private:
  std::vector<double> err2_, ref2_;
};

// An ECMAScript regex matching exactly these node names: ^(?:a|b)$ with metacharacters escaped.
std::string exact_names_regex(const std::vector<std::string>& names);

using StatusLineFn = std::function<void(const std::string& line)>;

// The FP32 engine an INT8 build is measured against: the same model and shapes, no scales, weight
// overrides, float layers or fp16.
BuildOptions fp32_reference_options(const BuildOptions& int8_options);

// Builds `int8_options` from `onnx_path` once per INT8 conv with only that conv in INT8 and ranks
// the convs by output error on `images` (already preprocessed network inputs), worst first.
Result<std::vector<LayerSensitivity>> rank_layer_sensitivity(const std::string& onnx_path,
                                                             const BuildOptions& int8_options,
                                                             const std::vector<Tensor>& images,
                                                             const StatusLineFn& log = nullptr);

struct MixedPrecisionPlan {
  std::vector<std::string> float_layers;  // convs kept in float, most sensitive first
  std::string regex;                      // BuildOptions::float_layers_regex of the plan
  double proxy_all_int8 = 0;              // proxy mAP50-95 with every conv in INT8
  double proxy_plan = 0;                  // and with the plan
  double float_mac_fraction = 0;          // share of the conv MACs the plan leaves in float
  int proxy_evaluations = 0;
};

// The k of a plan: `proxy_with(k)` is the proxy with the k most sensitive of n convs in float
// (k = n is FP32: 1.0). k = 1 .. first_tried are measured in order and the first within the budget
// wins: the proxy does not rise monotonically with k (yolov5n, equalised: the most sensitive conv
// alone in float 0.9507, the first 15 0.9400), and one or two convs are the cheap plans. Beyond
// them a binary search, assuming the proxy rises with k; the returned k's proxy is always measured.
// An error when even the k it ends on misses the budget.
Result<size_t> plan_size_within_budget(size_t n, const std::function<Result<double>(size_t k)>& proxy_with,
                                       double budget_points, size_t first_tried = 4);

// Smallest k (plan_size_within_budget) such that 100 * (1 - proxy) <= budget_points, the
// proxy being the agreement mAP50-95 with FP32 (1.0 = FP32 itself). int8_options'
// float_layers_regex (the user's) is kept in every candidate.
Result<MixedPrecisionPlan> plan_mixed_precision(const std::string& onnx_path,
                                                const BuildOptions& int8_options,
                                                const std::vector<LayerSensitivity>& ranking,
                                                const AccuracyProxy& proxy, double budget_points,
                                                const StatusLineFn& log = nullptr);

}  // namespace qyolo
