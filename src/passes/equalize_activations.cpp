#include <algorithm>
#include <cmath>

#include "passes/graph_readers.h"
#include "passes/passes.h"

namespace qyolo {

namespace {
// How many nodes read the initializer `name` (a reader conv's weights are rescaled in place, so
// they must be its own).
int uses_of(const Graph& g, const std::string& name) {
  int n = 0;
  for (const auto& node : g.nodes)
    for (const auto& in : node.inputs) n += in == name;
  return n;
}

// A conv on float weights; `residual`: its 4th input (a fused residual Add) may be present.
bool is_conv(const SpecializedGraph& sg, const Node& n, bool residual) {
  if (n.op_type != "Conv" || n.inputs.size() < 2 || n.inputs.size() > (residual ? 4u : 3u)) return false;
  auto w = sg.graph.initializers.find(n.inputs[1]);
  return w != sg.graph.initializers.end() && w->second.dtype() == DataType::kFloat32 && w->second.rank() == 4;
}
}  // namespace

namespace {
// Every reader of `t` a conv reading it as its data input only, on weights of its own; `t` not a
// graph output.
bool readers_are_convs(const SpecializedGraph& sg, const std::string& t) {
  const Graph& g = sg.graph;
  if (g.is_graph_output(t)) return false;
  const auto readers = readers_of(g, t);
  if (readers.empty()) return false;
  for (int r : readers) {
    const Node& rd = g.nodes[static_cast<size_t>(r)];
    if (!is_conv(sg, rd, /*residual=*/true) || rd.inputs[0] != t || uses_of(g, rd.inputs[1]) != 1)
      return false;
    for (size_t k = 1; k < rd.inputs.size(); ++k)
      if (rd.inputs[k] == t) return false;
  }
  return true;
}

// A conv that can apply the multiplier itself (ConvAttrs::output_multiplier): no residual, `t` its
// only output, an activation the CPU INT8 conv applies it after (SiLU, sigmoid: its own epilogue;
// ReLU, LeakyReLU: its output scales). Not hardswish (no INT8 path), and not a conv without
// activation: the CPU INT8 conv with a bias, no activation and an int8 output (the int8 dataflow)
// disagreed with its float output by far more than one step in FusedMultiplierMatchesTheExplicitMul,
// even with every multiplier 1, and agreed with a zero bias: a question for that path (oneDNN's
// bias with the output scales when no eltwise post-op runs?), not for the multiplier. Such
// producers keep the explicit Mul.
bool can_fuse_into(const SpecializedGraph& sg, const Node& producer) {
  if (!is_conv(sg, producer, /*residual=*/false) || producer.outputs.size() != 1) return false;
  auto act = producer.attr_string("qyolo_activation", std::string());
  return act.is_ok() && (*act == "silu" || *act == "sigmoid" || *act == "relu" || *act == "leaky_relu");
}
// Why `t` cannot be equalised in `sg`, naming the node in the way (for errors: factors made for
// another model).
std::string not_equalizable_reason(const SpecializedGraph& sg, const std::string& t) {
  const Graph& g = sg.graph;
  auto vd = sg.values.find(t);
  if (vd == sg.values.end()) return "this graph has no tensor '" + t + "'";
  if (vd->second.value) return "'" + t + "' is a constant";
  if (g.is_graph_output(t)) return "'" + t + "' is a graph output";
  for (int r : readers_of(g, t)) {
    const Node& rd = g.nodes[static_cast<size_t>(r)];
    if (!is_conv(sg, rd, /*residual=*/true) || rd.inputs[0] != t)
      return "'" + t + "' is read by node '" + rd.name + "' (" + rd.op_type + "), not only as a conv's input";
    if (uses_of(g, rd.inputs[1]) != 1) return "node '" + rd.name + "' shares its weights with another node";
  }
  return "'" + t + "' is read by no node";
}
}  // namespace

std::vector<std::string> equalizable_tensors(const SpecializedGraph& sg, bool with_concat) {
  std::vector<std::string> out;
  for (const Node& producer : sg.graph.nodes) {
    const bool concat = with_concat && producer.op_type == "Concat" && producer.outputs.size() == 1;
    if ((concat || can_fuse_into(sg, producer)) && readers_are_convs(sg, producer.outputs[0]))
      out.push_back(producer.outputs[0]);
  }
  return out;
}

Result<int> equalize_activations(SpecializedGraph& sg, const EqualizationFactors& factors, bool fuse) {
  Graph& g = sg.graph;
  int done = 0;
  for (const auto& [t, s] : factors) {
    auto vd = sg.values.find(t);
    if (vd == sg.values.end() || vd->second.value || !readers_are_convs(sg, t))
      return invalid_argument("activation equalisation of '" + t + "': " + not_equalizable_reason(sg, t) +
                              " (factors made for another model?)");
    const int p = g.producer_of(t);
    const ValueDesc desc = vd->second;
    const int64_t channels = desc.shape.size() >= 2 ? desc.shape[1] : 0;
    if (static_cast<int64_t>(s.size()) != channels)
      return invalid_argument("activation equalisation of '" + t + "'" +
                              (p >= 0 ? " (output of node '" + g.nodes[static_cast<size_t>(p)].name + "')" : "") +
                              ": " + std::to_string(s.size()) + " factors for " + std::to_string(channels) +
                              " channels");
    for (float f : s)
      if (!(f > 0.f) || !std::isfinite(f))
        return invalid_argument("activation equalisation of '" + t +
                                "': factors must be positive and finite");
    // Readers: W[o, c - group offset, :, :] *= s_c (the float network is unchanged).
    const std::string scaled = t + kEqualizedSuffix;
    for (int r : readers_of(g, t)) {
      Node& rd = g.nodes[static_cast<size_t>(r)];
      QYOLO_ASSIGN_OR_RETURN(int64_t group, rd.attr_int("group", 1));
      Tensor w = g.initializers.at(rd.inputs[1]).clone();
      const int64_t cout = w.dim(0), cin_g = w.dim(1), k = w.dim(2) * w.dim(3);
      if (group <= 0 || cin_g * group != channels || cout % group != 0)
        return invalid_argument(rd.describe() + ": weights " + shape_str(w.shape()) + " do not match the " +
                                std::to_string(channels) + " channels of '" + t + "'");
      float* wd = w.data<float>();
      for (int64_t o = 0; o < cout; ++o) {
        const int64_t base_c = (o / (cout / group)) * cin_g;
        for (int64_t ci = 0; ci < cin_g; ++ci)
          for (int64_t j = 0; j < k; ++j) wd[(o * cin_g + ci) * k + j] *= s[static_cast<size_t>(base_c + ci)];
      }
      g.initializers[rd.inputs[1]] = w;
      sg.values[rd.inputs[1]] = ValueDesc{DataType::kFloat32, w.shape(), w};
      rd.inputs[0] = scaled;
    }
    // Producer side: T' = T / s_c after the activation.
    std::vector<float> mult(s.size());
    for (size_t c = 0; c < s.size(); ++c) mult[c] = 1.f / s[c];
    if (fuse && p >= 0 && can_fuse_into(sg, g.nodes[static_cast<size_t>(p)])) {
      Node& prod = g.nodes[static_cast<size_t>(p)];
      prod.attrs[kOutputMultiplierAttr] = mult;
      prod.outputs[0] = scaled;
      sg.values.erase(t);
      sg.values[scaled] = desc;
    } else {
      // An explicit Mul keeps both T (the model's tensor, whose scale a TensorRT cache needs) and T'
      // observable during calibration.
      Tensor m(DataType::kFloat32, {1, channels, 1, 1});
      std::copy(mult.begin(), mult.end(), m.data<float>());
      const std::string m_name = t + "/qyolo_equalize_multiplier";
      g.initializers[m_name] = m;
      sg.values[m_name] = ValueDesc{DataType::kFloat32, m.shape(), m};
      Node mul;
      mul.name = t + "/qyolo_equalize";
      mul.op_type = "Mul";
      mul.inputs = {t, m_name};
      mul.outputs = {scaled};
      g.nodes.insert(g.nodes.begin() + (p + 1), std::move(mul));
      sg.values[scaled] = desc;
    }
    ++done;
  }
  return done;
}

}  // namespace qyolo
