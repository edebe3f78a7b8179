// Transpose: output dim i is input dim perm[i]; perm defaults to the reversed dims.
#pragma once

#include <vector>

#include "ir/graph.h"

namespace qyolo {

struct TransposeAttrs {
  std::vector<int64_t> perm;
  Shape out_shape;
  static Result<TransposeAttrs> parse(const Node& node, const Shape& x);
};

}  // namespace qyolo
