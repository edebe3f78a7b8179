// Conv: typed attributes and output geometry, shared by shape inference and every backend.
//
// ONNX Conv (opsets 1/11): X [N, C, D1..Dk], W [M, C/group, K1..Kk], optional B [M];
// attributes auto_pad, dilations, group, kernel_shape, pads, strides. k = 1, 2 or 3.
//
// qyolo fusion extensions (set by qyolo's fusion pass, never present in ONNX files):
//   qyolo_activation       string, one of "" (none), "relu", "silu", "sigmoid", "leaky_relu",
//                          "hardswish"; applied to conv(x) + bias.
//   qyolo_activation_alpha float, the LeakyRelu slope (default 0.01); ignored otherwise.
//   4th input              optional residual R of the output's shape, added after the activation:
//                          Y = act(conv(X, W) + B) + R.
//   qyolo_output_multiplier floats, one per output channel (> 0), applied after the activation:
//                          Y[c] = act(conv(X, W) + B)[c] * m[c] (activation equalisation,
//                          src/passes/passes.h); never together with a residual.
// So a fused node computes Y = act(conv(X) + B) * m + R, with each part optional.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"

namespace qyolo {

enum class AutoPad { kNotSet, kSameUpper, kSameLower, kValid };

// Parses an ONNX auto_pad string ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID").
Result<AutoPad> parse_auto_pad(const Node& node);

// Sliding-window geometry over the spatial dims (shared by Conv, MaxPool, AveragePool).
struct WindowGeometry {
  std::vector<int64_t> kernel;      // spatial kernel size
  std::vector<int64_t> strides;     // >= 1
  std::vector<int64_t> dilations;   // >= 1
  std::vector<int64_t> pads_begin;  // resolved (auto_pad applied)
  std::vector<int64_t> pads_end;
  std::vector<int64_t> out;  // output spatial size
};

// Reads strides/dilations/pads/auto_pad (kernel is given) and resolves the output size for the
// spatial input `in`. ceil_mode as in pooling (a last window starting in the end padding is dropped).
Result<WindowGeometry> resolve_window(const Node& node, const std::vector<int64_t>& in,
                                      const std::vector<int64_t>& kernel, bool ceil_mode);

enum class FusedActivation { kNone, kRelu, kSilu, kSigmoid, kLeakyRelu, kHardSwish };
const char* fused_activation_name(FusedActivation a);

struct ConvAttrs {
  int64_t group = 1;
  WindowGeometry window;
  FusedActivation activation = FusedActivation::kNone;
  float activation_alpha = 0.01f;  // LeakyRelu slope
  bool has_bias = false;
  bool has_residual = false;
  std::vector<float> output_multiplier;  // empty: none
  Shape out_shape;                       // [N, M, out...]

  // x: input shape, w: weight shape. Validates ranks, channel/group consistency and bias/residual
  // presence (their shapes are checked by infer_conv2d).
  static Result<ConvAttrs> parse(const Node& node, const Shape& x, const Shape& w);
};

// Reference formula for a fused activation (used by tests and simple backends).
float apply_fused_activation(FusedActivation a, float alpha, float v);

}  // namespace qyolo
