// GlobalAveragePool: X [N, C, D1..Dk] -> [N, C, 1..1], the mean over the spatial dims.
// No attributes; the header exists for symmetry with the other ops.
#pragma once

#include "ir/graph.h"

namespace qyolo {

struct GlobalAvgPoolAttrs {
  Shape out_shape;
  static Result<GlobalAvgPoolAttrs> parse(const Node& node, const Shape& x);
};

}  // namespace qyolo
