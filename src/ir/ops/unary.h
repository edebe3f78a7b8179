// Elementwise unary family: Sigmoid, Relu, LeakyRelu, HardSigmoid, HardSwish, Tanh, Exp, Log, Sqrt,
// Neg, Abs, Softplus, Elu, Not.
#pragma once

#include <cstdint>

#include "ir/graph.h"

namespace qyolo {

enum class UnaryOp {
  kSigmoid,
  kRelu,
  kLeakyRelu,
  kHardSigmoid,
  kHardSwish,
  kTanh,
  kExp,
  kLog,
  kSqrt,
  kNeg,
  kAbs,
  kSoftplus,
  kElu,
  kNot,
};

struct UnaryAttrs {
  UnaryOp op = UnaryOp::kRelu;
  float alpha = 0.f;  // LeakyRelu (0.01), HardSigmoid (0.2), Elu (1.0); HardSwish uses 1/6
  float beta = 0.f;   // HardSigmoid (0.5); HardSwish uses 0.5

  static Result<UnaryAttrs> parse(const Node& node, int64_t opset);
};

}  // namespace qyolo
