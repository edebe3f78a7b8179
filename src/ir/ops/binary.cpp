#include "ir/ops/binary.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<BinaryAttrs> BinaryAttrs::parse(const Node& node, int64_t opset) {
  static const std::pair<const char*, BinaryOp> kOps[] = {
      {"Add", BinaryOp::kAdd},   {"Sub", BinaryOp::kSub},         {"Mul", BinaryOp::kMul},
      {"Div", BinaryOp::kDiv},   {"Pow", BinaryOp::kPow},         {"Equal", BinaryOp::kEqual},
      {"Less", BinaryOp::kLess}, {"Greater", BinaryOp::kGreater}, {"And", BinaryOp::kAnd},
      {"Or", BinaryOp::kOr},     {"Max", BinaryOp::kMax},         {"Min", BinaryOp::kMin},
  };
  BinaryAttrs a;
  bool found = false;
  for (const auto& [name, op] : kOps)
    if (node.op_type == name) {
      a.op = op;
      found = true;
    }
  if (!found) return internal_error(node.describe() + ": not a binary elementwise op");
  // Opset < 7 had explicit broadcasting: broadcast=1 with an optional axis. Without `axis` it is a
  // suffix match, which numpy broadcasting reproduces; an explicit axis is not supported.
  if (node.has_attr("axis"))
    return unsupported(node.describe() + ": legacy (opset " + std::to_string(opset) +
                       ") broadcasting with an 'axis' attribute is not supported");
  return a;
}

Result<Shape> broadcast_all(const std::vector<Shape>& shapes) {
  if (shapes.empty()) return Shape{};
  Shape out = shapes[0];
  for (size_t i = 1; i < shapes.size(); ++i) {
    QYOLO_ASSIGN_OR_RETURN(out, broadcast_shapes(out, shapes[i]));
  }
  return out;
}

BroadcastPlan make_broadcast_plan(const Shape& out, const std::vector<Shape>& inputs) {
  const size_t rank = out.size();
  const size_t n = inputs.size();
  BroadcastPlan p;
  p.numel = shape_numel(out);
  // Per kept output dim: its size and, per input, whether the input is broadcast along it.
  std::vector<int64_t> sizes;
  std::vector<std::vector<bool>> bcast(n);
  for (size_t d = 0; d < rank; ++d) {
    if (out[d] == 1) continue;
    std::vector<bool> b(n);
    for (size_t k = 0; k < n; ++k) {
      const Shape& s = inputs[k];
      size_t off = rank - s.size();
      int64_t dim = d < off ? 1 : s[d - off];
      b[k] = dim == 1;
    }
    bool merge = !sizes.empty();
    for (size_t k = 0; merge && k < n; ++k) merge = bcast[k].back() == b[k];
    if (merge) {
      sizes.back() *= out[d];
    } else {
      sizes.push_back(out[d]);
      for (size_t k = 0; k < n; ++k) bcast[k].push_back(b[k]);
    }
  }
  if (sizes.empty()) {
    sizes.push_back(rank == 0 ? 1 : shape_numel(out));  // all-ones (or a zero-size dim handled below)
    for (size_t k = 0; k < n; ++k) bcast[k].push_back(true);
  }
  p.dims = sizes;
  p.strides.assign(n, std::vector<int64_t>(sizes.size(), 0));
  for (size_t k = 0; k < n; ++k) {
    int64_t stride = 1;
    for (size_t d = sizes.size(); d-- > 0;) {
      if (bcast[k][d]) continue;
      p.strides[k][d] = stride;
      stride *= sizes[d];
    }
  }
  return p;
}

Status infer_binary(InferContext& ctx) {
  QYOLO_ASSIGN_OR_RETURN(BinaryAttrs a, BinaryAttrs::parse(ctx.node, ctx.opset));
  std::vector<Shape> shapes;
  for (size_t i = 0; i < ctx.node.inputs.size(); ++i) {
    if (ctx.input(i) == nullptr) return ctx.error("input " + std::to_string(i) + " is required");
    shapes.push_back(ctx.input(i)->shape);
  }
  auto out = broadcast_all(shapes);
  if (!out) return ctx.error(out.status().message());

  const DataType t0 = ctx.input(0)->dtype;
  if (a.op != BinaryOp::kPow) {
    for (size_t i = 1; i < shapes.size(); ++i)
      if (ctx.input(i)->dtype != t0)
        return ctx.error(std::string("inputs have different element types (") + dtype_name(t0) + " and " +
                         dtype_name(ctx.input(i)->dtype) + ")");
  }
  switch (a.op) {
    case BinaryOp::kAnd:
    case BinaryOp::kOr:
      if (t0 != DataType::kBool) return ctx.error(std::string("needs bool inputs, got ") + dtype_name(t0));
      break;
    case BinaryOp::kEqual:
      break;
    case BinaryOp::kPow:
      if (t0 == DataType::kBool || ctx.input(1)->dtype == DataType::kBool)
        return ctx.error("bool inputs are not supported");
      break;
    default:
      if (t0 == DataType::kBool) return ctx.error("bool inputs are not supported");
      break;
  }
  ctx.outputs[0].dtype = a.bool_output() ? DataType::kBool : t0;
  ctx.outputs[0].shape = std::move(out).value();
  return Status::ok();
}

}  // namespace qyolo
