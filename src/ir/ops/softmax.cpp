#include "ir/ops/softmax.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<SoftmaxAttrs> SoftmaxAttrs::parse(const Node& node, int64_t opset, const Shape& x) {
  const int64_t rank = static_cast<int64_t>(x.size());
  QYOLO_ASSIGN_OR_RETURN(int64_t axis, node.attr_int("axis", opset < 13 ? 1 : -1));
  if (rank == 0) return invalid_argument(node.describe() + ": input must have rank >= 1");
  auto ax = normalize_axis(axis, rank);
  if (!ax) return ax.status().with_context(node.describe());
  const AxisSplit split = split_at_axis(x, *ax);
  SoftmaxAttrs a{split.outer, split.n, split.inner};
  if (opset < 13) {  // the axis and everything after it as one dim
    a.n *= a.inner;
    a.inner = 1;
  }
  return a;
}

Status infer_softmax(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  if (x->dtype != DataType::kFloat32)
    return unsupported(ctx.node.describe() + ": only float32 is supported, got " + dtype_name(x->dtype));
  QYOLO_ASSIGN_OR_RETURN(SoftmaxAttrs a, SoftmaxAttrs::parse(ctx.node, ctx.opset, x->shape));
  if (ctx.opset < 13) {
    QYOLO_ASSIGN_OR_RETURN(SoftmaxAttrs b, SoftmaxAttrs::parse(ctx.node, 13, x->shape));
    if (shape_numel(x->shape) != 0 && (a.n != b.n || b.inner != 1))
      return unsupported(ctx.node.describe() + ": opset " + std::to_string(ctx.opset) +
                         " Softmax over flattened trailing dims of " + shape_str(x->shape) +
                         " is not supported (only over the last dim)");
  }
  ctx.outputs[0].dtype = x->dtype;
  ctx.outputs[0].shape = x->shape;
  return Status::ok();
}

}  // namespace qyolo
