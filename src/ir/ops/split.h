// Split: X split along `axis` (default 0) into one piece per output.
// Piece sizes: the 'split' attribute (opset < 13) or the optional constant 2nd input (opset >= 13);
// when absent, equal pieces (opset 18 'num_outputs': ceil-sized pieces, the last one smaller).
#pragma once

#include <optional>
#include <vector>

#include "ir/graph.h"

namespace qyolo {

struct SplitAttrs {
  int64_t axis = 0;  // normalised
  std::vector<int64_t> sizes;
  // split_input: the constant 2nd input's values when present (opset >= 13).
  // (Which of attribute/input the opset allows is checked by infer_split.)
  static Result<SplitAttrs> parse(const Node& node, const Shape& x,
                                  const std::optional<std::vector<int64_t>>& split_input);
};

}  // namespace qyolo
