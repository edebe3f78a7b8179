#include "ir/ops/split.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<SplitAttrs> SplitAttrs::parse(const Node& node, const Shape& x,
                                     const std::optional<std::vector<int64_t>>& split_input) {
  auto err = [&](const std::string& what) { return invalid_argument(node.describe() + ": " + what); };
  SplitAttrs a;
  QYOLO_ASSIGN_OR_RETURN(int64_t axis, node.attr_int("axis", 0));
  auto ax = normalize_axis(axis, static_cast<int64_t>(x.size()));
  if (!ax || x.empty())
    return err("axis " + std::to_string(axis) + " is out of range for input " + shape_str(x));
  a.axis = *ax;
  const int64_t dim = x[a.axis];
  const int64_t n = static_cast<int64_t>(node.outputs.size());
  if (split_input) {
    a.sizes = *split_input;
  } else if (node.has_attr("split")) {
    QYOLO_ASSIGN_OR_RETURN(a.sizes, node.attr_ints("split"));
  } else if (node.has_attr("num_outputs")) {
    QYOLO_ASSIGN_OR_RETURN(int64_t num, node.attr_int("num_outputs"));
    if (num != n)
      return err("num_outputs " + std::to_string(num) + " != number of outputs " + std::to_string(n));
    int64_t piece = (dim + n - 1) / n;
    for (int64_t i = 0; i < n; ++i) a.sizes.push_back(std::max<int64_t>(0, std::min(piece, dim - i * piece)));
  } else {
    if (dim % n != 0)
      return err("dim " + std::to_string(dim) + " of " + shape_str(x) + " cannot be split into " +
                 std::to_string(n) + " equal parts");
    a.sizes.assign(static_cast<size_t>(n), dim / n);
  }
  if (static_cast<int64_t>(a.sizes.size()) != n)
    return err("split has " + std::to_string(a.sizes.size()) + " sizes for " + std::to_string(n) +
               " outputs");
  int64_t total = 0;
  for (int64_t s : a.sizes) {
    if (s < 0) return err("split sizes must be non-negative");
    if (__builtin_add_overflow(total, s, &total))
      return err("split sizes " + shape_str(a.sizes) + " overflow int64");
  }
  if (total != dim)
    return err("split sizes sum to " + std::to_string(total) + ", the split dim of " + shape_str(x) + " is " +
               std::to_string(dim));
  return a;
}

Status infer_split(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  std::optional<std::vector<int64_t>> split_input;
  if (ctx.input(1) != nullptr && ctx.opset < 13)
    return ctx.error("the split input requires opset 13 (opset " + std::to_string(ctx.opset) +
                     " uses the 'split' attribute)");
  if (ctx.node.has_attr("split") && ctx.opset >= 13)
    return ctx.error("the 'split' attribute was removed in opset 13 (use the 2nd input)");
  if (ctx.input(1) != nullptr) {
    QYOLO_ASSIGN_OR_RETURN(auto v, ctx.const_ints(1));
    split_input = std::move(v);
  }
  QYOLO_ASSIGN_OR_RETURN(SplitAttrs a, SplitAttrs::parse(ctx.node, x->shape, split_input));
  for (size_t i = 0; i < ctx.outputs.size(); ++i) {
    ctx.outputs[i].dtype = x->dtype;
    ctx.outputs[i].shape = x->shape;
    ctx.outputs[i].shape[a.axis] = a.sizes[i];
  }
  return Status::ok();
}

}  // namespace qyolo
