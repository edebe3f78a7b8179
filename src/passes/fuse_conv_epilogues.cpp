#include <algorithm>
#include <set>

#include "passes/graph_readers.h"
#include "passes/passes.h"

namespace qyolo {

namespace {
bool has_activation(const Node& conv) {
  auto it = conv.attrs.find("qyolo_activation");
  return it != conv.attrs.end() && !std::get<std::string>(it->second).empty();
}

// Tries one activation fusion at conv index i; returns the node indices to delete.
std::vector<int> try_fuse_activation(Graph& g, size_t i) {
  Node& conv = g.nodes[i];
  const std::string out = conv.outputs[0];
  if (g.is_graph_output(out) || has_activation(conv) || conv.inputs.size() > 3) return {};
  auto cons = readers_of(g, out);
  auto set_act = [&](const std::string& act, float alpha, const std::string& new_out) {
    conv.attrs["qyolo_activation"] = act;
    if (act == "leaky_relu") conv.attrs["qyolo_activation_alpha"] = alpha;
    conv.outputs[0] = new_out;
  };
  // SiLU: y = Mul(x, Sigmoid(x)) with x used by exactly those two nodes.
  if (cons.size() == 2) {
    int sig = -1, mul = -1;
    for (int c : cons) {
      if (g.nodes[c].op_type == "Sigmoid") sig = c;
      if (g.nodes[c].op_type == "Mul") mul = c;
    }
    if (sig >= 0 && mul >= 0) {
      const Node& s = g.nodes[sig];
      const Node& m = g.nodes[mul];
      bool mul_ok = (m.inputs[0] == out && m.inputs[1] == s.outputs[0]) ||
                    (m.inputs[1] == out && m.inputs[0] == s.outputs[0]);
      if (mul_ok && readers_of(g, s.outputs[0]).size() == 1 && !g.is_graph_output(s.outputs[0])) {
        set_act("silu", 0.f, m.outputs[0]);
        return {sig, mul};
      }
    }
    return {};
  }
  if (cons.size() != 1) return {};
  const Node& act = g.nodes[cons[0]];
  if (act.inputs.empty() || act.inputs[0] != out) return {};
  if (act.op_type == "Relu") set_act("relu", 0.f, act.outputs[0]);
  else if (act.op_type == "Sigmoid") set_act("sigmoid", 0.f, act.outputs[0]);
  else if (act.op_type == "HardSwish") set_act("hardswish", 0.f, act.outputs[0]);
  else if (act.op_type == "LeakyRelu") {
    auto alpha = act.attr_float("alpha", 0.01f);
    if (!alpha) return {};
    set_act("leaky_relu", *alpha, act.outputs[0]);
  } else {
    return {};
  }
  return {cons[0]};
}

// Conv (any activation) -> Add(conv_out, other) with `other` of the same shape and dtype.
std::vector<int> try_fuse_residual(SpecializedGraph& sg, size_t i) {
  Graph& g = sg.graph;
  Node& conv = g.nodes[i];
  const std::string out = conv.outputs[0];
  if (g.is_graph_output(out) || conv.inputs.size() > 3) return {};
  auto cons = readers_of(g, out);
  if (cons.size() != 1) return {};
  const Node& add = g.nodes[cons[0]];
  if (add.op_type != "Add" || add.inputs.size() != 2) return {};
  const std::string& other = add.inputs[0] == out ? add.inputs[1] : add.inputs[0];
  if (other == out) return {};
  const ValueDesc& od = sg.values.at(other);
  const ValueDesc& cd = sg.values.at(out);
  if (od.shape != cd.shape || od.dtype != cd.dtype) return {};
  // The residual must be computed before the conv runs: it is, if its producer precedes the conv.
  int producer = g.producer_of(other);
  if (producer > static_cast<int>(i)) return {};
  conv.inputs.resize(4);  // X, W, B ("" if absent), residual
  conv.inputs[3] = other;
  conv.outputs[0] = add.outputs[0];
  return {cons[0]};
}

void erase_nodes(Graph& g, std::vector<int> idx) {
  std::sort(idx.rbegin(), idx.rend());
  for (int k : idx) g.nodes.erase(g.nodes.begin() + k);
}
}  // namespace

Result<int> fuse_conv_epilogues(SpecializedGraph& sg, bool fuse_residual) {
  Graph& g = sg.graph;
  int fused = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i].op_type != "Conv") continue;
    auto dead = try_fuse_activation(g, i);
    if (!dead.empty()) {
      ++fused;
      size_t before = std::count_if(dead.begin(), dead.end(), [&](int d) { return d < static_cast<int>(i); });
      erase_nodes(g, dead);
      i -= before;
    }
    if (!fuse_residual) continue;
    dead = try_fuse_residual(sg, i);
    if (!dead.empty()) {
      ++fused;
      size_t before = std::count_if(dead.begin(), dead.end(), [&](int d) { return d < static_cast<int>(i); });
      erase_nodes(g, dead);
      i -= before;
    }
  }
  return fused;
}

Status run_default_passes(SpecializedGraph& g, const PassOptions& options) {
  if (options.fold_batch_norm) QYOLO_RETURN_IF_ERROR(fold_batch_norm(g).status());
  if (options.fuse_epilogues) QYOLO_RETURN_IF_ERROR(fuse_conv_epilogues(g, options.fuse_residual).status());
  if (options.fuse_yolo_decode) QYOLO_RETURN_IF_ERROR(fuse_yolo_decode(g).status());
  return Status::ok();
}

}  // namespace qyolo
