// Constant: one of the value / value_float / value_floats / value_int / value_ints attributes.
#pragma once

#include "ir/graph.h"

namespace qyolo {

struct ConstantAttrs {
  Tensor value;

  static Result<ConstantAttrs> parse(const Node& node, int64_t opset);
};

}  // namespace qyolo
