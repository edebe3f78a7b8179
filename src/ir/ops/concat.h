// Concat: inputs of one dtype and rank, equal dims except `axis` (required, may be negative).
#pragma once

#include <vector>

#include "ir/graph.h"

namespace qyolo {

struct ConcatAttrs {
  int64_t axis = 0;  // normalised
  Shape out_shape;
  static Result<ConcatAttrs> parse(const Node& node, const std::vector<Shape>& inputs);
};

}  // namespace qyolo
