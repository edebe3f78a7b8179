#include "passes/specialize.h"

#include "backends/cpu/cpu_executor.h"
#include "ir/shape_arith.h"

namespace qyolo {

namespace {
// Folding a large computation (a convolution of constants) would be pointless work at build time;
// shape subgraphs and small constant expressions are what we fold.
constexpr int64_t kMaxFoldElements = 1 << 22;
}  // namespace

Result<SpecializedGraph> specialize(const Graph& graph, const std::map<std::string, Shape>& input_shapes) {
  SpecializedGraph out;
  out.graph = graph;
  Graph& g = out.graph;
  auto& values = out.values;

  for (const auto& in : g.inputs) {
    auto it = input_shapes.find(in.name);
    if (it == input_shapes.end())
      return invalid_argument(g.source_path + ": no shape given for input '" + in.name + "' (declared " +
                              in.dims_str() + ")");
    const Shape& s = it->second;
    if (!in.dims.empty() && s.size() != in.dims.size())
      return invalid_argument(g.source_path + ": input '" + in.name + "' has rank " + std::to_string(in.dims.size()) +
                              " (" + in.dims_str() + "), got shape " + shape_str(s) + " of rank " +
                              std::to_string(s.size()));
    for (size_t d = 0; d < s.size(); ++d) {
      if (s[d] <= 0)
        return invalid_argument("input '" + in.name + "': dim " + std::to_string(d) + " must be positive, got " +
                                shape_str(s));
      if (d < in.dims.size() && in.dims[d].is_static() && in.dims[d].value != s[d])
        return invalid_argument(g.source_path + ": input '" + in.name + "' dim " + std::to_string(d) + " is fixed to " +
                                std::to_string(in.dims[d].value) + ", got " + std::to_string(s[d]) + " (shape " +
                                shape_str(s) + ", model expects " + in.dims_str() + ")");
    }
    auto bytes = checked_nbytes(s, in.dtype, g.source_path + ": input '" + in.name + "'");
    if (!bytes) return bytes.status();
    values[in.name] = ValueDesc{in.dtype, s, std::nullopt};
  }
  for (const auto& [name, _] : input_shapes)
    if (g.find_input(name) == nullptr)
      return invalid_argument(g.source_path + ": the model has no input named '" + name + "'");
  for (const auto& [name, t] : g.initializers) values[name] = ValueDesc{t.dtype(), t.shape(), t};

  std::vector<Node> runtime_nodes;
  for (auto& node : g.nodes) {
    InferContext ctx{node, g.opset, {}, {}};
    bool all_const = true;
    for (const auto& in : node.inputs) {
      if (in.empty()) {
        ctx.inputs.push_back(nullptr);
        continue;
      }
      auto it = values.find(in);
      if (it == values.end()) return internal_error(node.describe() + ": input '" + in + "' has no description");
      ctx.inputs.push_back(&it->second);
      if (!it->second.value) all_const = false;
    }
    Status st = infer_node(ctx);
    if (!st.is_ok()) return st.with_context(g.source_path);

    // Every inferred shape is checked here, once: no op's output may overflow or exceed the cap.
    int64_t out_elems = 0;
    for (size_t i = 0; i < ctx.outputs.size(); ++i) {
      const ValueDesc& o = ctx.outputs[i];
      const std::string what = g.source_path + ": " + node.describe() + ": output '" +
                               (i < node.outputs.size() ? node.outputs[i] : std::to_string(i)) + "'";
      auto bytes = checked_nbytes(o.shape, o.dtype, what);
      if (!bytes) return bytes.status();
      out_elems += *bytes / static_cast<int64_t>(dtype_size(o.dtype));  // <= 2^34 each: no overflow
    }
    if (all_const && out_elems <= kMaxFoldElements && !g.is_graph_output(node.outputs[0])) {
      auto folded = evaluate_node_cpu(node, ctx.inputs, ctx.outputs);
      if (!folded) return folded.status().with_context(g.source_path + ": folding constants");
      for (size_t i = 0; i < node.outputs.size(); ++i) {
        Tensor t = std::move((*folded)[i]);
        g.initializers[node.outputs[i]] = t;
        values[node.outputs[i]] = ValueDesc{t.dtype(), t.shape(), t};
      }
      continue;
    }
    for (size_t i = 0; i < node.outputs.size(); ++i) values[node.outputs[i]] = ctx.outputs[i];
    runtime_nodes.push_back(std::move(node));
  }
  g.nodes = std::move(runtime_nodes);
  g.remove_dead_nodes();
  // Keep descriptions of live values only.
  std::unordered_map<std::string, ValueDesc> live;
  for (const auto& in : g.inputs) live[in.name] = values[in.name];
  for (const auto& [name, t] : g.initializers) live[name] = values[name];
  for (const auto& n : g.nodes)
    for (const auto& o : n.outputs) live[o] = values[o];
  for (const auto& o : g.outputs) live[o.name] = values[o.name];
  values = std::move(live);
  return out;
}

}  // namespace qyolo
