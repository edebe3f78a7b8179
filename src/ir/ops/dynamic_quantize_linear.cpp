// DynamicQuantizeLinear: x (float32) -> y (uint8), y_scale (float32 scalar), y_zero_point (uint8
// scalar), the scale and zero point computed from x's range at run time (ONNX opset 11).
#include "ir/op_registry.h"

namespace qyolo {

Status infer_dynamic_quantize_linear(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  if (x == nullptr) return ctx.error("input 0 is required");
  if (x->dtype != DataType::kFloat32)
    return ctx.error(std::string("x must be float32, got ") + dtype_name(x->dtype));
  ctx.outputs[0].dtype = DataType::kUInt8;
  ctx.outputs[0].shape = x->shape;
  ctx.outputs[1].dtype = DataType::kFloat32;
  ctx.outputs[1].shape = {};
  ctx.outputs[2].dtype = DataType::kUInt8;
  ctx.outputs[2].shape = {};
  return Status::ok();
}

}  // namespace qyolo
