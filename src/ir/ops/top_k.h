// TopK: the k largest (or smallest) elements along an axis and their int64 indices; equal values
// keep the lower index first (ONNX). Kernels see the input as [outer, n, inner] and select along
// n; k, a constant input (an attribute before opset 10), sets the output shape.
#pragma once

#include "ir/graph.h"

namespace qyolo {

struct TopKAttrs {
  int64_t axis = 0;  // normalised
  int64_t outer = 1, n = 1, inner = 1;
  bool largest = true;
  static Result<TopKAttrs> parse(const Node& node, const Shape& x);
};

}  // namespace qyolo
