// LayerNormalization (opset 17): normalises over dims [axis, rank) of X, then * Scale + B (Scale and
// B hold one value per normalised element, or one value). Optional outputs Mean and InvStdDev have
// X's shape with the normalised dims set to 1.
#include "ir/op_registry.h"

namespace qyolo {

Status infer_layer_norm(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  if (x->dtype != DataType::kFloat32)
    return unsupported(ctx.node.describe() + ": supports float32 only, got " + dtype_name(x->dtype));
  QYOLO_ASSIGN_OR_RETURN(int64_t axis_attr, ctx.node.attr_int("axis", -1));
  const int64_t rank = static_cast<int64_t>(x->shape.size());
  auto axis = normalize_axis(axis_attr, rank);
  if (!axis) return ctx.error(axis.status().message());
  int64_t inner = 1;
  for (int64_t d = *axis; d < rank; ++d) inner *= x->shape[static_cast<size_t>(d)];
  for (size_t i = 1; i < 3; ++i) {
    const ValueDesc* p = ctx.input(i);
    if (p == nullptr) continue;
    if (p->dtype != DataType::kFloat32)
      return ctx.error(std::string(i == 1 ? "Scale" : "B") + " must be float32");
    const int64_t n = shape_numel(p->shape);
    if (n != inner && n != 1)
      return ctx.error(std::string(i == 1 ? "Scale" : "B") + " of shape " + shape_str(p->shape) +
                       " does not match the " + std::to_string(inner) + " normalised elements");
  }
  Shape stat = x->shape;
  for (int64_t d = *axis; d < rank; ++d) stat[static_cast<size_t>(d)] = 1;
  ctx.outputs[0] = ValueDesc{DataType::kFloat32, x->shape, std::nullopt};
  for (size_t i = 1; i < ctx.outputs.size(); ++i)
    ctx.outputs[i] = ValueDesc{DataType::kFloat32, stat, std::nullopt};
  return Status::ok();
}

}  // namespace qyolo
