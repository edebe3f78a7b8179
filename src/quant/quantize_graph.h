// INT8 graph quantisation (implicit, TensorRT-style PTQ, and explicit Q/DQ models).
//
// Scale convention: see src/quant/quant_params.h (real = scale * q, symmetric, zero point 0).
// What runs in INT8: every Conv whose input activation has a scale. Its input is quantised to int8
// with that scale, weights are quantised per output channel (scale_w[c] = max|W[c]| / 127), the
// product is accumulated in int32 and requantised per channel (scale_x * scale_w[c]) to float, where
// bias, activation and residual are applied. Other ops (Concat, MaxPool, Resize, the Detect head)
// run in float on those values. TensorRT would also run Concat/MaxPool/Resize in int8; since their
// outputs feed convs that quantise with the same calibrated scales, the difference is the rounding
// of values that no conv reads (the Detect head inputs are conv outputs, kept in float here).
#pragma once

#include <map>
#include <string>

#include "passes/specialize.h"

namespace qyolo {

struct QuantizeOptions {
  std::string float_layers_regex;       // nodes whose name matches stay in float
  bool asymmetric_activations = false;  // PlanRules::asymmetric_activations (CPU)
};

// Marks Convs for INT8 (attribute qyolo_input_scale) using `scales`
// (ONNX tensor name -> scale), and folds activation Q->DQ pairs of explicit Q/DQ models into the
// Conv that reads them. Returns the number of INT8 convs via `num_int8` (optional).
// It is make_precision_plan's rules + apply_precision_plan (src/quant/precision_plan_pass.h) in one
// step; engines make the plan once and store it instead.
Status quantize_graph(SpecializedGraph& g, const std::map<std::string, float>& scales,
                      const QuantizeOptions& options, int* num_int8 = nullptr);

// Reads a TensorRT calibration cache or PPQ json and checks it belongs to `graph`: errors if none of
// its tensor names exist in the graph (a cache for another model).
Result<std::map<std::string, float>> load_activation_scales(const std::string& path, const Graph& graph);

}  // namespace qyolo
