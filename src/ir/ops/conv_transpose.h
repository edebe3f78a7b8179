// ConvTranspose (N-D, groups, dilations, output_padding, pads / auto_pad / output_shape) as the
// ONNX spec defines its output size and padding.
#pragma once

#include <vector>

#include "ir/graph.h"

namespace qyolo {

struct ConvTransposePlan {
  int64_t group = 1;
  std::vector<int64_t> kernel, strides, dilations, pad_begin;  // per spatial dim
  Shape out;                                                   // N, C_out, spatial...
};

Result<ConvTransposePlan> plan_conv_transpose(const Node& node, const Shape& x, const Shape& w);

}  // namespace qyolo
