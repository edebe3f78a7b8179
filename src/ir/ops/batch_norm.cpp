#include "ir/ops/batch_norm.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<BatchNormAttrs> BatchNormAttrs::parse(const Node& node) {
  BatchNormAttrs a;
  QYOLO_ASSIGN_OR_RETURN(a.epsilon, node.attr_float("epsilon", 1e-5f));
  QYOLO_ASSIGN_OR_RETURN(int64_t training, node.attr_int("training_mode", 0));
  if (training != 0)
    return unsupported(node.describe() + ": training_mode=1 is not supported (inference only)");
  QYOLO_ASSIGN_OR_RETURN(int64_t spatial, node.attr_int("spatial", 1));
  if (spatial != 1) return unsupported(node.describe() + ": spatial=0 is not supported");
  if (node.outputs.size() != 1)
    return unsupported(node.describe() + ": only the inference form with one output is supported");
  return a;
}

Status infer_batch_norm(InferContext& ctx) {
  QYOLO_RETURN_IF_ERROR(BatchNormAttrs::parse(ctx.node).status());
  const ValueDesc* x = ctx.input(0);
  if (x->dtype != DataType::kFloat32)
    return unsupported(ctx.node.describe() + ": only float32 is supported, got " + dtype_name(x->dtype));
  if (x->shape.size() < 2) return ctx.error("input X must have rank >= 2, got " + shape_str(x->shape));
  const char* names[] = {"", "scale", "B", "mean", "var"};
  for (size_t i = 1; i < 5; ++i) {
    const ValueDesc* p = ctx.input(i);
    if (p == nullptr) return ctx.error(std::string("input ") + names[i] + " is required");
    if (p->dtype != DataType::kFloat32 || p->shape != Shape{x->shape[1]})
      return ctx.error(std::string("input ") + names[i] + " must be float32 of shape [" +
                       std::to_string(x->shape[1]) + "], got " + dtype_name(p->dtype) + " " +
                       shape_str(p->shape));
  }
  ctx.outputs[0].dtype = x->dtype;
  ctx.outputs[0].shape = x->shape;
  return Status::ok();
}

}  // namespace qyolo
