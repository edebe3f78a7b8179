// A model's own quantization of its outputs (a QuantizeLinear -> DequantizeLinear pair, or a
// QOperator op rewritten into one, right before a graph output). ONNX Runtime's quantizer calibrates
// one scale per tensor, so a head output that concatenates boxes in pixels with scores in [0, 1]
// gets a step sized for the boxes: the ultralytics YOLOv8n it quantized
// (../shared/models/yolov8n-ort-qlinear.onnx) has output0 in steps of 8, and every class score
// rounds to 0. The detector checks for this (runtime/detector.cpp); BuildOptions::float_outputs
// removes the pair so the output is computed in float from the model's other quantized values.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace qyolo {

struct OutputQuantization {
  std::string node;  // the DequantizeLinear producing the output
  float scale = 0.f;
  int64_t zero_point = 0;
  int64_t qmin = 0, qmax = 0;  // the integer type's range
  // How many non-zero values a probability in [0, 1] can take on this grid (0: every one rounds to 0).
  int64_t probability_levels() const;
};

// The per-tensor quantization of graph output `output`, when a DequantizeLinear with constant
// scale and zero point produces it; nullopt otherwise (float outputs, per-axis scales, runtime scales).
std::optional<OutputQuantization> output_quantization(const Graph& g, const std::string& output);

// The grids every value of `value` lies on: walking back through ops that only move values
// (Identity, Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Slice, Split, Concat) to the per-tensor
// DequantizeLinear nodes that produced them. nullopt when some value comes from anything else
// (arithmetic, an input, a constant): then the output is not confined to those grids.
std::optional<std::vector<OutputQuantization>> output_grids(const Graph& g, const std::string& value);

// Replaces every DequantizeLinear(QuantizeLinear(x)) that produces a graph output by x (the
// output then takes the float value the model quantized last). Returns how many outputs changed.
int remove_output_quantization(Graph& g);

}  // namespace qyolo
