#include "ir/ops/unary.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<UnaryAttrs> UnaryAttrs::parse(const Node& node, int64_t opset) {
  static const std::pair<const char*, UnaryOp> kOps[] = {
      {"Sigmoid", UnaryOp::kSigmoid},
      {"Relu", UnaryOp::kRelu},
      {"LeakyRelu", UnaryOp::kLeakyRelu},
      {"HardSigmoid", UnaryOp::kHardSigmoid},
      {"HardSwish", UnaryOp::kHardSwish},
      {"Tanh", UnaryOp::kTanh},
      {"Exp", UnaryOp::kExp},
      {"Log", UnaryOp::kLog},
      {"Sqrt", UnaryOp::kSqrt},
      {"Neg", UnaryOp::kNeg},
      {"Abs", UnaryOp::kAbs},
      {"Softplus", UnaryOp::kSoftplus},
      {"Elu", UnaryOp::kElu},
      {"Not", UnaryOp::kNot},
  };
  UnaryAttrs a;
  bool found = false;
  for (const auto& [name, op] : kOps)
    if (node.op_type == name) {
      a.op = op;
      found = true;
    }
  if (!found) return internal_error(node.describe() + ": not a unary elementwise op");
  switch (a.op) {
    case UnaryOp::kLeakyRelu: {
      QYOLO_ASSIGN_OR_RETURN(a.alpha, node.attr_float("alpha", 0.01f));
      break;
    }
    case UnaryOp::kHardSigmoid: {
      QYOLO_ASSIGN_OR_RETURN(a.alpha, node.attr_float("alpha", 0.2f));
      QYOLO_ASSIGN_OR_RETURN(a.beta, node.attr_float("beta", 0.5f));
      break;
    }
    case UnaryOp::kHardSwish:
      a.alpha = 1.f / 6.f;
      a.beta = 0.5f;
      break;
    case UnaryOp::kElu: {
      QYOLO_ASSIGN_OR_RETURN(a.alpha, node.attr_float("alpha", 1.0f));
      break;
    }
    default:
      break;
  }
  return a;
}

Status infer_unary(InferContext& ctx) {
  QYOLO_ASSIGN_OR_RETURN(UnaryAttrs a, UnaryAttrs::parse(ctx.node, ctx.opset));
  const ValueDesc* x = ctx.input(0);
  if (x == nullptr) return ctx.error("input 0 is required");
  const DataType t = x->dtype;
  const bool is_float = t == DataType::kFloat32 || t == DataType::kFloat16;
  const bool is_signed_int = t == DataType::kInt8 || t == DataType::kInt32 || t == DataType::kInt64;
  bool ok;
  switch (a.op) {
    case UnaryOp::kNot:
      ok = t == DataType::kBool;
      break;
    case UnaryOp::kRelu:
    case UnaryOp::kNeg:
      ok = is_float || is_signed_int;
      break;
    case UnaryOp::kAbs:
      ok = is_float || is_signed_int || t == DataType::kUInt8;
      break;
    default:
      ok = is_float;
      break;
  }
  if (!ok) return ctx.error(std::string("element type ") + dtype_name(t) + " is not supported");
  ctx.outputs[0].dtype = t;
  ctx.outputs[0].shape = x->shape;
  return Status::ok();
}

}  // namespace qyolo
