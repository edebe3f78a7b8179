#include "ir/ops/conv2d.h"

#include <cmath>

#include "ir/op_registry.h"
#include "ir/shape_arith.h"

namespace qyolo {

namespace {
std::string ints_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}
}  // namespace

Result<AutoPad> parse_auto_pad(const Node& node) {
  QYOLO_ASSIGN_OR_RETURN(std::string s, node.attr_string("auto_pad", std::string("NOTSET")));
  if (s == "NOTSET" || s.empty()) return AutoPad::kNotSet;
  if (s == "SAME_UPPER") return AutoPad::kSameUpper;
  if (s == "SAME_LOWER") return AutoPad::kSameLower;
  if (s == "VALID") return AutoPad::kValid;
  return invalid_argument(node.describe() + ": unknown auto_pad '" + s + "'");
}

Result<WindowGeometry> resolve_window(const Node& node, const std::vector<int64_t>& in,
                                      const std::vector<int64_t>& kernel, bool ceil_mode) {
  const size_t k = in.size();
  auto err = [&](const std::string& what) { return invalid_argument(node.describe() + ": " + what); };
  WindowGeometry g;
  g.kernel = kernel;
  if (kernel.size() != k)
    return err("kernel_shape " + ints_str(kernel) + " does not match " + std::to_string(k) + " spatial dims");
  QYOLO_ASSIGN_OR_RETURN(g.strides, node.attr_ints("strides", std::vector<int64_t>(k, 1)));
  QYOLO_ASSIGN_OR_RETURN(g.dilations, node.attr_ints("dilations", std::vector<int64_t>(k, 1)));
  QYOLO_ASSIGN_OR_RETURN(std::vector<int64_t> pads, node.attr_ints("pads", std::vector<int64_t>(2 * k, 0)));
  QYOLO_ASSIGN_OR_RETURN(AutoPad auto_pad, parse_auto_pad(node));
  if (g.strides.size() != k)
    return err("strides " + ints_str(g.strides) + " must have " + std::to_string(k) + " values");
  if (g.dilations.size() != k)
    return err("dilations " + ints_str(g.dilations) + " must have " + std::to_string(k) + " values");
  if (pads.size() != 2 * k)
    return err("pads " + ints_str(pads) + " must have " + std::to_string(2 * k) + " values");
  if (auto_pad != AutoPad::kNotSet && node.has_attr("pads")) {
    // ONNX says pads must not be used together with auto_pad; exporters sometimes write zeros.
    for (int64_t p : pads)
      if (p != 0) return err("pads and auto_pad are both set");
  }
  g.pads_begin.assign(k, 0);
  g.pads_end.assign(k, 0);
  g.out.assign(k, 0);
  for (size_t i = 0; i < k; ++i) {
    if (kernel[i] < 1) return err("kernel_shape " + ints_str(kernel) + " must be positive");
    if (g.strides[i] < 1) return err("strides " + ints_str(g.strides) + " must be positive");
    if (g.dilations[i] < 1) return err("dilations " + ints_str(g.dilations) + " must be positive");
    if (pads[i] < 0 || pads[i + k] < 0) return err("pads " + ints_str(pads) + " must be non-negative");
    // Attribute values come from the file: every step is checked (pads = INT64_MAX is an error).
    ShapeArith m;
    const int64_t eff = m.add(m.mul(kernel[i] - 1, g.dilations[i]), 1);
    const int64_t s = g.strides[i];
    switch (auto_pad) {
      case AutoPad::kNotSet: {
        g.pads_begin[i] = pads[i];
        g.pads_end[i] = pads[i + k];
        const int64_t padded = m.add(m.add(in[i], g.pads_begin[i]), g.pads_end[i]);
        if (!m.ok()) break;
        int64_t span = padded - eff;  // both >= 0: cannot overflow
        if (span < 0)
          return err("kernel (effective size " + std::to_string(eff) + ") is larger than padded input dim " +
                     std::to_string(i) + " (" + std::to_string(padded) + ")");
        int64_t o = (ceil_mode ? span / s + (span % s != 0) : span / s) + 1;
        // A window that would start inside the end padding is dropped (PyTorch/ONNX rule).
        if (ceil_mode && m.mul(o - 1, s) >= m.add(in[i], g.pads_begin[i])) --o;
        g.out[i] = o;
        break;
      }
      case AutoPad::kValid:
        if (!m.ok()) break;
        if (in[i] < eff)
          return err("kernel (effective size " + std::to_string(eff) + ") is larger than input dim " +
                     std::to_string(i) + " (" + std::to_string(in[i]) + ")");
        g.out[i] = (in[i] - eff) / s + 1;
        break;
      case AutoPad::kSameUpper:
      case AutoPad::kSameLower: {
        g.out[i] = in[i] / s + (in[i] % s != 0);
        int64_t total = std::max<int64_t>(0, m.sub(m.add(m.mul(g.out[i] - 1, s), eff), in[i]));
        int64_t small = total / 2, big = total - small;
        g.pads_begin[i] = auto_pad == AutoPad::kSameUpper ? small : big;
        g.pads_end[i] = total - g.pads_begin[i];
        break;
      }
    }
    if (!m.ok())
      return m.status(node.describe() + ": window of spatial dim " + std::to_string(i) + " (kernel " +
                      ints_str(kernel) + ", pads " + ints_str(pads) + ", strides " + ints_str(g.strides) +
                      ", dilations " + ints_str(g.dilations) + ")");
  }
  return g;
}

const char* fused_activation_name(FusedActivation a) {
  switch (a) {
    case FusedActivation::kNone:
      return "";
    case FusedActivation::kRelu:
      return "relu";
    case FusedActivation::kSilu:
      return "silu";
    case FusedActivation::kSigmoid:
      return "sigmoid";
    case FusedActivation::kLeakyRelu:
      return "leaky_relu";
    case FusedActivation::kHardSwish:
      return "hardswish";
  }
  return "?";
}

