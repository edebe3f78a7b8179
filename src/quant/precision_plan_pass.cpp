#include "quant/precision_plan_pass.h"

#include <cmath>
#include <cstdio>
#include <optional>
#include <regex>
#include <set>

#include "quant/int8_dataflow.h"
#include "quant/quant_params.h"

namespace qyolo {

namespace {

// Scale of a per-tensor symmetric QuantizeLinear node (zero point 0), if that is what it is.
std::optional<float> qdq_scale(const Graph& g, const Node& q) {
  auto s = g.initializers.find(q.inputs[1]);
  if (s == g.initializers.end() || s->second.numel() != 1 || s->second.dtype() != DataType::kFloat32)
    return std::nullopt;
  if (q.has_input(2)) {
    auto z = g.initializers.find(q.inputs[2]);
    if (z == g.initializers.end() || z->second.numel() != 1 || z->second.dtype() != DataType::kInt8 ||
        z->second.data<int8_t>()[0] != 0)
      return std::nullopt;
  }
  return s->second.data<float>()[0];
}

// Conv input produced by DequantizeLinear(QuantizeLinear(x)) with one symmetric int8 scale:
// returns (x, scale).
std::optional<std::pair<std::string, float>> folded_qdq_input(const Graph& g, const std::string& value) {
  int dq_idx = g.producer_of(value);
  if (dq_idx < 0 || g.nodes[static_cast<size_t>(dq_idx)].op_type != "DequantizeLinear") return std::nullopt;
  const Node& dq = g.nodes[static_cast<size_t>(dq_idx)];
  int q_idx = g.producer_of(dq.inputs[0]);
  if (q_idx < 0 || g.nodes[static_cast<size_t>(q_idx)].op_type != "QuantizeLinear") return std::nullopt;
  const Node& q = g.nodes[static_cast<size_t>(q_idx)];
  auto sq = qdq_scale(g, q), sdq = qdq_scale(g, dq);
  if (!sq || !sdq || *sq != *sdq) return std::nullopt;
  return std::make_pair(q.inputs[0], *sq);
}

bool float_weights(const Graph& g, const Node& conv) {
  auto w = g.initializers.find(conv.inputs.size() > 1 ? conv.inputs[1] : std::string());
  return w != g.initializers.end() && w->second.dtype() == DataType::kFloat32;
}

double conv_macs(const SpecializedGraph& sg, const Node& n) {
  if (n.inputs.size() < 2 || n.outputs.empty()) return 0.0;
  auto w = sg.values.find(n.inputs[1]);
  auto y = sg.values.find(n.outputs[0]);
  if (w == sg.values.end() || y == sg.values.end() || w->second.shape.empty() || w->second.shape[0] <= 0)
    return 0.0;
  // y: [N, K, OH, OW]; w: [K, C/g, R, S]: N*K*OH*OW*(C/g)*R*S.
  return static_cast<double>(shape_numel(y->second.shape)) *
         static_cast<double>(shape_numel(w->second.shape)) / static_cast<double>(w->second.shape[0]);
}

// The tensor entries of the INT8 convs: each one's input with its grid, and its fused residual
// where that has a scale (`scales`, or the entry already there).
void add_int8_tensor_entries(PrecisionPlan& plan, const Node& conv, Int8Grid input,
                             const std::map<std::string, float>& scales) {
  const DataType between =
      plan.float_precision == NodePrecision::kFp16 ? DataType::kFloat16 : DataType::kFloat32;
  plan.tensors[conv.inputs[0]] = {between, input.scale, input.zero_point};
  if (!conv.has_input(3) || plan.tensors.count(conv.inputs[3])) return;
  if (auto r = scales.find(conv.inputs[3]); r != scales.end() && r->second > 0.f)
    plan.tensors[conv.inputs[3]] = {between, r->second};
}

// The minimum of x * sigmoid(x) (at x = -1.27846), rounded away from zero.
constexpr double kSiluMin = -0.27846454;

}  // namespace

std::map<std::string, double> activation_lower_bounds(const Graph& g) {
  std::map<std::string, double> lo;
  std::map<std::string, std::string> sigmoid_input;  // a Sigmoid's output -> its input
  auto bound = [&](const std::string& v) -> std::optional<double> {
    auto it = lo.find(v);
    if (it == lo.end()) return std::nullopt;
    return it->second;
  };
  for (const Node& n : g.nodes) {
    if (n.outputs.size() != 1 || n.inputs.empty()) continue;
    std::optional<double> b;
    const std::string& op = n.op_type;
    if (op == "Sigmoid" || op == "Relu") {
      if (op == "Sigmoid") sigmoid_input[n.outputs[0]] = n.inputs[0];
      b = 0.0;
    } else if (op == "Mul" && n.inputs.size() == 2) {  // SiLU as exported, in either operand order
      for (size_t i = 0; i < 2; ++i)
        if (auto it = sigmoid_input.find(n.inputs[i]);
            it != sigmoid_input.end() && it->second == n.inputs[1 - i])
          b = kSiluMin;
    } else if (op == "Conv") {
      const auto act_attr = n.attr_string("qyolo_activation", std::string());
      const std::string act = act_attr ? *act_attr : std::string();
      if (act == "silu" || act == "sigmoid" || act == "relu") {
        double m = 1.0;  // the equalisation multiplier scales the activation's output
        if (auto mult = n.attr_floats("qyolo_output_multiplier", std::vector<float>{}))
          for (float f : *mult) m = std::max(m, static_cast<double>(f));
        b = act == "silu" ? kSiluMin * m : 0.0;
        if (n.has_input(3)) {
          const auto r = bound(n.inputs[3]);
          b = r ? std::optional<double>(*b + *r) : std::nullopt;
        }
      }
    } else if (op == "MaxPool" || op == "Identity" || op == "Reshape" ||
               ((op == "Resize" || op == "Upsample") && [&] {
                 auto mode = n.attr_string("mode", "nearest");
                 return mode && *mode == "nearest";
               }())) {
      b = bound(n.inputs[0]);
    } else if (op == "Concat") {
      b = 0.0;
      for (const auto& in : n.inputs) {
        const auto r = bound(in);
        if (!r) {
          b.reset();
          break;
        }
        b = std::min(*b, *r);
      }
    } else if (op == "Add" && n.inputs.size() == 2) {
      const auto x = bound(n.inputs[0]), y = bound(n.inputs[1]);
      if (x && y) b = *x + *y;
    }
    if (b) lo[n.outputs[0]] = *b;
  }
  return lo;
}

Result<PrecisionPlan> make_precision_plan(const SpecializedGraph& sg,
                                          const std::map<std::string, float>& scales,
                                          const PlanRules& rules) {
  const Graph& g = sg.graph;
  PrecisionPlan plan;
  plan.float_precision = rules.float_precision;
  for (const auto& n : g.nodes)
    if (n.op_type == "Conv") plan.nodes[n.name] = rules.float_precision;
  if (!rules.int8) return plan;
  std::optional<std::regex> keep_float;
  if (!rules.float_layers_regex.empty()) {
    try {
      keep_float.emplace(rules.float_layers_regex, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return invalid_argument("bad layer regex '" + rules.float_layers_regex + "': " + e.what());
    }
  }
  // Q/DQ models: a Q->DQ pair whose DequantizeLinear node matches --float-layers is bypassed (the
  // tensor stays float). Everything else honours the model's scales exactly. Needed for e.g. ONNX
  // Runtime's quantiser, which Q/DQs YOLO's Detect-head concats with one scale shared by boxes
  // (up to ~640 px) and scores (0..1), rounding every score to 0.
  std::set<std::string> bypassed;  // outputs of bypassed DequantizeLinear nodes
  if (keep_float) {
    for (const auto& node : g.nodes) {
      if (node.op_type != "DequantizeLinear" || !std::regex_search(node.name, *keep_float)) continue;
      if (folded_qdq_input(g, node.outputs[0])) {
        plan.nodes[node.name] = NodePrecision::kFp32;
        bypassed.insert(node.outputs[0]);
      }
    }
  }
  std::map<std::string, double> lower_bounds;
  if (rules.asymmetric_activations) lower_bounds = activation_lower_bounds(g);
  for (const auto& node : g.nodes) {
    if (node.op_type != "Conv") continue;
    if (keep_float && std::regex_search(node.name, *keep_float)) continue;
    if (!float_weights(g, node)) continue;
    std::optional<Int8Grid> in;
    if (auto folded = bypassed.count(node.inputs[0]) ? std::nullopt : folded_qdq_input(g, node.inputs[0])) {
      in = Int8Grid{folded->second, 0};  // the model's own scale, as it is
    } else if (auto it = scales.find(node.inputs[0]); it != scales.end()) {
      in = Int8Grid{it->second, 0};
      if (auto lo = lower_bounds.find(node.inputs[0]); lo != lower_bounds.end() && it->second > 0.f)
        asymmetric_grid(lo->second, amax_from_scale(it->second), &in->scale, &in->zero_point);
    }
    if (!in || !(in->scale > 0.f)) continue;
    plan.nodes[node.name] = NodePrecision::kInt8;
    add_int8_tensor_entries(plan, node, *in, scales);
  }
  if (rules.cpu_int8_dataflow) {
    // Which values the CPU keeps int8 between layers, decided on the graph this plan marks.
    SpecializedGraph marked = sg;
    QYOLO_RETURN_IF_ERROR(apply_precision_plan(marked, plan, g.source_path));
    QYOLO_ASSIGN_OR_RETURN(auto planned, choose_int8_dataflow(marked, scales));
    for (const auto& [v, grid] : planned) plan.tensors[v] = {DataType::kInt8, grid.scale, grid.zero_point};
  }
  return plan;
}

Status refine_precision_plan(PrecisionPlan& plan, const SpecializedGraph& float_graph,
                             const std::map<std::string, NodePrecision>& chosen) {
  std::map<std::string, TensorPlan> old_tensors;
  old_tensors.swap(plan.tensors);
  std::map<std::string, float> residual_scales;
  for (const auto& [name, t] : old_tensors)
    if (t.scale > 0.f && t.zero_point == 0) residual_scales[name] = t.scale;
  for (const auto& n : float_graph.graph.nodes) {
    if (n.op_type != "Conv") continue;
    auto c = chosen.find(n.name);
    if (c == chosen.end()) return internal_error("the backend reported no precision for " + n.describe());
    const NodePrecision before = plan.precision_of(n.name);
    if (c->second == NodePrecision::kInt8 && before != NodePrecision::kInt8)
      return internal_error("the backend ran " + n.describe() + " in INT8, which the precision plan keeps " +
                            node_precision_name(before));
    plan.nodes[n.name] = c->second;
    if (c->second == NodePrecision::kInt8) {
      const TensorPlan& in = old_tensors.at(n.inputs[0]);
      add_int8_tensor_entries(plan, n, Int8Grid{in.scale, in.zero_point}, residual_scales);
    }
  }
  return Status::ok();
}

Status apply_precision_plan(SpecializedGraph& sg, const PrecisionPlan& plan, const std::string& where) {
  Graph& g = sg.graph;
  auto bad = [&](const std::string& what) { return corrupt(where + ": precision plan " + what); };
  std::set<std::string> listed;
  for (auto& node : g.nodes) {
    auto entry = plan.nodes.find(node.name);
    if (entry == plan.nodes.end()) {
      if (node.op_type == "Conv")
        return bad("has no entry for " + node.describe() + " (made for another model?)");
      continue;
    }
    listed.insert(node.name);
    if (node.op_type == "DequantizeLinear") {
      if (entry->second != NodePrecision::kFp32) return bad("lists " + node.describe() + " other than fp32");
      auto folded = folded_qdq_input(g, node.outputs[0]);
      if (!folded) return bad("bypasses " + node.describe() + ", which ends no symmetric Q/DQ pair");
      node.op_type = "Identity";
      node.inputs = {folded->first};
      node.attrs.clear();
    } else if (node.op_type != "Conv") {
      return bad("lists " + node.describe() + ", which has no precision of its own");
    }
  }
  for (const auto& [name, p] : plan.nodes)
    if (!listed.count(name)) return bad("lists node '" + name + "', which the model does not have");
  for (auto& node : g.nodes) {
    if (node.op_type != "Conv" || plan.precision_of(node.name) != NodePrecision::kInt8) continue;
    if (!float_weights(g, node))
      return bad("runs " + node.describe() + " in INT8, but its weights are not float constants");
    const float in_scale = plan.scale_of(node.inputs[0]);
    if (!(in_scale > 0.f))
      return bad("runs " + node.describe() + " in INT8 without a scale for its input '" + node.inputs[0] +
                 "'");
    const int32_t zp = plan.tensors.at(node.inputs[0]).zero_point;
    // The model's own Q->DQ pair in front: the conv reads the float tensor and quantises it itself.
    if (auto folded = folded_qdq_input(g, node.inputs[0])) {
      if (zp != 0)
        return bad("gives " + node.describe() + " a zero point on the model's own symmetric Q/DQ input");
      node.inputs[0] = folded->first;
    }
    node.attrs["qyolo_input_scale"] = in_scale;
    if (zp != 0) node.attrs[kInputZeroPointAttr] = int64_t{zp};
    // A fused residual (input 3) with a scale may be read as int8 by backends that keep int8
    // between layers (the CUDA --int8 --fp16 path); the scale says how.
    if (node.has_input(3))
      if (const float r = plan.scale_of(node.inputs[3]); r > 0.f) node.attrs["qyolo_residual_scale"] = r;
  }
  g.remove_dead_nodes();
  // Drop descriptions of values that no longer exist (folded Q/DQ pairs).
  std::set<std::string> live;
  for (const auto& in : g.inputs) live.insert(in.name);
  for (const auto& [n, t] : g.initializers) live.insert(n);
  for (const auto& n : g.nodes)
    for (const auto& o : n.outputs) live.insert(o);
  for (auto it = sg.values.begin(); it != sg.values.end();) {
    if (!live.count(it->first))
      it = sg.values.erase(it);
    else
      ++it;
  }
  return Status::ok();
}

Status apply_int8_storage(SpecializedGraph& sg, const PrecisionPlan& plan, const std::string& where) {
  std::map<std::string, Int8Grid> planned;
  for (const auto& [name, t] : plan.tensors) {
    if (t.storage != DataType::kInt8) continue;
    if (!sg.values.count(name))
      return corrupt(where + ": precision plan stores tensor '" + name +
                     "' int8, which the model does not have");
    planned[name] = {t.scale, t.zero_point};
  }
  return mark_int8_dataflow(sg, planned, where);
}

PlanCounts count_plan(const PrecisionPlan& plan, const SpecializedGraph& sg) {
  PlanCounts c;
  for (const auto& n : sg.graph.nodes) {
    if (n.op_type != "Conv") continue;
    const auto p = static_cast<size_t>(plan.precision_of(n.name));
    c.convs[p] += 1;
    c.macs[p] += conv_macs(sg, n);
  }
  for (const auto& [name, t] : plan.tensors) c.int8_tensors += t.storage == DataType::kInt8;
  return c;
}

std::string plan_summary(const PrecisionPlan& plan, const SpecializedGraph& sg) {
  const PlanCounts c = count_plan(plan, sg);
  const int total = c.convs[0] + c.convs[1] + c.convs[2];
  const double macs = c.macs[0] + c.macs[1] + c.macs[2];
  std::string s = std::to_string(total) + " convs:";
  bool first = true;
  for (NodePrecision p : {NodePrecision::kInt8, NodePrecision::kFp16, NodePrecision::kFp32}) {
    const int k = c.convs[static_cast<size_t>(p)];
    if (k == 0) continue;
    s += std::string(first ? " " : ", ") + std::to_string(k) + " " + node_precision_name(p);
    first = false;
  }
  char share[96];
  std::snprintf(share, sizeof(share), " (%.1f%% of conv MACs in int8",
                macs > 0 ? 100.0 * c.macs[2] / macs : 0.0);
  s += share;
  if (c.int8_tensors > 0) s += ", " + std::to_string(c.int8_tensors) + " tensors int8 between layers";
  return s + ")";
}

}  // namespace qyolo
