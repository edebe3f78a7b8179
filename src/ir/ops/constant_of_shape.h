// ConstantOfShape: the 'value' attribute (a one-element tensor; float32 0 by default).
#pragma once

#include "ir/graph.h"

namespace qyolo {

struct ConstantOfShapeAttrs {
  Tensor value;  // one element

  static Result<ConstantOfShapeAttrs> parse(const Node& node, int64_t opset);
};

}  // namespace qyolo
