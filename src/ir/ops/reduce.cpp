#include "ir/ops/reduce.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<ReduceKind> reduce_kind_of(const Node& node) {
  static const std::pair<const char*, ReduceKind> kKinds[] = {{"ReduceMax", ReduceKind::kMax},
                                                              {"ReduceMin", ReduceKind::kMin},
                                                              {"ReduceMean", ReduceKind::kMean},
                                                              {"ReduceSum", ReduceKind::kSum},
                                                              {"ReduceSumSquare", ReduceKind::kSumSquare}};
  for (const auto& [name, kind] : kKinds)
    if (node.op_type == name) return kind;
  return internal_error(node.describe() + ": not a reduction");
}

Result<ReducePlan> plan_reduce(const Node& node, const Shape& in, std::vector<int64_t> axes, bool keepdims,
                               bool noop_with_empty_axes) {
  ReducePlan p;
  p.in = in;
  const int64_t rank = static_cast<int64_t>(in.size());
  p.reduced.assign(in.size(), axes.empty());
  if (axes.empty() && noop_with_empty_axes) {
    p.noop = true;
    p.reduced.assign(in.size(), false);
  }
  for (int64_t a : axes) {
    auto n = normalize_axis(a, rank);
    if (!n) return invalid_argument(node.describe() + ": " + n.status().message());
    p.reduced[static_cast<size_t>(*n)] = true;
  }
  for (size_t d = 0; d < in.size(); ++d) {
    if (!p.reduced[d])
      p.out.push_back(in[d]);
    else if (keepdims)
      p.out.push_back(1);
  }
  return p;
}

namespace {

// ReduceSum takes axes as an input from opset 13, the others from opset 18.
Result<std::vector<int64_t>> reduce_axes(InferContext& ctx) {
  const bool axes_input = ctx.node.op_type == "ReduceSum" ? ctx.opset >= 13 : ctx.opset >= 18;
  if (!axes_input) {
    if (ctx.node.inputs.size() > 1) return ctx.error("axes are an attribute before this opset, not an input");
    return ctx.node.attr_ints("axes", std::vector<int64_t>{});
  }
  if (ctx.node.has_attr("axes")) return ctx.error("axes are an input from this opset, not an attribute");
  if (ctx.input(1) == nullptr) return std::vector<int64_t>{};
  return ctx.const_ints(1);
}

}  // namespace

Status infer_reduce(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  if (x->dtype != DataType::kFloat32)
    return unsupported(ctx.node.describe() + ": supports float32 only, got " + dtype_name(x->dtype));
  QYOLO_ASSIGN_OR_RETURN(std::vector<int64_t> axes, reduce_axes(ctx));
  QYOLO_ASSIGN_OR_RETURN(int64_t keepdims, ctx.node.attr_int("keepdims", 1));
  QYOLO_ASSIGN_OR_RETURN(int64_t noop, ctx.node.attr_int("noop_with_empty_axes", 0));
  QYOLO_ASSIGN_OR_RETURN(ReducePlan p, plan_reduce(ctx.node, x->shape, axes, keepdims != 0, noop != 0));
  ctx.outputs[0].dtype = DataType::kFloat32;
  ctx.outputs[0].shape = p.out;
  return Status::ok();
}

}  // namespace qyolo
