// ReduceMax / ReduceMin / ReduceMean / ReduceSum / ReduceSumSquare and ArgMax over a set of axes of
// a float32 tensor, viewed as [outer, reduced, inner] blocks after the axes are normalised.
#pragma once

#include <vector>

#include "ir/graph.h"

namespace qyolo {

enum class ReduceKind : int { kMax, kMin, kMean, kSum, kSumSquare };

// The reduction an op type names (ReduceMax ... ReduceSumSquare), or an error naming the node.
Result<ReduceKind> reduce_kind_of(const Node& node);

struct ReducePlan {
  Shape out;                  // ONNX output shape (keepdims applied)
  Shape in;                   // input shape
  std::vector<bool> reduced;  // per input dim
  bool noop = false;          // empty axes with noop_with_empty_axes: output = input
};

// `axes` are the attribute's or the constant input's values (empty: all axes, or noop).
Result<ReducePlan> plan_reduce(const Node& node, const Shape& in, std::vector<int64_t> axes, bool keepdims,
                               bool noop_with_empty_axes);

}  // namespace qyolo
