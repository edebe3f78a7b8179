#include "ir/ops/quantize_linear.h"

#include "ir/ops/cast.h"

namespace qyolo {

Result<QLinearAttrs> QLinearAttrs::parse(const Node& node, int64_t opset) {
  QLinearAttrs a;
  // 'axis' is opset 13+, but ONNX Runtime's quantiser writes it into opset-12 models too (per-channel
  // weights); accept it at any opset, as ONNX Runtime does.
  (void)opset;
  QYOLO_ASSIGN_OR_RETURN(a.axis, node.attr_int("axis", 1));
  QYOLO_ASSIGN_OR_RETURN(int64_t block, node.attr_int("block_size", 0));
  if (block != 0)
    return unsupported(node.describe() + ": blocked quantization (block_size) is not supported");
  if (node.has_attr("output_dtype")) {
    QYOLO_ASSIGN_OR_RETURN(int64_t t, node.attr_int("output_dtype"));
    if (t != 0) {
      auto dt = dtype_from_onnx_enum(t);
      if (!dt) return unsupported(node.describe() + ": output_dtype: " + dt.status().message());
      a.output_dtype = *dt;
    }
  }
  return a;
}

QLinearLayout qlinear_layout(const Shape& x, const Shape& scale, int64_t axis) {
  QLinearLayout l;
  if (shape_numel(scale) == 1 && scale.size() <= 1) {
    l.inner = shape_numel(x);
    return l;
  }
  const int64_t rank = static_cast<int64_t>(x.size());
  if (axis < 0) axis += rank;
  l.per_axis = true;
  for (int64_t i = 0; i < rank; ++i) {
    int64_t d = x[static_cast<size_t>(i)];
    if (i < axis)
      l.outer *= d;
    else if (i == axis)
      l.channels = d;
    else
      l.inner *= d;
  }
  return l;
}

Result<QLinearLayout> qlinear_layout(const InferContext& ctx, const QLinearAttrs& a) {
  const ValueDesc* x = ctx.input(0);
  const ValueDesc* scale = ctx.input(1);
  const ValueDesc* zp = ctx.input(2);
  if (x == nullptr || scale == nullptr) return ctx.error("x and scale are required");
  if (scale->dtype != DataType::kFloat32 && scale->dtype != DataType::kFloat16)
    return ctx.error(std::string("scale must be float, got ") + dtype_name(scale->dtype));
  // A one-element zero point with a one-element scale is per tensor whatever its rank ([1] vs scalar,
  // as ONNX Runtime accepts and test_matmulinteger writes).
  const bool one_each = zp != nullptr && shape_numel(zp->shape) == 1 && shape_numel(scale->shape) == 1;
  if (zp != nullptr && zp->shape != scale->shape && !one_each)
    return ctx.error("zero point shape " + shape_str(zp->shape) + " differs from scale shape " +
                     shape_str(scale->shape));
  const int64_t rank = static_cast<int64_t>(x->shape.size());
  const bool per_tensor = shape_numel(scale->shape) == 1 && scale->shape.size() <= 1;
  if (!per_tensor) {
    // Per-axis is opset 13+ in the spec; accepted earlier too (ONNX Runtime's quantiser emits it).
    if (scale->shape.size() != 1)
      return ctx.error("scale must be a scalar or 1-D, got " + shape_str(scale->shape));
    auto axis = normalize_axis(a.axis, rank);
    if (!axis) return ctx.error(axis.status().message());
    if (x->shape[static_cast<size_t>(*axis)] != scale->shape[0])
      return ctx.error("scale has " + std::to_string(scale->shape[0]) + " elements, axis " +
                       std::to_string(*axis) + " of x " + shape_str(x->shape) + " has " +
                       std::to_string(x->shape[static_cast<size_t>(*axis)]));
  }
  return qlinear_layout(x->shape, scale->shape, a.axis);
}

Status infer_quantize_linear(InferContext& ctx) {
  QYOLO_ASSIGN_OR_RETURN(QLinearAttrs a, QLinearAttrs::parse(ctx.node, ctx.opset));
  QYOLO_RETURN_IF_ERROR(qlinear_layout(ctx, a).status());
  const ValueDesc* x = ctx.input(0);
  const ValueDesc* zp = ctx.input(2);
  if (x->dtype != DataType::kFloat32 && x->dtype != DataType::kFloat16 && x->dtype != DataType::kInt32)
    return ctx.error(std::string("x must be float32, float16 or int32, got ") + dtype_name(x->dtype));
  DataType out = zp ? zp->dtype : a.output_dtype.value_or(DataType::kUInt8);
  if (zp && a.output_dtype && *a.output_dtype != zp->dtype)
    return ctx.error("output_dtype differs from the zero point's type");
  if (out != DataType::kInt8 && out != DataType::kUInt8)
    return ctx.error(std::string("only int8/uint8 quantization is supported, got ") + dtype_name(out));
  ctx.outputs[0].dtype = out;
  ctx.outputs[0].shape = x->shape;
  return Status::ok();
}

}  // namespace qyolo
