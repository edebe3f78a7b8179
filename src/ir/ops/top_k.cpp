// TopK: the k largest (or smallest) elements along an axis and their int64 indices; equal values
// keep the lower index first (ONNX). k must be constant: it sets the output shape.
#include "ir/op_registry.h"

namespace qyolo {

Status infer_top_k(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  if (x->dtype != DataType::kFloat32)
    return unsupported(ctx.node.describe() + ": supports float32 only, got " + dtype_name(x->dtype));
  int64_t k = 0;
  if (ctx.opset < 10) {
    QYOLO_ASSIGN_OR_RETURN(k, ctx.node.attr_int("k"));
  } else {
    QYOLO_ASSIGN_OR_RETURN(std::vector<int64_t> kv, ctx.const_ints(1));
    if (kv.size() != 1) return ctx.error("K must hold one value");
    k = kv[0];
  }
  QYOLO_ASSIGN_OR_RETURN(int64_t axis_attr, ctx.node.attr_int("axis", -1));
  auto axis = normalize_axis(axis_attr, static_cast<int64_t>(x->shape.size()));
  if (!axis) return ctx.error(axis.status().message());
  const int64_t n = x->shape[static_cast<size_t>(*axis)];
  if (k < 0 || k > n)
    return ctx.error("k = " + std::to_string(k) + " is outside 0.." + std::to_string(n) + " (axis " +
                     std::to_string(*axis) + " of " + shape_str(x->shape) + ")");
  Shape out = x->shape;
  out[static_cast<size_t>(*axis)] = k;
  ctx.outputs[0] = ValueDesc{x->dtype, out, std::nullopt};
  ctx.outputs[1] = ValueDesc{DataType::kInt64, out, std::nullopt};
  return Status::ok();
}

}  // namespace qyolo
