#include "ir/ops/image_to_float.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<Shape> image_to_float_shape(const Node& node, const Shape& x) {
  if (x.size() != 4)
    return invalid_argument(node.describe() + ": input X must be 4-D [N, H, W, C] bytes, got " +
                            shape_str(x));
  return Shape{x[0], x[3], x[1], x[2]};
}

Status infer_image_to_float(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  if (x == nullptr) return ctx.error("X is required");
  if (x->dtype != DataType::kUInt8)
    return ctx.error(std::string("X must be uint8, got ") + dtype_name(x->dtype));
  QYOLO_ASSIGN_OR_RETURN(Shape y, image_to_float_shape(ctx.node, x->shape));
  ctx.outputs[0].dtype = DataType::kFloat32;
  ctx.outputs[0].shape = std::move(y);
  return Status::ok();
}

}  // namespace qyolo