float apply_fused_activation(FusedActivation a, float alpha, float v) {
  switch (a) {
    case FusedActivation::kNone:
      return v;
    case FusedActivation::kRelu:
      return v > 0.f ? v : 0.f;
    case FusedActivation::kSilu:
      return v / (1.f + std::exp(-v));
    case FusedActivation::kSigmoid:
      return 1.f / (1.f + std::exp(-v));
    case FusedActivation::kLeakyRelu:
      return v >= 0.f ? v : alpha * v;
    case FusedActivation::kHardSwish:
      return v * std::min(std::max(v + 3.f, 0.f), 6.f) / 6.f;
  }
  return v;
}

Result<ConvAttrs> ConvAttrs::parse(const Node& node, const Shape& x, const Shape& w) {
  auto err = [&](const std::string& what) { return invalid_argument(node.describe() + ": " + what); };
  ConvAttrs a;
  if (x.size() < 3 || x.size() > 5)
    return err("input X must have rank 3..5 (N, C, 1-3 spatial dims), got " + shape_str(x));
  if (w.size() != x.size())
    return err("weight W " + shape_str(w) + " must have the rank of X " + shape_str(x));
  const size_t k = x.size() - 2;
  QYOLO_ASSIGN_OR_RETURN(a.group, node.attr_int("group", 1));
  if (a.group < 1) return err("group must be >= 1, got " + std::to_string(a.group));
  const int64_t c = x[1], m = w[0];
  if (c % a.group != 0 || w[1] != c / a.group)
    return err("input channels " + std::to_string(c) + " do not match W " + shape_str(w) + " with group " +
               std::to_string(a.group));
  if (m % a.group != 0)
    return err("output channels " + std::to_string(m) + " are not divisible by group " +
               std::to_string(a.group));
  std::vector<int64_t> wk(w.begin() + 2, w.end());
  QYOLO_ASSIGN_OR_RETURN(std::vector<int64_t> kernel, node.attr_ints("kernel_shape", wk));
  if (kernel != wk) return err("kernel_shape " + ints_str(kernel) + " does not match W " + shape_str(w));
  QYOLO_ASSIGN_OR_RETURN(a.window,
                         resolve_window(node, std::vector<int64_t>(x.begin() + 2, x.end()), kernel, false));
  a.out_shape = {x[0], m};
  for (size_t i = 0; i < k; ++i) a.out_shape.push_back(a.window.out[i]);

  QYOLO_ASSIGN_OR_RETURN(std::string act, node.attr_string("qyolo_activation", std::string()));
  if (act.empty()) {
    a.activation = FusedActivation::kNone;
  } else if (act == "relu") {
    a.activation = FusedActivation::kRelu;
  } else if (act == "silu") {
    a.activation = FusedActivation::kSilu;
  } else if (act == "sigmoid") {
    a.activation = FusedActivation::kSigmoid;
  } else if (act == "leaky_relu") {
    a.activation = FusedActivation::kLeakyRelu;
  } else if (act == "hardswish") {
    a.activation = FusedActivation::kHardSwish;
  } else {
    return err("unknown qyolo_activation '" + act + "'");
  }
  QYOLO_ASSIGN_OR_RETURN(a.activation_alpha, node.attr_float("qyolo_activation_alpha", 0.01f));
  a.has_bias = node.has_input(2);
  a.has_residual = node.has_input(3);
  QYOLO_ASSIGN_OR_RETURN(a.output_multiplier,
                         node.attr_floats("qyolo_output_multiplier", std::vector<float>{}));
  if (!a.output_multiplier.empty()) {
    if (static_cast<int64_t>(a.output_multiplier.size()) != m)
      return err("qyolo_output_multiplier has " + std::to_string(a.output_multiplier.size()) +
                 " values for " + std::to_string(m) + " output channels");
    for (float v : a.output_multiplier)
      if (!(v > 0.f) || !std::isfinite(v))
        return err("qyolo_output_multiplier values must be positive and finite");
    if (a.has_residual) return err("qyolo_output_multiplier with a residual input is not supported");
  }
  return a;
}

Status infer_conv2d(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  const ValueDesc* w = ctx.input(1);
  if (x == nullptr || w == nullptr) return ctx.error("inputs X and W are required");
  if (x->dtype != DataType::kFloat32 || w->dtype != DataType::kFloat32)
    return unsupported(ctx.node.describe() + ": only float32 X and W are supported (got " +
                       dtype_name(x->dtype) + ", " + dtype_name(w->dtype) + ")");
  QYOLO_ASSIGN_OR_RETURN(ConvAttrs a, ConvAttrs::parse(ctx.node, x->shape, w->shape));
  if (a.has_bias) {
    const ValueDesc* b = ctx.input(2);
    if (b->dtype != DataType::kFloat32 || b->shape != Shape{w->shape[0]})
      return ctx.error("bias B must be float32 of shape [" + std::to_string(w->shape[0]) + "], got " +
                       dtype_name(b->dtype) + " " + shape_str(b->shape));
  }
  if (a.has_residual) {
    const ValueDesc* r = ctx.input(3);
    if (r->dtype != DataType::kFloat32 || r->shape != a.out_shape)
      return ctx.error("residual input must be float32 of the output shape " + shape_str(a.out_shape) +
                       ", got " + dtype_name(r->dtype) + " " + shape_str(r->shape));
  }
  ctx.outputs[0].dtype = DataType::kFloat32;
  ctx.outputs[0].shape = a.out_shape;
  return Status::ok();
}

}  // namespace qyolo
