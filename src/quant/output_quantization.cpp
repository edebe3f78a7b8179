#include "quant/output_quantization.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace qyolo {

int64_t OutputQuantization::probability_levels() const {
  if (!(scale > 0)) return 0;
  // A probability p quantizes to round(p / scale) (half to even, as QuantizeLinear) + zero point,
  // saturated: the levels above the zero point that p in (0, 1] reaches.
  const int64_t top = std::min<int64_t>(qmax - zero_point, std::llrint(1.0 / static_cast<double>(scale)));
  return std::max<int64_t>(0, top);
}

std::optional<OutputQuantization> output_quantization(const Graph& g, const std::string& output) {
  const int p = g.producer_of(output);
  if (p < 0) return std::nullopt;
  const Node& dq = g.nodes[static_cast<size_t>(p)];
  if (dq.op_type != "DequantizeLinear") return std::nullopt;
  auto init = [&](size_t i) -> const Tensor* {
    if (!dq.has_input(i)) return nullptr;
    auto it = g.initializers.find(dq.inputs[i]);
    return it == g.initializers.end() ? nullptr : &it->second;
  };
  const Tensor* scale = init(1);
  const Tensor* zp = init(2);
  if (scale == nullptr || scale->numel() != 1 || (dq.has_input(2) && (zp == nullptr || zp->numel() != 1)))
    return std::nullopt;
  OutputQuantization q;
  q.node = dq.name;
  q.scale = scale->to_float_vector()[0];
  q.zero_point = zp ? zp->to_int64_vector()[0] : 0;
  const DataType t = zp ? zp->dtype() : DataType::kUInt8;  // ONNX: uint8 without a zero point
  if (t == DataType::kInt8) {
    q.qmin = -128;
    q.qmax = 127;
  } else if (t == DataType::kUInt8) {
    q.qmin = 0;
    q.qmax = 255;
  } else {
    return std::nullopt;  // int32 (bias-style) outputs: no score grid to judge
  }
  return q;
}

namespace {

bool moves_values_only(const std::string& op) {
  return op == "Identity" || op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze" ||
         op == "Transpose" || op == "Slice" || op == "Split" || op == "Concat";
}

bool collect_grids(const Graph& g, const std::string& value, std::set<std::string>& seen,
                   std::vector<OutputQuantization>& grids) {
  if (!seen.insert(value).second) return true;
  const int p = g.producer_of(value);
  if (p < 0) return false;
  const Node& n = g.nodes[static_cast<size_t>(p)];
  if (n.op_type == "DequantizeLinear") {
    auto q = output_quantization(g, value);
    if (!q) return false;
    grids.push_back(*q);
    return true;
  }
  if (!moves_values_only(n.op_type)) return false;
  // Concat moves every input's values; the others move their data input's (the rest are shapes/indices).
  const size_t data_inputs = n.op_type == "Concat" ? n.inputs.size() : 1;
  for (size_t i = 0; i < data_inputs; ++i)
    if (n.has_input(i) && !collect_grids(g, n.inputs[i], seen, grids)) return false;
  return true;
}

}  // namespace

std::optional<std::vector<OutputQuantization>> output_grids(const Graph& g, const std::string& value) {
  std::set<std::string> seen;
  std::vector<OutputQuantization> grids;
  if (!collect_grids(g, value, seen, grids) || grids.empty()) return std::nullopt;
  return grids;
}

int remove_output_quantization(Graph& g) {
  int changed = 0;
  for (const ValueInfo& out : g.outputs) {
    const int p = g.producer_of(out.name);
    if (p < 0) continue;
    Node& dq = g.nodes[static_cast<size_t>(p)];
    if (dq.op_type != "DequantizeLinear") continue;
    const int qi = g.producer_of(dq.inputs[0]);
    if (qi < 0 || g.nodes[static_cast<size_t>(qi)].op_type != "QuantizeLinear") continue;
    const std::string x = g.nodes[static_cast<size_t>(qi)].inputs[0];
    dq.op_type = "Identity";
    dq.inputs = {x};
    dq.attrs.clear();
    ++changed;
  }
  if (changed) g.remove_dead_nodes();
  return changed;
}

}  // namespace qyolo
