#include "ir/ops/constant_of_shape.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<ConstantOfShapeAttrs> ConstantOfShapeAttrs::parse(const Node& node, int64_t opset) {
  ConstantOfShapeAttrs a;
  if (node.has_attr("value")) {
    QYOLO_ASSIGN_OR_RETURN(a.value, node.attr_tensor("value"));
    if (a.value.numel() != 1)
      return invalid_argument(node.describe() + ": 'value' must hold one element, it has " +
                              std::to_string(a.value.numel()));
  } else {
    a.value = Tensor::scalar<float>(0.f);
  }
  return a;
}

Status infer_constant_of_shape(InferContext& ctx) {
  QYOLO_ASSIGN_OR_RETURN(ConstantOfShapeAttrs a, ConstantOfShapeAttrs::parse(ctx.node, ctx.opset));
  QYOLO_ASSIGN_OR_RETURN(std::vector<int64_t> shape, ctx.const_ints(0));
  if (ctx.input(0)->shape.size() != 1) return ctx.error("the shape input must be 1-D");
  for (int64_t d : shape)
    if (d < 0) return ctx.error("shape " + shape_str(shape) + " has a negative dimension");
  ctx.outputs[0].dtype = a.value.dtype();
  ctx.outputs[0].shape = std::move(shape);
  return Status::ok();
}

}  // namespace qyolo
