// GatherElements: out[i...] = data[i... with index[i...] on `axis`]; indices (int32/int64, may be
// negative) have data's rank and set the output shape.
#include "ir/op_registry.h"

namespace qyolo {

Status infer_gather_elements(InferContext& ctx) {
  const ValueDesc* data = ctx.input(0);
  const ValueDesc* idx = ctx.input(1);
  if (idx->dtype != DataType::kInt32 && idx->dtype != DataType::kInt64)
    return ctx.error(std::string("indices must be int32 or int64, got ") + dtype_name(idx->dtype));
  if (idx->shape.size() != data->shape.size())
    return ctx.error("indices " + shape_str(idx->shape) + " and data " + shape_str(data->shape) +
                     " must have the same rank");
  QYOLO_ASSIGN_OR_RETURN(int64_t axis_attr, ctx.node.attr_int("axis", 0));
  auto axis = normalize_axis(axis_attr, static_cast<int64_t>(data->shape.size()));
  if (!axis) return ctx.error(axis.status().message());
  ctx.outputs[0].dtype = data->dtype;
  ctx.outputs[0].shape = idx->shape;
  return Status::ok();
}

}  // namespace qyolo
