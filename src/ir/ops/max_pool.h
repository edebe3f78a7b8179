// MaxPool / AveragePool: typed attributes shared by shape inference and the backends.
// ONNX attributes: auto_pad, ceil_mode (opset 10+), dilations (MaxPool 10+, AveragePool 19+),
// kernel_shape (required), pads, strides, storage_order (MaxPool; only meaningful for the Indices
// output, which qyolo does not produce), count_include_pad (AveragePool).
#pragma once

#include "ir/graph.h"
#include "ir/ops/conv2d.h"

namespace qyolo {

struct PoolAttrs {
  WindowGeometry window;
  bool ceil_mode = false;
  bool count_include_pad = false;  // AveragePool only
  Shape out_shape;                 // [N, C, out...]

  // x: input shape [N, C, D1..Dk], k = 1..3.
  static Result<PoolAttrs> parse(const Node& node, const Shape& x);
};

}  // namespace qyolo
