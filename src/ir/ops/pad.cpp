#include "ir/ops/pad.h"

namespace qyolo {

Result<PadPlan> plan_pad(const Node& node, const Shape& in, const std::vector<int64_t>& pads,
                         std::vector<int64_t> axes) {
  PadPlan p;
  QYOLO_ASSIGN_OR_RETURN(std::string mode, node.attr_string("mode", "constant"));
  if (mode == "constant")
    p.mode = PadMode::kConstant;
  else if (mode == "reflect")
    p.mode = PadMode::kReflect;
  else if (mode == "edge")
    p.mode = PadMode::kEdge;
  else if (mode == "wrap")
    p.mode = PadMode::kWrap;
  else
    return invalid_argument(node.describe() + ": unknown mode '" + mode + "'");
  const int64_t rank = static_cast<int64_t>(in.size());
  if (axes.empty())
    for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
  if (pads.size() != 2 * axes.size())
    return invalid_argument(node.describe() + ": pads has " + std::to_string(pads.size()) +
                            " values, expected " + std::to_string(2 * axes.size()));
  p.begin.assign(in.size(), 0);
  p.end.assign(in.size(), 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    auto a = normalize_axis(axes[i], rank);
    if (!a) return invalid_argument(node.describe() + ": " + a.status().message());
    p.begin[static_cast<size_t>(*a)] = pads[i];
    p.end[static_cast<size_t>(*a)] = pads[i + axes.size()];
  }
  for (size_t d = 0; d < in.size(); ++d) {
    const int64_t o = in[d] + p.begin[d] + p.end[d];
    if (o <= 0)
      return invalid_argument(node.describe() + ": pads crop dim " + std::to_string(d) + " of " +
                              shape_str(in) + " to " + std::to_string(o));
    const bool pads_dim = p.begin[d] > 0 || p.end[d] > 0;
    if (p.mode != PadMode::kConstant && pads_dim && in[d] == 0)
      return invalid_argument(node.describe() + ": cannot " + mode + "-pad an empty dim");
    if (p.mode == PadMode::kReflect && pads_dim && (p.begin[d] >= in[d] || p.end[d] >= in[d]))
      return unsupported(node.describe() + ": reflect pads of " +
                         std::to_string(std::max(p.begin[d], p.end[d])) + " need a dim larger than " +
                         std::to_string(in[d]));
    p.out.push_back(o);
  }
  return p;
}

Status infer_pad(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  std::vector<int64_t> pads, axes;
  if (ctx.opset < 11) {
    QYOLO_ASSIGN_OR_RETURN(pads, ctx.node.attr_ints("pads"));
  } else {
    QYOLO_ASSIGN_OR_RETURN(pads, ctx.const_ints(1));
    if (const ValueDesc* v = ctx.input(2); v && v->dtype != x->dtype)
      return ctx.error(std::string("constant_value is ") + dtype_name(v->dtype) + ", data is " +
                       dtype_name(x->dtype));
    if (ctx.input(3)) {
      QYOLO_ASSIGN_OR_RETURN(axes, ctx.const_ints(3));
    }
  }
  QYOLO_ASSIGN_OR_RETURN(PadPlan p, plan_pad(ctx.node, x->shape, pads, axes));
  ctx.outputs[0] = ValueDesc{x->dtype, p.out, std::nullopt};
  return Status::ok();
}

}  // namespace qyolo
