// Clip: bounds are attributes before opset 11 and optional scalar inputs from opset 11.
#pragma once

#include <optional>

#include "ir/graph.h"

namespace qyolo {

struct ClipAttrs {
  bool bounds_are_inputs = true;  // opset >= 11: inputs 1 (min) and 2 (max), each optional
  std::optional<float> min, max;  // opset < 11: the 'min'/'max' attributes

  static Result<ClipAttrs> parse(const Node& node, int64_t opset);
};

}  // namespace qyolo
