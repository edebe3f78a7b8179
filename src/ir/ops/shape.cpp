#include "ir/ops/shape.h"

#include <algorithm>

#include "ir/op_registry.h"

namespace qyolo {

Result<ShapeAttrs> ShapeAttrs::parse(const Node& node, int64_t opset) {
  ShapeAttrs a;
  if (opset < 15 && (node.has_attr("start") || node.has_attr("end")))
    return invalid_argument(node.describe() + ": start/end attributes need opset 15");
  QYOLO_ASSIGN_OR_RETURN(a.start, node.attr_int("start", 0));
  if (node.has_attr("end")) {
    QYOLO_ASSIGN_OR_RETURN(a.end, node.attr_int("end"));
  }
  return a;
}

std::pair<int64_t, int64_t> ShapeAttrs::range(int64_t rank) const {
  auto clamp = [rank](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
  int64_t b = clamp(start);
  int64_t e = clamp(end.value_or(rank));
  return {b, std::max(b, e)};
}

Status infer_shape(InferContext& ctx) {
  QYOLO_ASSIGN_OR_RETURN(ShapeAttrs a, ShapeAttrs::parse(ctx.node, ctx.opset));
  const ValueDesc* x = ctx.input(0);
  if (x == nullptr) return ctx.error("input 0 is required");
  auto [b, e] = a.range(static_cast<int64_t>(x->shape.size()));
  std::vector<int64_t> dims(x->shape.begin() + b, x->shape.begin() + e);
  ctx.outputs[0].dtype = DataType::kInt64;
  ctx.outputs[0].shape = {e - b};
  // Shapes are concrete after specialisation: the output is a constant, so Shape->Gather->...
  // subgraphs of dynamic exports fold.
  ctx.outputs[0].value = Tensor::from_vector<int64_t>({e - b}, dims);
  return Status::ok();
}

}  // namespace qyolo
