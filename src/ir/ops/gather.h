// Gather along one axis (negative axis and negative indices allowed).
#pragma once

#include "ir/graph.h"

namespace qyolo {

struct GatherAttrs {
  int64_t axis = 0;  // as written; normalise against the data rank

  static Result<GatherAttrs> parse(const Node& node, int64_t opset);
};

}  // namespace qyolo
