#include "ir/op_registry.h"

#include <array>

namespace qyolo {

namespace {
constexpr OpDef kOps[] = {
#define QYOLO_OP(name, stem, min_in, max_in, min_out, max_out) \
  {#name, #stem, min_in, max_in, min_out, max_out, &infer_##stem},
#include "ir/ops.def"
#undef QYOLO_OP
};
}  // namespace

const OpDef* find_op(std::string_view op_type) {
  for (const auto& op : kOps)
    if (op.op_type == op_type) return &op;
  return nullptr;
}

std::span<const OpDef> all_ops() { return kOps; }

Result<std::vector<int64_t>> InferContext::const_ints(size_t i) const {
  const ValueDesc* d = input(i);
  if (d == nullptr) return error("input " + std::to_string(i) + " is required");
  if (!d->value) {
    return unsupported(node.describe() + ": input " + std::to_string(i) + " ('" + node.inputs[i] +
                       "') must be a constant or computable from input shapes (data-dependent shapes are "
                       "not supported)");
  }
  return d->value->to_int64_vector();
}

Status infer_node(InferContext& ctx) {
  const OpDef* def = find_op(ctx.node.op_type);
  if (def == nullptr) return unsupported(ctx.node.describe() + ": operator '" + ctx.node.op_type + "' is not supported");
  int n_in = static_cast<int>(ctx.node.inputs.size());
  int n_out = static_cast<int>(ctx.node.outputs.size());
  if (n_in < def->min_inputs || n_in > def->max_inputs)
    return ctx.error("has " + std::to_string(n_in) + " inputs, expected " + std::to_string(def->min_inputs) + ".." +
                     std::to_string(def->max_inputs));
  if (n_out < def->min_outputs || n_out > def->max_outputs)
    return ctx.error("has " + std::to_string(n_out) + " outputs, expected " + std::to_string(def->min_outputs) +
                     ".." + std::to_string(def->max_outputs));
  // An empty name marks an omitted optional input; the first min_inputs are not optional, and
  // the ops' infer functions rely on them being present.
  for (int i = 0; i < def->min_inputs; ++i)
    if (ctx.input(static_cast<size_t>(i)) == nullptr)
      return ctx.error("input " + std::to_string(i) + " is required but its name is empty");
  ctx.outputs.assign(ctx.node.outputs.size(), ValueDesc{});
  return def->infer(ctx);
}

Result<Shape> broadcast_shapes(const Shape& a, const Shape& b) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      return invalid_argument("shapes " + shape_str(a) + " and " + shape_str(b) + " cannot be broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Result<int64_t> normalize_axis(int64_t axis, int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)  // a rank-0 tensor has no axis: callers index dims with the result
    return invalid_argument("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return a;
}

AxisSplit split_at_axis(const Shape& shape, int64_t axis) {
  AxisSplit s;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d < axis)
      s.outer *= shape[static_cast<size_t>(d)];
    else if (d > axis)
      s.inner *= shape[static_cast<size_t>(d)];
    else
      s.n = shape[static_cast<size_t>(d)];
  }
  return s;
}

}  // namespace qyolo
