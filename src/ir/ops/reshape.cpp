#include "ir/ops/reshape.h"

#include <algorithm>

#include "ir/op_registry.h"
#include "ir/shape_arith.h"

namespace qyolo {

Result<ReshapeAttrs> ReshapeAttrs::parse(const Node& node, int64_t opset) {
  ReshapeAttrs a;
  const std::string& op = node.op_type;
  if (op == "Reshape") {
    QYOLO_ASSIGN_OR_RETURN(a.allowzero, node.attr_int("allowzero", 0));
    if (opset < 5) {
      QYOLO_ASSIGN_OR_RETURN(a.shape, node.attr_ints("shape"));
    } else {
      a.shape_from_input = true;
      if (!node.has_input(1)) return invalid_argument(node.describe() + ": the shape input is required");
    }
  } else if (op == "Flatten") {
    QYOLO_ASSIGN_OR_RETURN(a.axis, node.attr_int("axis", 1));
  } else if (op == "Squeeze" || op == "Unsqueeze") {
    if (opset >= 13) {
      if (node.has_attr("axes"))
        return invalid_argument(node.describe() + ": from opset 13 axes are an input, not an attribute");
      a.axes_from_input = node.has_input(1);
      if (op == "Unsqueeze" && !a.axes_from_input)
        return invalid_argument(node.describe() + ": the axes input is required");
    } else {
      if (node.inputs.size() > 1)
        return invalid_argument(node.describe() + ": before opset 13 axes are an attribute, not an input");
      if (node.has_attr("axes")) {
        QYOLO_ASSIGN_OR_RETURN(a.axes, node.attr_ints("axes"));
      } else if (op == "Unsqueeze") {
        return invalid_argument(node.describe() + ": required attribute 'axes' is missing");
      }
    }
  } else if (op != "Identity") {
    return internal_error(node.describe() + ": not a reshape-family op");
  }
  return a;
}

namespace {

Result<Shape> reshape_shape(InferContext& ctx, const ReshapeAttrs& a, const Shape& in) {
  std::vector<int64_t> spec;
  if (a.shape_from_input) {
    QYOLO_ASSIGN_OR_RETURN(spec, ctx.const_ints(1));
    if (ctx.input(1)->shape.size() != 1) return ctx.error("the shape input must be 1-D");
  } else {
    spec = *a.shape;
  }
  Shape out(spec.size());
  int64_t infer_at = -1;
  int64_t known = 1;
  ShapeArith m;
  bool has_zero = false;
  for (size_t i = 0; i < spec.size(); ++i) {
    int64_t d = spec[i];
    if (d == -1) {
      if (infer_at >= 0) return ctx.error("shape " + shape_str(spec) + " has more than one -1");
      infer_at = static_cast<int64_t>(i);
      continue;
    }
    if (d < -1) return ctx.error("shape has an invalid dimension " + std::to_string(d));
    if (d == 0) {
      has_zero = true;
      if (!a.allowzero) {
        if (i >= in.size())
          return ctx.error("shape " + shape_str(spec) + " copies dim " + std::to_string(i) +
                           " (0) of input " + shape_str(in) + ", which has no such dim");
        d = in[i];
      }
    }
    out[i] = d;
    known = m.mul(known, d);
  }
  if (!m.ok()) return m.status(ctx.node.describe() + ": shape " + shape_str(spec));
  if (a.allowzero && has_zero && infer_at >= 0)
    return ctx.error("with allowzero=1 the shape cannot hold both 0 and -1");
  QYOLO_ASSIGN_OR_RETURN(const int64_t numel, checked_numel(in, ctx.node.describe() + ": input"));
  if (infer_at >= 0) {
    if (known == 0 || numel % known != 0)
      return ctx.error("cannot reshape " + shape_str(in) + " to " + shape_str(spec));
    out[static_cast<size_t>(infer_at)] = numel / known;
  } else if (known != numel) {
    return ctx.error("cannot reshape " + shape_str(in) + " (" + std::to_string(numel) + " elements) to " +
                     shape_str(out));
  }
  return out;
}

Result<std::vector<int64_t>> axes_of(InferContext& ctx, const ReshapeAttrs& a, int64_t rank) {
  std::vector<int64_t> axes;
  if (a.axes_from_input) {
    QYOLO_ASSIGN_OR_RETURN(axes, ctx.const_ints(1));
  } else {
    axes = *a.axes;
  }
  for (auto& ax : axes) {
    auto n = normalize_axis(ax, rank);
    if (!n) return ctx.error(n.status().message());
    ax = *n;
  }
  std::vector<int64_t> sorted = axes;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    return ctx.error("axes repeat an axis");
  return sorted;
}

}  // namespace

Status infer_reshape(InferContext& ctx) {
  QYOLO_ASSIGN_OR_RETURN(ReshapeAttrs a, ReshapeAttrs::parse(ctx.node, ctx.opset));
  const ValueDesc* x = ctx.input(0);
  if (x == nullptr) return ctx.error("input 0 is required");
  const Shape& in = x->shape;
  const int64_t rank = static_cast<int64_t>(in.size());
  const std::string& op = ctx.node.op_type;
  Shape out;
  if (op == "Reshape") {
    QYOLO_ASSIGN_OR_RETURN(out, reshape_shape(ctx, a, in));
  } else if (op == "Flatten") {
    int64_t axis = a.axis < 0 ? a.axis + rank : a.axis;
    if (axis < 0 || axis > rank)
      return ctx.error("axis " + std::to_string(a.axis) + " is out of range for rank " +
                       std::to_string(rank));
    ShapeArith m;  // a zero-size dim elsewhere can hide an overflowing partial product
    int64_t outer = 1;
    for (int64_t i = 0; i < axis; ++i) outer = m.mul(outer, in[static_cast<size_t>(i)]);
    int64_t inner = 1;
    for (int64_t i = axis; i < rank; ++i) inner = m.mul(inner, in[static_cast<size_t>(i)]);
    if (!m.ok()) return m.status(ctx.node.describe() + ": flattening " + shape_str(in));
    out = {outer, inner};
  } else if (op == "Squeeze") {
    if (a.axes_from_input || a.axes) {
      QYOLO_ASSIGN_OR_RETURN(auto axes, axes_of(ctx, a, rank));
      for (int64_t i = 0; i < rank; ++i) {
        bool squeezed = std::binary_search(axes.begin(), axes.end(), i);
        if (squeezed && in[static_cast<size_t>(i)] != 1)
          return ctx.error("cannot squeeze axis " + std::to_string(i) + " of size " +
                           std::to_string(in[static_cast<size_t>(i)]) + " (input " + shape_str(in) + ")");
        if (!squeezed) out.push_back(in[static_cast<size_t>(i)]);
      }
    } else {
      for (int64_t d : in)
        if (d != 1) out.push_back(d);
    }
  } else if (op == "Unsqueeze") {
    std::vector<int64_t> raw = a.axes_from_input ? std::vector<int64_t>{} : *a.axes;
    if (a.axes_from_input) {
      QYOLO_ASSIGN_OR_RETURN(raw, ctx.const_ints(1));
    }
    const int64_t out_rank = rank + static_cast<int64_t>(raw.size());
    ReshapeAttrs b;
    b.axes = raw;
    QYOLO_ASSIGN_OR_RETURN(auto axes, axes_of(ctx, b, out_rank));
    size_t next = 0;
    for (int64_t i = 0; i < out_rank; ++i) {
      if (std::binary_search(axes.begin(), axes.end(), i))
        out.push_back(1);
      else
        out.push_back(in[next++]);
    }
  } else {  // Identity
    out = in;
  }
  ctx.outputs[0].dtype = x->dtype;
  ctx.outputs[0].shape = std::move(out);
  if (x->value) ctx.outputs[0].value = x->value->reshaped(ctx.outputs[0].shape);
  return Status::ok();
}

}  // namespace qyolo
