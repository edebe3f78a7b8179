#include "quant/dequantize_graph.h"

#include <set>

#include "ir/op_registry.h"

namespace qyolo {

namespace {

bool is_integer(DataType t) {
  return t == DataType::kInt8 || t == DataType::kUInt8 || t == DataType::kInt32;
}

const Tensor* find_init(const Graph& g, const std::string& name) {
  auto it = g.initializers.find(name);
  return it == g.initializers.end() ? nullptr : &it->second;
}

// (x - zero_point) * scale for a constant x, per tensor or per `axis`.
Result<Tensor> dequantize_constant(const Node& n, const Tensor& x, const Tensor& scale, const Tensor* zp) {
  QYOLO_ASSIGN_OR_RETURN(int64_t axis, n.attr_int("axis", 1));
  const std::vector<float> xs = x.to_float_vector(), s = scale.to_float_vector();
  const std::vector<float> z = zp ? zp->to_float_vector() : std::vector<float>(s.size(), 0.f);
  if (z.size() != s.size()) return invalid_argument(n.describe() + ": zero point and scale sizes differ");
  Tensor out(DataType::kFloat32, x.shape());
  int64_t inner = 1, channels = 1;
  if (s.size() > 1) {
    QYOLO_ASSIGN_OR_RETURN(int64_t a, normalize_axis(axis, static_cast<int64_t>(x.shape().size())));
    channels = x.shape()[static_cast<size_t>(a)];
    if (channels != static_cast<int64_t>(s.size()))
      return invalid_argument(n.describe() + ": " + std::to_string(s.size()) + " scales for axis " +
                              std::to_string(a) + " of " + shape_str(x.shape()));
    for (size_t d = static_cast<size_t>(a) + 1; d < x.shape().size(); ++d) inner *= x.shape()[d];
  }
  for (int64_t i = 0; i < x.numel(); ++i) {
    const size_t c = s.size() > 1 ? static_cast<size_t>((i / inner) % channels) : 0;
    out.data<float>()[i] = (xs[static_cast<size_t>(i)] - z[c]) * s[c];
  }
  return out;
}

// Conv (no bias) -> Add(per-channel constant [C,1,1] / [1,C,1,1] / [C]) back into one Conv with that
// bias, as the float model had it before quantization (the older quantizer split them), so the
// conv epilogue fusions (bias + SiLU) apply again. Returns the number folded.
int fold_conv_bias_adds(Graph& g) {
  std::map<std::string, size_t> conv_of;  // conv output -> node index
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].op_type == "Conv" && g.nodes[i].inputs.size() == 2) conv_of[g.nodes[i].outputs[0]] = i;
  int folded = 0;
  std::vector<bool> drop(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& add = g.nodes[i];
    if (add.op_type != "Add" || add.inputs.size() != 2) continue;
    for (size_t side = 0; side < 2; ++side) {
      auto c = conv_of.find(add.inputs[side]);
      const Tensor* b = find_init(g, add.inputs[1 - side]);
      if (c == conv_of.end() || b == nullptr || b->dtype() != DataType::kFloat32) continue;
      if (g.consumer_count(c->first) != 1 || g.is_graph_output(c->first)) continue;
      Node& conv = g.nodes[c->second];
      const Tensor* w = find_init(g, conv.inputs[1]);
      if (w == nullptr || w->shape().empty()) continue;
      const int64_t channels = w->shape()[0];
      const Shape& bs = b->shape();
      const bool per_channel =
          b->numel() == channels &&
          (bs == Shape{channels} || bs == Shape{channels, 1, 1} || bs == Shape{1, channels, 1, 1});
      if (!per_channel) continue;
      const std::string bias = add.inputs[1 - side] + "/conv_bias";
      g.initializers[bias] = b->reshaped({channels});
      conv.inputs.push_back(bias);
      conv.outputs[0] = add.outputs[0];
      conv_of.erase(c);
      drop[i] = true;
      ++folded;
      break;
    }
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!drop[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
  return folded;
}

}  // namespace

Status dequantize_graph(Graph& g, DequantizeReport* report) {
  DequantizeReport rep;
  std::map<std::string, std::string> alias;      // removed value -> the float value that replaces it
  std::map<std::string, const Node*> quantizer;  // quantized activation -> the QuantizeLinear making it
  auto resolve = [&](std::string v) {
    for (auto it = alias.find(v); it != alias.end(); it = alias.find(v)) v = it->second;
    return v;
  };
  std::vector<Node> kept;
  kept.reserve(g.nodes.size());
  for (const Node& n : g.nodes) {
    if (n.op_type == "DynamicQuantizeLinear")
      return unsupported(n.describe() +
                         ": dynamically quantized models compute their scales at run time; they have "
                         "float activations already and nothing to dequantize");
    if (n.op_type != "QuantizeLinear" && n.op_type != "DequantizeLinear") {
      kept.push_back(n);
      continue;
    }
    const Tensor* x = find_init(g, n.inputs[0]);
    const Tensor* scale = find_init(g, n.inputs[1]);
    const Tensor* zp = n.has_input(2) ? find_init(g, n.inputs[2]) : nullptr;
    if (scale == nullptr || (n.has_input(2) && zp == nullptr))
      return unsupported(n.describe() + ": scale and zero point must be constants to dequantize the model");
    if (n.op_type == "DequantizeLinear" && x != nullptr) {
      QYOLO_ASSIGN_OR_RETURN(g.initializers[n.outputs[0]], dequantize_constant(n, *x, *scale, zp));
      rep.weights++;
      continue;
    }
    if (n.op_type == "QuantizeLinear") quantizer[n.outputs[0]] = &n;
    alias[n.outputs[0]] = n.inputs[0];
    rep.activation_qdq++;
  }
  // Integer constants combined with a quantized activation: Add/Sub of a bias on the activation's scale.
  for (Node& n : kept) {
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const Tensor* c = find_init(g, n.inputs[i]);
      if (c == nullptr || !is_integer(c->dtype()) || n.inputs.size() != 2) continue;
      const std::string& other = n.inputs[1 - i];
      auto q = quantizer.find(other);
      if (q == quantizer.end()) continue;
      if (n.op_type != "Add" && n.op_type != "Sub")
        return unsupported(n.describe() + ": integer " + n.op_type + " of quantized '" + other +
                           "' and a constant has no float equivalent");
      const Tensor* s = find_init(g, q->second->inputs[1]);
      if (s == nullptr || s->numel() != 1)
        return unsupported(n.describe() + ": '" + other +
                           "' must be quantized per tensor to dequantize its bias");
      Tensor f(DataType::kFloat32, c->shape());
      const std::vector<float> cv = c->to_float_vector();
      for (int64_t k = 0; k < f.numel(); ++k)
        f.data<float>()[k] = cv[static_cast<size_t>(k)] * s->to_float_vector()[0];
      const std::string name = n.inputs[i] + "/dequantized";
      g.initializers[name] = std::move(f);
      n.inputs[i] = name;
      rep.integer_biases++;
    }
  }
  for (Node& n : kept)
    for (auto& in : n.inputs)
      if (!in.empty()) in = resolve(in);
  // Graph outputs keep their names: an Identity from the float value that replaced them.
  for (auto& out : g.outputs) {
    if (!alias.count(out.name)) continue;
    Node id;
    id.name = out.name + "/Identity";
    id.op_type = "Identity";
    id.inputs = {resolve(out.name)};
    id.outputs = {out.name};
    kept.push_back(std::move(id));
    if (is_integer(out.dtype)) out.dtype = DataType::kFloat32;
  }
  g.nodes = std::move(kept);
  QYOLO_RETURN_IF_ERROR(g.toposort());
  rep.conv_biases = fold_conv_bias_adds(g);
  g.remove_dead_nodes();
  // Anything still integer-typed in float arithmetic would be silently wrong: refuse it by name.
  for (const Node& n : g.nodes)
    for (const auto& in : n.inputs)
      if (const Tensor* c = find_init(g, in);
          c && (c->dtype() == DataType::kInt8 || c->dtype() == DataType::kUInt8))
        return unsupported(n.describe() + ": input '" + in + "' is still " + dtype_name(c->dtype()) +
                           " after dequantization");
  if (report) *report = rep;
  return Status::ok();
}

}  // namespace qyolo
