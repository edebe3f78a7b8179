// BatchNormalization, inference mode: Y = scale * (X - mean) / sqrt(var + epsilon) + B, per channel
// (dim 1). Inputs X [N, C, ...], scale, B, mean, var [C]. training_mode=1 (opset 14+, 3 outputs)
// is not supported; opset < 9 'spatial' must be 1 (the only form exporters produce).
#pragma once

#include "ir/graph.h"

namespace qyolo {

struct BatchNormAttrs {
  float epsilon = 1e-5f;
  static Result<BatchNormAttrs> parse(const Node& node);
};

}  // namespace qyolo
