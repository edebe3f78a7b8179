// Shape (with the opset-15 start/end slice).
#pragma once

#include <optional>

#include "ir/graph.h"

namespace qyolo {

struct ShapeAttrs {
  int64_t start = 0;
  std::optional<int64_t> end;

  static Result<ShapeAttrs> parse(const Node& node, int64_t opset);
  // The [begin, end) range of dims selected for an input of `rank`.
  std::pair<int64_t, int64_t> range(int64_t rank) const;
};

}  // namespace qyolo
