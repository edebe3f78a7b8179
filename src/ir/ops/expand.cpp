#include "ir/op_registry.h"

namespace qyolo {

Status infer_expand(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  if (x == nullptr) return ctx.error("input 0 is required");
  QYOLO_ASSIGN_OR_RETURN(std::vector<int64_t> shape, ctx.const_ints(1));
  if (ctx.input(1)->shape.size() != 1) return ctx.error("the shape input must be 1-D");
  for (int64_t d : shape)
    if (d < 0) return ctx.error("shape " + shape_str(shape) + " has a negative dimension");
  // Bidirectional (numpy) broadcasting: dims of 1 in `shape` keep the input's dim.
  auto out = broadcast_shapes(x->shape, shape);
  if (!out) return ctx.error("cannot expand " + shape_str(x->shape) + " to " + shape_str(shape));
  ctx.outputs[0].dtype = x->dtype;
  ctx.outputs[0].shape = std::move(out).value();
  return Status::ok();
}

}  // namespace qyolo
