// ArgMax (ir/ops/argmax.h).
#include "ir/ops/argmax.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<ArgMaxAttrs> ArgMaxAttrs::parse(const Node& node, const Shape& x) {
  QYOLO_ASSIGN_OR_RETURN(int64_t axis_attr, node.attr_int("axis", 0));
  QYOLO_ASSIGN_OR_RETURN(int64_t keepdims, node.attr_int("keepdims", 1));
  QYOLO_ASSIGN_OR_RETURN(int64_t last, node.attr_int("select_last_index", 0));
  auto axis = normalize_axis(axis_attr, static_cast<int64_t>(x.size()));
  if (!axis) return axis.status().with_context(node.describe());
  ArgMaxAttrs a;
  a.axis = *axis;
  a.keepdims = keepdims != 0;
  a.select_last = last != 0;
  a.split = split_at_axis(x, a.axis);
  return a;
}

Status infer_argmax(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  if (x->dtype != DataType::kFloat32)
    return unsupported(ctx.node.describe() + ": supports float32 only, got " + dtype_name(x->dtype));
  QYOLO_ASSIGN_OR_RETURN(const ArgMaxAttrs a, ArgMaxAttrs::parse(ctx.node, x->shape));
  Shape out;
  for (size_t d = 0; d < x->shape.size(); ++d) {
    if (static_cast<int64_t>(d) != a.axis)
      out.push_back(x->shape[d]);
    else if (a.keepdims)
      out.push_back(1);
  }
  ctx.outputs[0].dtype = DataType::kInt64;
  ctx.outputs[0].shape = out;
  return Status::ok();
}

}  // namespace qyolo
