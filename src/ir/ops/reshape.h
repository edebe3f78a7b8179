// Shape-only ops sharing one implementation (the data is not touched): Reshape, Flatten, Squeeze,
// Unsqueeze, Identity.
#pragma once

#include <optional>
#include <vector>

#include "ir/graph.h"

namespace qyolo {

struct ReshapeAttrs {
  int64_t allowzero = 0;                      // Reshape (opset >= 14)
  int64_t axis = 1;                           // Flatten
  std::optional<std::vector<int64_t>> shape;  // Reshape opset < 5: the 'shape' attribute
  std::optional<std::vector<int64_t>> axes;   // Squeeze/Unsqueeze opset < 13: the 'axes' attribute
  bool axes_from_input = false;               // Squeeze/Unsqueeze opset >= 13: axes are input 1
  bool shape_from_input = false;              // Reshape opset >= 5: the shape is input 1

  static Result<ReshapeAttrs> parse(const Node& node, int64_t opset);
};

}  // namespace qyolo
