// QuantizeLinear / DequantizeLinear attributes and the per-tensor / per-axis layout shared by both.
#pragma once

#include <optional>

#include "ir/op_registry.h"

namespace qyolo {

struct QLinearAttrs {
  int64_t axis = 1;                      // per-axis axis (opset >= 13; accepted earlier, as ORT does)
  std::optional<DataType> output_dtype;  // QuantizeLinear opset 21 'output_dtype'

  static Result<QLinearAttrs> parse(const Node& node, int64_t opset);
};

// How a scale (and zero point) applies to x: per tensor, or along one axis of x.
struct QLinearLayout {
  bool per_axis = false;
  int64_t outer = 1, channels = 1, inner = 1;  // x viewed as [outer, channels, inner]
};

// Validates scale / zero-point shapes against x; the error names the node.
Result<QLinearLayout> qlinear_layout(const InferContext& ctx, const QLinearAttrs& a);
// Same, from final shapes (kernels).
QLinearLayout qlinear_layout(const Shape& x, const Shape& scale, int64_t axis);

}  // namespace qyolo
