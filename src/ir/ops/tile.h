// Tile: output dim d = input dim d * repeats[d]; repeats (2nd input, int64) must be a constant.
#pragma once

#include <vector>

#include "ir/graph.h"

namespace qyolo {

struct TileAttrs {
  std::vector<int64_t> repeats;
  Shape out_shape;
  static Result<TileAttrs> parse(const Node& node, const Shape& x, const std::vector<int64_t>& repeats);
};

}  // namespace qyolo
