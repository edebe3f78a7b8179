// Slice: opset < 10 takes starts/ends/axes as attributes (steps 1); opset >= 10 takes them as inputs
// 1..4 (starts, ends, optional axes, optional steps), which must be constants. Negative indices
// count from the end; starts/ends are clamped as the ONNX spec says (also for negative steps).
#pragma once

#include <optional>
#include <vector>

#include "ir/graph.h"

namespace qyolo {

struct SliceAttrs {
  // Per input dim (all of them): first index, step, output size.
  std::vector<int64_t> start, step;
  Shape out_shape;

  // The opset >= 10 form (node has > 1 input) takes the constant inputs (starts, ends, axes, steps;
  // nullopt when omitted); the opset < 10 form reads attributes. infer_slice checks the opset.
  static Result<SliceAttrs> parse(const Node& node, const Shape& x,
                                  const std::optional<std::vector<int64_t>>& starts,
                                  const std::optional<std::vector<int64_t>>& ends,
                                  const std::optional<std::vector<int64_t>>& axes,
                                  const std::optional<std::vector<int64_t>>& steps);
};

}  // namespace qyolo
