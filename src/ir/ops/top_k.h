// TopK: the k largest (or smallest) elements along an axis and their int64 indices; equal values
// keep the lower index first (ONNX). Kernels see the input as [outer, n, inner] and select along
// n; k, a constant input (an attribute before opset 10), sets the output shape.
#pragma once

#include "ir/graph.h"
#include "ir/op_registry.h"

namespace qyolo {

struct TopKAttrs {
  int64_t axis = 0;  // normalised
  AxisSplit split;
  bool largest = true;
  static Result<TopKAttrs> parse(const Node& node, const Shape& x);
};

}  // namespace qyolo
