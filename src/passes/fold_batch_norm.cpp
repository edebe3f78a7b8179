#include <cmath>

#include "passes/passes.h"

namespace qyolo {

namespace {
// The single node consuming `value`, or -1 (none, several, or a graph output).
int sole_consumer(const Graph& g, const std::string& value) {
  if (g.is_graph_output(value)) return -1;
  int found = -1;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& in : g.nodes[i].inputs)
      if (in == value) {
        if (found >= 0 && found != static_cast<int>(i)) return -1;
        found = static_cast<int>(i);
      }
  return found;
}
}  // namespace

Result<int> fold_batch_norm(SpecializedGraph& sg) {
  Graph& g = sg.graph;
  int folded = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& conv = g.nodes[i];
    if (conv.op_type != "Conv" || conv.inputs.size() > 3) continue;
    int bn_idx = sole_consumer(g, conv.outputs[0]);
    if (bn_idx < 0) continue;
    Node& bn = g.nodes[static_cast<size_t>(bn_idx)];
    if (bn.op_type != "BatchNormalization" || bn.outputs.size() != 1 || bn.inputs[0] != conv.outputs[0]) continue;
    auto w_it = g.initializers.find(conv.inputs[1]);
    if (w_it == g.initializers.end() || w_it->second.dtype() != DataType::kFloat32) continue;
    bool params_const = true;
    for (size_t k = 1; k < 5; ++k)
      if (!g.initializers.count(bn.inputs[k]) || g.initializers[bn.inputs[k]].dtype() != DataType::kFloat32)
        params_const = false;
    if (!params_const) continue;
    QYOLO_ASSIGN_OR_RETURN(float eps, bn.attr_float("epsilon", 1e-5f));
    const Tensor& w = w_it->second;
    int64_t cout = w.dim(0);
    int64_t per_out = w.numel() / cout;
    auto scale = g.initializers[bn.inputs[1]].to_float_vector();
    auto shift = g.initializers[bn.inputs[2]].to_float_vector();
    auto mean = g.initializers[bn.inputs[3]].to_float_vector();
    auto var = g.initializers[bn.inputs[4]].to_float_vector();
    if (static_cast<int64_t>(scale.size()) != cout)
      return invalid_argument(bn.describe() + ": has " + std::to_string(scale.size()) + " channels, conv has " +
                              std::to_string(cout));
    Tensor new_w = w.clone();
    Tensor new_b(DataType::kFloat32, {cout});
    std::vector<float> old_b(static_cast<size_t>(cout), 0.f);
    if (conv.has_input(2)) old_b = g.initializers.at(conv.inputs[2]).to_float_vector();
    for (int64_t c = 0; c < cout; ++c) {
      float k = scale[c] / std::sqrt(var[c] + eps);
      for (int64_t j = 0; j < per_out; ++j) new_w.data<float>()[c * per_out + j] *= k;
      new_b.data<float>()[c] = (old_b[c] - mean[c]) * k + shift[c];
    }
    std::string w_name = conv.name + "/qyolo_bn_folded_weight";
    std::string b_name = conv.name + "/qyolo_bn_folded_bias";
    g.initializers[w_name] = new_w;
    g.initializers[b_name] = new_b;
    sg.values[w_name] = ValueDesc{DataType::kFloat32, new_w.shape(), new_w};
    sg.values[b_name] = ValueDesc{DataType::kFloat32, new_b.shape(), new_b};
    conv.inputs.resize(3);
    conv.inputs[1] = w_name;
    conv.inputs[2] = b_name;
    conv.outputs[0] = bn.outputs[0];
    g.nodes.erase(g.nodes.begin() + bn_idx);
    ++folded;
  }
  if (folded) g.remove_dead_nodes();
  return folded;
}

}  // namespace qyolo
