#include "ir/ops/dequantize_linear.h"

namespace qyolo {

Status infer_dequantize_linear(InferContext& ctx) {
  QYOLO_ASSIGN_OR_RETURN(DequantizeLinearAttrs a, DequantizeLinearAttrs::parse(ctx.node, ctx.opset));
  QYOLO_RETURN_IF_ERROR(qlinear_layout(ctx, a).status());
  const ValueDesc* x = ctx.input(0);
  const ValueDesc* zp = ctx.input(2);
  if (x->dtype != DataType::kInt8 && x->dtype != DataType::kUInt8 && x->dtype != DataType::kInt32)
    return ctx.error(std::string("x must be int8, uint8 or int32, got ") + dtype_name(x->dtype));
  if (zp && zp->dtype != x->dtype)
    return ctx.error(std::string("zero point is ") + dtype_name(zp->dtype) + ", x is " +
                     dtype_name(x->dtype));
  // The output has the scale's type (float32 before opset 19, when scale could only be float32).
  ctx.outputs[0].dtype = ctx.input(1)->dtype;
  ctx.outputs[0].shape = x->shape;
  return Status::ok();
}

}  // namespace qyolo
