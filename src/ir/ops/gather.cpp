#include "ir/ops/gather.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<GatherAttrs> GatherAttrs::parse(const Node& node, int64_t opset) {
  GatherAttrs a;
  QYOLO_ASSIGN_OR_RETURN(a.axis, node.attr_int("axis", 0));
  return a;
}

Status infer_gather(InferContext& ctx) {
  QYOLO_ASSIGN_OR_RETURN(GatherAttrs a, GatherAttrs::parse(ctx.node, ctx.opset));
  const ValueDesc* data = ctx.input(0);
  const ValueDesc* idx = ctx.input(1);
  if (data == nullptr || idx == nullptr) return ctx.error("data and indices are required");
  if (idx->dtype != DataType::kInt32 && idx->dtype != DataType::kInt64)
    return ctx.error(std::string("indices must be int32 or int64, got ") + dtype_name(idx->dtype));
  const int64_t rank = static_cast<int64_t>(data->shape.size());
  if (rank == 0) return ctx.error("data must have rank >= 1");
  auto axis = normalize_axis(a.axis, rank);
  if (!axis) return ctx.error(axis.status().message());
  const size_t ax = static_cast<size_t>(*axis);
  Shape out(data->shape.begin(), data->shape.begin() + static_cast<std::ptrdiff_t>(ax));
  out.insert(out.end(), idx->shape.begin(), idx->shape.end());
  out.insert(out.end(), data->shape.begin() + static_cast<std::ptrdiff_t>(ax) + 1, data->shape.end());
  if (idx->value) {
    const int64_t n = data->shape[ax];
    for (int64_t i : idx->value->to_int64_vector())
      if (i < -n || i >= n)
        return ctx.error("index " + std::to_string(i) + " is out of range for axis " + std::to_string(ax) +
                         " of size " + std::to_string(n));
  }
  ctx.outputs[0].dtype = data->dtype;
  ctx.outputs[0].shape = std::move(out);
  return Status::ok();
}

}  // namespace qyolo
