#include "quant/int8_dataflow.h"

#include <optional>
#include <unordered_map>

namespace qyolo {

namespace {

bool is_int8_conv(const Node& n) {
  return n.op_type == "Conv" && n.has_attr("qyolo_input_scale");
}

// Nodes that move int8 values without arithmetic: 2-D MaxPool, nearest Resize of H/W only,
// Concat along channels. All on rank-4 NCHW values.
bool is_int8_mover(const SpecializedGraph& sg, const Node& n) {
  auto shape_of = [&](const std::string& v) -> const Shape& { return sg.values.at(v).shape; };
  if (n.outputs.size() != 1 || n.inputs.empty() || n.inputs[0].empty()) return false;
  // Only float inputs (an int8 value of a Q/DQ model is NCHW, not the plan's).
  if (sg.values.at(n.inputs[0]).dtype != DataType::kFloat32) return false;
  const Shape& out = shape_of(n.outputs[0]);
  if (out.size() != 4) return false;
  if (n.op_type == "MaxPool") return shape_of(n.inputs[0]).size() == 4;
  if (n.op_type == "Resize" || n.op_type == "Upsample") {
    auto mode = n.attr_string("mode", "nearest");
    auto coord = n.attr_string("coordinate_transformation_mode", "half_pixel");
    const Shape& in = shape_of(n.inputs[0]);
    return mode && *mode == "nearest" && coord && *coord != "tf_crop_and_resize" && in.size() == 4 &&
           in[0] == out[0] && in[1] == out[1];
  }
  if (n.op_type == "Concat") {
    auto axis = n.attr_int("axis");
    if (!axis || (*axis != 1 && *axis != -3)) return false;
    for (const auto& in : n.inputs)
      if (in.empty() || shape_of(in).size() != 4 || sg.values.at(in).dtype != DataType::kFloat32)
        return false;
    return true;
  }
  return false;
}

// Our own exact epilogue (SiLU, sigmoid) can add a float residual before it requantises; oneDNN's
// int8 sum post-op (the other activations) needs the residual in int8.
bool adds_float_residual_itself(const Node& n) {
  const auto act = n.attr_string("qyolo_activation", std::string());
  return act && (*act == "silu" || *act == "sigmoid");
}

bool can_write_int8(const SpecializedGraph& sg, const Node& n) {
  return n.outputs.size() == 1 && (is_int8_conv(n) || is_int8_mover(sg, n));
}

struct Use {
  size_t node;
  size_t slot;
};

}  // namespace

Result<Int8Grid> conv_input_grid(const Node& conv) {
  Int8Grid g;
  QYOLO_ASSIGN_OR_RETURN(g.scale, conv.attr_float("qyolo_input_scale"));
  QYOLO_ASSIGN_OR_RETURN(const int64_t zp, conv.attr_int(kInputZeroPointAttr, 0));
  if (zp < -128 || zp > 127)
    return invalid_argument(conv.describe() + ": input zero point " + std::to_string(zp) +
                            " outside -128..127");
  g.zero_point = static_cast<int32_t>(zp);
  return g;
}

Result<std::map<std::string, Int8Grid>> choose_int8_dataflow(const SpecializedGraph& sg,
                                                             const std::map<std::string, float>& scales,
                                                             const Int8DataflowOptions& options) {
  const Graph& g = sg.graph;
  std::unordered_map<std::string, std::vector<Use>> uses;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (size_t s = 0; s < g.nodes[i].inputs.size(); ++s)
      if (!g.nodes[i].inputs[s].empty()) uses[g.nodes[i].inputs[s]].push_back({i, s});
  std::unordered_map<std::string, Int8Grid> planned;  // int8 values -> grid
  auto planned_scale = [&](const std::string& v) -> std::optional<Int8Grid> {
    auto it = planned.find(v);
    if (it == planned.end()) return std::nullopt;
    return it->second;
  };

  // Backwards: consumers decide before their producers (nodes are in execution order).
  for (size_t i = g.nodes.size(); i-- > 0;) {
    const Node& n = g.nodes[i];
    if (!can_write_int8(sg, n)) continue;
    const std::string& out = n.outputs[0];
    if (g.is_graph_output(out) || sg.values.at(out).shape.size() != 4) continue;
    auto it = uses.find(out);
    if (it == uses.end()) continue;
    std::optional<Int8Grid> scale;
    bool ok = true, symmetric_only = false;
    for (const Use& u : it->second) {
      const Node& c = g.nodes[u.node];
      std::optional<Int8Grid> want;  // nullopt: any scale
      if (is_int8_conv(c) && u.slot == 0) {
        QYOLO_ASSIGN_OR_RETURN(want, conv_input_grid(c));
      } else if (is_int8_conv(c) && u.slot == 3 && options.int8_residual && planned.count(c.outputs[0])) {
        want = std::nullopt;
        symmetric_only = true;  // the epilogue adds residual_scale * q
      } else if (is_int8_mover(sg, c) && (u.slot == 0 || c.op_type == "Concat") &&
                 planned.count(c.outputs[0])) {
        want = planned_scale(c.outputs[0]);
      } else {
        ok = false;
        break;
      }
      if (want) {
        if (scale && *scale != *want) {
          ok = false;
          break;
        }
        scale = want;
      }
    }
    if (ok && !scale) {
      if (auto s = scales.find(out); s != scales.end()) scale = Int8Grid{s->second, 0};
    }
    // Only our own SiLU / sigmoid epilogue writes an asymmetric grid (oneDNN's int8 output is symmetric).
    if (scale && scale->zero_point != 0 &&
        (symmetric_only || (is_int8_conv(n) && !adds_float_residual_itself(n))))
      ok = false;
    if (ok && scale && scale->scale > 0.f) planned[out] = *scale;
  }

  // Forwards: MaxPool/Resize need an int8 input and an int8-writing conv an int8 residual; where
  // that input stayed float, the node writes float too (its consumers accept float or come later).
  for (const Node& n : g.nodes) {
    if (n.outputs.size() != 1 || !planned.count(n.outputs[0])) continue;
    const bool mover = n.op_type == "MaxPool" || n.op_type == "Resize" || n.op_type == "Upsample";
    if ((mover && !planned.count(n.inputs[0])) ||
        (is_int8_conv(n) && n.has_input(3) && !planned.count(n.inputs[3]) && !adds_float_residual_itself(n)))
      planned.erase(n.outputs[0]);
  }

  return std::map<std::string, Int8Grid>(planned.begin(), planned.end());
}

Status mark_int8_dataflow(SpecializedGraph& sg, const std::map<std::string, Int8Grid>& planned,
                          const std::string& where) {
  Graph& g = sg.graph;
  std::unordered_map<std::string, std::vector<Use>> uses;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (size_t s = 0; s < g.nodes[i].inputs.size(); ++s)
      if (!g.nodes[i].inputs[s].empty()) uses[g.nodes[i].inputs[s]].push_back({i, s});
  auto bad = [&](const std::string& v, const std::string& why) {
    return corrupt(where + ": precision plan stores tensor '" + v + "' int8, but " + why);
  };
  // Checked as choose_int8_dataflow decides: a plan from elsewhere must fit the kernels too.
  for (const auto& [v, scale] : planned) {
    const int p = g.producer_of(v);
    if (p < 0) return bad(v, "no node of the graph writes it");
    const Node& n = g.nodes[static_cast<size_t>(p)];
    if (!can_write_int8(sg, n) || g.is_graph_output(v) || sg.values.at(v).shape.size() != 4 ||
        (scale.zero_point != 0 && is_int8_conv(n) && !adds_float_residual_itself(n)))
      return bad(
          v, n.describe() + " cannot write it int8" +
                 (scale.zero_point ? " with zero point " + std::to_string(scale.zero_point) : std::string()));
    const bool pass_through = n.op_type == "MaxPool" || n.op_type == "Resize" || n.op_type == "Upsample";
    if (pass_through && !planned.count(n.inputs[0]))
      return bad(v, n.describe() + " reads '" + n.inputs[0] + "' in float");
    if (is_int8_conv(n) && n.has_input(3) && !planned.count(n.inputs[3]) && !adds_float_residual_itself(n))
      return bad(v, n.describe() + " adds the float residual '" + n.inputs[3] + "'");
    for (const Use& u : uses[v]) {
      const Node& c = g.nodes[u.node];
      auto out = planned.find(c.outputs.empty() ? std::string() : c.outputs[0]);
      bool ok = false;
      if (is_int8_conv(c) && u.slot == 0) {
        QYOLO_ASSIGN_OR_RETURN(const Int8Grid in, conv_input_grid(c));
        ok = in == scale;
      } else if (is_int8_conv(c) && u.slot == 3) {
        ok = out != planned.end() && scale.zero_point == 0;
      } else if (is_int8_mover(sg, c) && (u.slot == 0 || c.op_type == "Concat")) {
        ok = out != planned.end() && out->second == scale;
      }
      if (!ok)
        return bad(
            v, c.describe() + " cannot read it int8 at scale " + std::to_string(scale.scale) +
                   (scale.zero_point ? ", zero point " + std::to_string(scale.zero_point) : std::string()));
    }
  }
  for (Node& n : g.nodes) {
    if (n.outputs.size() != 1) continue;
    if (auto it = planned.find(n.outputs[0]); it != planned.end()) {
      n.attrs[kInt8OutputScaleAttr] = it->second.scale;
      if (it->second.zero_point != 0) n.attrs[kInt8OutputZeroPointAttr] = int64_t{it->second.zero_point};
      sg.values.at(n.outputs[0]).dtype = DataType::kInt8;
      if (n.op_type == "Conv" && n.has_input(3) && planned.count(n.inputs[3]))
        n.attrs[kInt8ResidualScaleAttr] = planned.at(n.inputs[3]).scale;
    }
  }
  return Status::ok();
}

Result<int> plan_int8_dataflow(SpecializedGraph& sg, const std::map<std::string, float>& scales,
                               const Int8DataflowOptions& options) {
  QYOLO_ASSIGN_OR_RETURN(auto planned, choose_int8_dataflow(sg, scales, options));
  QYOLO_RETURN_IF_ERROR(mark_int8_dataflow(sg, planned, sg.graph.source_path));
  return static_cast<int>(planned.size());
}

}  // namespace qyolo
