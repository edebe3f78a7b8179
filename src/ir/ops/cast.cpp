#include "ir/ops/cast.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<DataType> dtype_from_onnx_enum(int64_t onnx_type) {
  switch (onnx_type) {
    case 1:
      return DataType::kFloat32;
    case 2:
      return DataType::kUInt8;
    case 3:
      return DataType::kInt8;
    case 6:
      return DataType::kInt32;
    case 7:
      return DataType::kInt64;
    case 9:
      return DataType::kBool;
    case 10:
      return DataType::kFloat16;
    default:
      return unsupported("ONNX element type " + std::to_string(onnx_type) + " is not supported");
  }
}

Result<CastAttrs> CastAttrs::parse(const Node& node, int64_t opset) {
  CastAttrs a;
  QYOLO_ASSIGN_OR_RETURN(int64_t to, node.attr_int("to"));
  auto t = dtype_from_onnx_enum(to);
  if (!t) return unsupported(node.describe() + ": cast target: " + t.status().message());
  a.to = *t;
  return a;
}

Status infer_cast(InferContext& ctx) {
  QYOLO_ASSIGN_OR_RETURN(CastAttrs a, CastAttrs::parse(ctx.node, ctx.opset));
  if (ctx.input(0) == nullptr) return ctx.error("input 0 is required");
  ctx.outputs[0].dtype = a.to;
  ctx.outputs[0].shape = ctx.input(0)->shape;
  return Status::ok();
}

}  // namespace qyolo
