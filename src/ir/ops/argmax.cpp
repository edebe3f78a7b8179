// ArgMax: int64 index of the largest element along `axis` (first or, with select_last_index, last
// of equal maxima); keepdims keeps the axis as size 1.
#include "ir/op_registry.h"

namespace qyolo {

Status infer_argmax(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  if (x->dtype != DataType::kFloat32)
    return unsupported(ctx.node.describe() + ": supports float32 only, got " + dtype_name(x->dtype));
  QYOLO_ASSIGN_OR_RETURN(int64_t axis_attr, ctx.node.attr_int("axis", 0));
  QYOLO_ASSIGN_OR_RETURN(int64_t keepdims, ctx.node.attr_int("keepdims", 1));
  auto axis = normalize_axis(axis_attr, static_cast<int64_t>(x->shape.size()));
  if (!axis) return ctx.error(axis.status().message());
  Shape out;
  for (size_t d = 0; d < x->shape.size(); ++d) {
    if (static_cast<int64_t>(d) != *axis)
      out.push_back(x->shape[d]);
    else if (keepdims)
      out.push_back(1);
  }
  ctx.outputs[0].dtype = DataType::kInt64;
  ctx.outputs[0].shape = out;
  return Status::ok();
}

}  // namespace qyolo
