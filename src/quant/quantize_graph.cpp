#include "quant/quantize_graph.h"

#include <cmath>
#include <regex>
#include <set>

#include "calib/calib_cache.h"

namespace qyolo {

namespace {

// Scale of a per-tensor symmetric QuantizeLinear node (zero point 0), if that is what it is.
std::optional<float> qdq_scale(const Graph& g, const Node& q) {
  auto s = g.initializers.find(q.inputs[1]);
  if (s == g.initializers.end() || s->second.numel() != 1 || s->second.dtype() != DataType::kFloat32) return std::nullopt;
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

}  // namespace

Status quantize_graph(SpecializedGraph& sg, const std::map<std::string, float>& scales,
                      const QuantizeOptions& options, int* num_int8) {
  Graph& g = sg.graph;
  std::optional<std::regex> keep_float;
  if (!options.float_layers_regex.empty()) {
    try {
      keep_float.emplace(options.float_layers_regex, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return invalid_argument("bad layer regex '" + options.float_layers_regex + "': " + e.what());
    }
  }
  // Q/DQ models: a Q->DQ pair whose DequantizeLinear node matches --float-layers is bypassed (the
  // tensor stays float). Everything else honours the model's scales exactly. Needed for e.g. ONNX
  // Runtime's quantiser, which Q/DQs YOLO's Detect-head concats with one scale shared by boxes
  // (up to ~640 px) and scores (0..1), rounding every score to 0.
  if (keep_float) {
    for (auto& node : g.nodes) {
      if (node.op_type != "DequantizeLinear" || !std::regex_search(node.name, *keep_float)) continue;
      if (auto folded = folded_qdq_input(g, node.outputs[0])) {
        node.op_type = "Identity";
        node.inputs = {folded->first};
        node.attrs.clear();
      }
    }
  }
  int count = 0;
  for (auto& node : g.nodes) {
    if (node.op_type != "Conv") continue;
    if (keep_float && std::regex_search(node.name, *keep_float)) continue;
    auto w = g.initializers.find(node.inputs[1]);
    if (w == g.initializers.end() || w->second.dtype() != DataType::kFloat32) continue;
    std::optional<float> in_scale;
    if (auto folded = folded_qdq_input(g, node.inputs[0])) {
      node.inputs[0] = folded->first;  // read the float tensor; the conv quantises it itself
      in_scale = folded->second;
    } else if (auto it = scales.find(node.inputs[0]); it != scales.end()) {
      in_scale = it->second;
    }
    if (!in_scale || !(*in_scale > 0.f)) continue;
    node.attrs["qyolo_input_scale"] = *in_scale;
    // A fused residual (input 3) with a calibrated scale may be read as int8 by backends that keep
    // int8 between layers (the CUDA --int8 --fp16 path); the scale says how.
    if (node.has_input(3)) {
      if (auto r = scales.find(node.inputs[3]); r != scales.end() && r->second > 0.f)
        node.attrs["qyolo_residual_scale"] = r->second;
    }
    ++count;
  }
  g.remove_dead_nodes();
  // Drop descriptions of values that no longer exist (folded Q/DQ pairs).
  std::set<std::string> live;
  for (const auto& in : g.inputs) live.insert(in.name);
  for (const auto& [n, t] : g.initializers) live.insert(n);
  for (const auto& n : g.nodes)
    for (const auto& o : n.outputs) live.insert(o);
  for (auto it = sg.values.begin(); it != sg.values.end();) {
    if (!live.count(it->first)) it = sg.values.erase(it);
    else ++it;
  }
  if (num_int8) *num_int8 = count;
  return Status::ok();
}

Result<std::map<std::string, float>> load_activation_scales(const std::string& path, const Graph& graph) {
  QYOLO_ASSIGN_OR_RETURN(CalibrationTable table, read_calibration_file(path));
  std::set<std::string> names;
  for (const auto& in : graph.inputs) names.insert(in.name);
  for (const auto& n : graph.nodes)
    for (const auto& o : n.outputs) names.insert(o);
  size_t known = 0;
  std::string first_unknown;
  for (const auto& [name, scale] : table.scales) {
    if (names.count(name)) ++known;
    else if (first_unknown.empty()) first_unknown = name;
    if (!(scale >= 0.f) || std::isinf(scale))
      return corrupt("calibration file '" + path + "': tensor '" + name + "' has invalid scale " + std::to_string(scale));
  }
  if (known == 0)
    return invalid_argument("calibration file '" + path + "' does not belong to model '" + graph.source_path +
                            "': none of its " + std::to_string(table.scales.size()) +
                            " tensor names exist in the model (first: '" + first_unknown + "')");
  return table.scales;
}

}  // namespace qyolo
