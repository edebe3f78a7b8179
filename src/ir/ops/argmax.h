// ArgMax: the int64 index of the largest element along `axis` (the first of equal maxima, or the
// last with select_last_index); keepdims keeps the axis as size 1. Kernels see the input as
// [outer, n, inner] and search along n.
#pragma once

#include "ir/graph.h"
#include "ir/op_registry.h"

namespace qyolo {

struct ArgMaxAttrs {
  int64_t axis = 0;  // normalised
  AxisSplit split;
  bool keepdims = true, select_last = false;
  static Result<ArgMaxAttrs> parse(const Node& node, const Shape& x);
};

}  // namespace qyolo
