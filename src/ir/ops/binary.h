// Elementwise binary family (Add, Sub, Mul, Div, Pow, Equal, Less, Greater, And, Or, variadic Max/Min)
// and the numpy broadcasting plan shared by every broadcasting op (binary, Where, Expand).
#pragma once

#include <cstdint>
#include <vector>

#include "ir/graph.h"

namespace qyolo {

enum class BinaryOp { kAdd, kSub, kMul, kDiv, kPow, kEqual, kLess, kGreater, kAnd, kOr, kMax, kMin };

struct BinaryAttrs {
  BinaryOp op = BinaryOp::kAdd;

  // Output is bool (comparisons and logic).
  bool bool_output() const {
    return op == BinaryOp::kEqual || op == BinaryOp::kLess || op == BinaryOp::kGreater ||
           op == BinaryOp::kAnd || op == BinaryOp::kOr;
  }
  // Errors for unknown op types and for legacy (opset < 7) axis-broadcasting.
  static Result<BinaryAttrs> parse(const Node& node, int64_t opset);
};

// numpy broadcasting of N inputs to `out`, with adjacent dims merged where every input is either
// full or broadcast on both. dims.back() is the contiguous inner run; an input's inner stride is 1
// (it varies along the run) or 0 (it is constant along the run).
struct BroadcastPlan {
  Shape dims;                                 // merged output dims, at least one
  std::vector<std::vector<int64_t>> strides;  // [input][dim], in elements; 0 on broadcast dims
  int64_t numel = 0;
};

BroadcastPlan make_broadcast_plan(const Shape& out, const std::vector<Shape>& inputs);

// Broadcast shape of several inputs; the error names the shapes.
Result<Shape> broadcast_all(const std::vector<Shape>& shapes);

}  // namespace qyolo
