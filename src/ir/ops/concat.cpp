#include "ir/ops/concat.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<ConcatAttrs> ConcatAttrs::parse(const Node& node, const std::vector<Shape>& inputs) {
  auto err = [&](const std::string& what) { return invalid_argument(node.describe() + ": " + what); };
  if (inputs.empty()) return err("needs at least one input");
  ConcatAttrs a;
  QYOLO_ASSIGN_OR_RETURN(int64_t axis, node.attr_int("axis"));
  const int64_t rank = static_cast<int64_t>(inputs[0].size());
  if (rank == 0) return err("inputs must have rank >= 1");
  auto ax = normalize_axis(axis, rank);
  if (!ax) return ax.status().with_context(node.describe());
  a.axis = *ax;
  a.out_shape = inputs[0];
  a.out_shape[a.axis] = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Shape& s = inputs[i];
    if (static_cast<int64_t>(s.size()) != rank)
      return err("input " + std::to_string(i) + " has shape " + shape_str(s) +
                 ", rank differs from input 0 " + shape_str(inputs[0]));
    for (int64_t d = 0; d < rank; ++d)
      if (d != a.axis && s[d] != inputs[0][d])
        return err("input " + std::to_string(i) + " has shape " + shape_str(s) +
                   ", incompatible with input 0 " + shape_str(inputs[0]) + " for axis " +
                   std::to_string(a.axis));
    a.out_shape[a.axis] += s[a.axis];
  }
  return a;
}

Status infer_concat(InferContext& ctx) {
  std::vector<Shape> shapes;
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    const ValueDesc* d = ctx.input(i);
    if (d == nullptr) return ctx.error("input " + std::to_string(i) + " is missing");
    if (d->dtype != ctx.input(0)->dtype)
      return ctx.error("input " + std::to_string(i) + " is " + dtype_name(d->dtype) + ", input 0 is " +
                       dtype_name(ctx.input(0)->dtype));
    shapes.push_back(d->shape);
  }
  QYOLO_ASSIGN_OR_RETURN(ConcatAttrs a, ConcatAttrs::parse(ctx.node, shapes));
  ctx.outputs[0].dtype = ctx.input(0)->dtype;
  ctx.outputs[0].shape = a.out_shape;
  return Status::ok();
}

}  // namespace qyolo
