// TopK (ir/ops/top_k.h).
#include "ir/ops/top_k.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<TopKAttrs> TopKAttrs::parse(const Node& node, const Shape& x) {
  QYOLO_ASSIGN_OR_RETURN(int64_t axis_attr, node.attr_int("axis", -1));
  QYOLO_ASSIGN_OR_RETURN(int64_t largest, node.attr_int("largest", 1));
  auto axis = normalize_axis(axis_attr, static_cast<int64_t>(x.size()));
  if (!axis) return axis.status().with_context(node.describe());
  TopKAttrs a;
  a.axis = *axis;
  a.largest = largest != 0;
  a.split = split_at_axis(x, a.axis);
  return a;
}

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
  QYOLO_ASSIGN_OR_RETURN(const TopKAttrs a, TopKAttrs::parse(ctx.node, x->shape));
  if (k < 0 || k > a.split.n)
    return ctx.error("k = " + std::to_string(k) + " is outside 0.." + std::to_string(a.split.n) + " (axis " +
                     std::to_string(a.axis) + " of " + shape_str(x->shape) + ")");
  Shape out = x->shape;
  out[static_cast<size_t>(a.axis)] = k;
  ctx.outputs[0] = ValueDesc{x->dtype, out, std::nullopt};
  ctx.outputs[1] = ValueDesc{DataType::kInt64, out, std::nullopt};
  return Status::ok();
}

}  // namespace qyolo
