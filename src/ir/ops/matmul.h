// MatMul (numpy matmul: 1-D operands promoted and the added dim dropped, batch dims broadcast) and
// Gemm (2-D, optional transposes, alpha * A'B' + beta * C with C broadcast to [M, N]).
#pragma once

#include <vector>

#include "ir/graph.h"

namespace qyolo {

struct MatMulPlan {
  int64_t m = 0, k = 0, n = 0;
  Shape out;                                  // the ONNX output shape
  std::vector<int64_t> a_offsets, b_offsets;  // per output batch: element offset of its A and B matrix
};

// Errors name the node when the shapes do not multiply.
Result<MatMulPlan> plan_matmul(const Node& node, const Shape& a, const Shape& b);

struct GemmAttrs {
  float alpha = 1.f, beta = 1.f;
  bool trans_a = false, trans_b = false;
  int64_t m = 0, k = 0, n = 0;

  static Result<GemmAttrs> parse(const Node& node, const Shape& a, const Shape& b);
};

}  // namespace qyolo
