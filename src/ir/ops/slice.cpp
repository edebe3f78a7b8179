#include "ir/ops/slice.h"

#include <algorithm>

#include "ir/op_registry.h"

namespace qyolo {

Result<SliceAttrs> SliceAttrs::parse(const Node& node, const Shape& x,
                                     const std::optional<std::vector<int64_t>>& starts_in,
                                     const std::optional<std::vector<int64_t>>& ends_in,
                                     const std::optional<std::vector<int64_t>>& axes_in,
                                     const std::optional<std::vector<int64_t>>& steps_in) {
  auto err = [&](const std::string& what) { return invalid_argument(node.describe() + ": " + what); };
  const int64_t rank = static_cast<int64_t>(x.size());
  std::vector<int64_t> starts, ends, axes, steps;
  if (node.inputs.size() == 1) {
    QYOLO_ASSIGN_OR_RETURN(starts, node.attr_ints("starts"));
    QYOLO_ASSIGN_OR_RETURN(ends, node.attr_ints("ends"));
    std::vector<int64_t> all(starts.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    QYOLO_ASSIGN_OR_RETURN(axes, node.attr_ints("axes", all));
    steps.assign(starts.size(), 1);
  } else {
    if (!starts_in || !ends_in) return err("inputs starts and ends are required");
    starts = *starts_in;
    ends = *ends_in;
    if (axes_in) {
      axes = *axes_in;
    } else {
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    }
    steps = steps_in ? *steps_in : std::vector<int64_t>(starts.size(), 1);
  }
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    return err("starts, ends, axes and steps must have the same length (" + std::to_string(starts.size()) +
               ", " + std::to_string(ends.size()) + ", " + std::to_string(axes.size()) + ", " +
               std::to_string(steps.size()) + ")");
  SliceAttrs a;
  a.start.assign(static_cast<size_t>(rank), 0);
  a.step.assign(static_cast<size_t>(rank), 1);
  a.out_shape = x;
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (size_t i = 0; i < starts.size(); ++i) {
    auto ax = normalize_axis(axes[i], rank);
    if (!ax) return err("axis " + std::to_string(axes[i]) + " is out of range for input " + shape_str(x));
    const size_t d = static_cast<size_t>(*ax);
    if (seen[d]) return err("axis " + std::to_string(axes[i]) + " is repeated");
    seen[d] = true;
    const int64_t dim = x[d], step = steps[i];
    if (step == 0) return err("steps must be non-zero");
    int64_t s = starts[i], e = ends[i];
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (step > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
    }
    // e - s is within [-1, dim]; a step beyond +-2^40 (any dim is < 2^34) takes one element at
    // most, so clamping it keeps the count exact without overflowing on INT64_MIN/INT64_MAX.
    const int64_t st = std::clamp<int64_t>(step, -(int64_t{1} << 40), int64_t{1} << 40);
    int64_t n = st > 0 ? (e - s + st - 1) / st : (s - e + (-st) - 1) / (-st);
    a.out_shape[d] = std::max<int64_t>(0, n);
    a.start[d] = s;
    a.step[d] = st;
  }
  return a;
}

Status infer_slice(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  std::optional<std::vector<int64_t>> in[4];
  if (ctx.opset >= 10) {
    if (ctx.inputs.size() < 3)
      return ctx.error("Slice in opset " + std::to_string(ctx.opset) + " needs the starts and ends inputs");
    for (size_t i = 1; i <= 4; ++i) {
      if (ctx.input(i) == nullptr) continue;
      QYOLO_ASSIGN_OR_RETURN(auto v, ctx.const_ints(i));
      in[i - 1] = std::move(v);
    }
  } else if (ctx.inputs.size() > 1) {
    return ctx.error("opset " + std::to_string(ctx.opset) +
                     " Slice takes one input (starts/ends are attributes)");
  }
  QYOLO_ASSIGN_OR_RETURN(SliceAttrs a, SliceAttrs::parse(ctx.node, x->shape, in[0], in[1], in[2], in[3]));
  ctx.outputs[0].dtype = x->dtype;
  ctx.outputs[0].shape = a.out_shape;
  return Status::ok();
}

}  // namespace qyolo
