#include "ir/ops/clip.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<ClipAttrs> ClipAttrs::parse(const Node& node, int64_t opset) {
  ClipAttrs a;
  a.bounds_are_inputs = opset >= 11;
  if (!a.bounds_are_inputs) {
    if (node.inputs.size() > 1)
      return invalid_argument(node.describe() + ": opset " + std::to_string(opset) +
                              " Clip takes min/max as attributes, not inputs");
    if (node.has_attr("min")) {
      QYOLO_ASSIGN_OR_RETURN(a.min, node.attr_float("min"));
    }
    if (node.has_attr("max")) {
      QYOLO_ASSIGN_OR_RETURN(a.max, node.attr_float("max"));
    }
  } else if (node.has_attr("min") || node.has_attr("max")) {
    return invalid_argument(node.describe() + ": from opset 11 Clip takes min/max as inputs, not attributes");
  }
  return a;
}

Status infer_clip(InferContext& ctx) {
  QYOLO_RETURN_IF_ERROR(ClipAttrs::parse(ctx.node, ctx.opset).status());  // validates the opset form
  const ValueDesc* x = ctx.input(0);
  if (x == nullptr) return ctx.error("input 0 is required");
  if (x->dtype == DataType::kBool) return ctx.error("bool input is not supported");
  for (size_t i = 1; i < 3; ++i) {
    const ValueDesc* b = ctx.input(i);
    if (b == nullptr) continue;
    if (shape_numel(b->shape) != 1)
      return ctx.error(std::string(i == 1 ? "min" : "max") + " must be a scalar, got shape " +
                       shape_str(b->shape));
    if (b->dtype != x->dtype)
      return ctx.error(std::string(i == 1 ? "min" : "max") + " is " + dtype_name(b->dtype) + ", input is " +
                       dtype_name(x->dtype));
  }
  ctx.outputs[0].dtype = x->dtype;
  ctx.outputs[0].shape = x->shape;
  return Status::ok();
}

}  // namespace qyolo
