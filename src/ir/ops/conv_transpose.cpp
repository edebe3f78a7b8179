#include "ir/ops/conv_transpose.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<ConvTransposePlan> plan_conv_transpose(const Node& node, const Shape& x, const Shape& w) {
  auto bad = [&](const std::string& what) { return invalid_argument(node.describe() + ": " + what); };
  if (x.size() < 3 || w.size() != x.size())
    return bad("input " + shape_str(x) + " and weight " + shape_str(w) + " must be N-D of equal rank >= 3");
  const size_t sp = x.size() - 2;
  ConvTransposePlan p;
  QYOLO_ASSIGN_OR_RETURN(p.group, node.attr_int("group", 1));
  if (p.group <= 0 || x[1] % p.group != 0 || w[0] != x[1])
    return bad("weight " + shape_str(w) + " does not match " + std::to_string(x[1]) + " input channels in " +
               std::to_string(p.group) + " groups");
  std::vector<int64_t> wk(w.begin() + 2, w.end());
  QYOLO_ASSIGN_OR_RETURN(p.kernel, node.attr_ints("kernel_shape", wk));
  QYOLO_ASSIGN_OR_RETURN(p.strides, node.attr_ints("strides", std::vector<int64_t>(sp, 1)));
  QYOLO_ASSIGN_OR_RETURN(p.dilations, node.attr_ints("dilations", std::vector<int64_t>(sp, 1)));
  QYOLO_ASSIGN_OR_RETURN(auto out_pad, node.attr_ints("output_padding", std::vector<int64_t>(sp, 0)));
  QYOLO_ASSIGN_OR_RETURN(auto pads, node.attr_ints("pads", std::vector<int64_t>(2 * sp, 0)));
  QYOLO_ASSIGN_OR_RETURN(auto out_shape, node.attr_ints("output_shape", std::vector<int64_t>{}));
  QYOLO_ASSIGN_OR_RETURN(std::string auto_pad, node.attr_string("auto_pad", "NOTSET"));
  if (p.kernel != wk) return bad("kernel_shape differs from the weight's " + shape_str(w));
  if (p.strides.size() != sp || p.dilations.size() != sp || out_pad.size() != sp || pads.size() != 2 * sp)
    return bad("strides/dilations/output_padding/pads do not match " + std::to_string(sp) + " spatial dims");
  if (out_shape.size() == sp + 2) out_shape.erase(out_shape.begin(), out_shape.begin() + 2);
  if (!out_shape.empty() && out_shape.size() != sp) return bad("output_shape has the wrong length");
  const bool same = auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
  if (auto_pad == "VALID") pads.assign(2 * sp, 0);
  p.out = {x[0], w[1] * p.group};
  p.pad_begin.resize(sp);
  for (size_t i = 0; i < sp; ++i) {
    const int64_t full = p.strides[i] * (x[i + 2] - 1) + out_pad[i] + (p.kernel[i] - 1) * p.dilations[i] + 1;
    int64_t target = -1;
    if (!out_shape.empty())
      target = out_shape[i];
    else if (same)
      target = x[i + 2] * p.strides[i];
    if (target >= 0) {
      // total may be negative (an output_shape larger than the full result); halves round down, as
      // the ONNX reference computes them (Python //).
      const int64_t total = full - target;
      const int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
      p.pad_begin[i] = auto_pad == "SAME_UPPER" ? half : total - half;
      p.out.push_back(target);
    } else {
      p.pad_begin[i] = pads[i];
      p.out.push_back(full - pads[i] - pads[i + sp]);
    }
    if (p.out.back() <= 0)
      return bad("output dim " + std::to_string(i) + " would be " + std::to_string(p.out.back()));
  }
  return p;
}

Status infer_conv_transpose(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  const ValueDesc* w = ctx.input(1);
  const ValueDesc* b = ctx.input(2);
  for (const ValueDesc* v : {x, w, b})
    if (v && v->dtype != DataType::kFloat32)
      return unsupported(ctx.node.describe() + ": supports float32 only, got " + dtype_name(v->dtype));
  QYOLO_ASSIGN_OR_RETURN(ConvTransposePlan p, plan_conv_transpose(ctx.node, x->shape, w->shape));
  if (b && shape_numel(b->shape) != p.out[1])
    return ctx.error("bias " + shape_str(b->shape) + " does not match " + std::to_string(p.out[1]) +
                     " output channels");
  ctx.outputs[0] = ValueDesc{DataType::kFloat32, p.out, std::nullopt};
  return Status::ok();
}

}  // namespace qyolo
