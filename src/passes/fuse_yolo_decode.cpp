// fuse_yolo_decode: the YOLOv5 detect-head decode tail of one level, as exported by ultralytics,
//   R = Reshape(X [N, A*C, H, W] -> [N, A, C, H, W]); T = Transpose(R, perm [0, 1, 3, 4, 2])
//   S = Sigmoid(T); xy, wh, conf = Split(S, axis 4, [2, 2, C-4])
//   XY = Mul(Add(Mul(xy, c1), GRID), STRIDE); WH = Mul(Pow(Mul(wh, c2), c3), ANCHOR_GRID)
//   Y = Concat(XY, WH, conf, axis 4)
// becomes Y = QyoloYoloDecode(X, GRID, ANCHOR_GRID) (src/ir/ops/yolo_decode.h). Every node, shape,
// dtype and constant is checked; the intermediates must have no other consumer and not be graph
// outputs. Anything else leaves the graph untouched.
#include <algorithm>
#include <set>

#include "ir/ops/split.h"
#include "ir/ops/transpose.h"
#include "ir/ops/yolo_decode.h"
#include "passes/passes.h"

namespace qyolo {

namespace {

// The single node consuming `value` (by index), or -1 (none, several, or a graph output).
int sole_consumer(const Graph& g, const std::string& value) {
  if (g.is_graph_output(value)) return -1;
  int found = -1;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& in : g.nodes[i].inputs)
      if (in == value) {
        if (found >= 0) return -1;  // several consumers, or one node reading it twice
        found = static_cast<int>(i);
      }
  return found;
}

struct Matcher {
  SpecializedGraph& sg;
  Graph& g;
  std::vector<int> matched;           // node indices to delete
  std::vector<std::string> internal;  // intermediate values that disappear

  const ValueDesc* desc(const std::string& v) const {
    auto it = sg.values.find(v);
    return it == sg.values.end() ? nullptr : &it->second;
  }
  bool is_f32(const std::string& v, const Shape& shape) const {
    const ValueDesc* d = desc(v);
    return d && d->dtype == DataType::kFloat32 && d->shape == shape;
  }
  // A float32 constant.
  const Tensor* constant(const std::string& v) const {
    const ValueDesc* d = desc(v);
    if (!d || !d->value || d->dtype != DataType::kFloat32 || d->value->dtype() != DataType::kFloat32) return nullptr;
    return &*d->value;
  }
  // A float32 constant holding one value whose broadcast cannot grow a rank-5 result.
  std::optional<float> scalar(const std::string& v) const {
    const Tensor* t = constant(v);
    if (!t || t->numel() != 1 || t->shape().size() > 5) return std::nullopt;
    return t->to_float_vector()[0];
  }
  // The sole consumer of `v` if it has op type `op`, one output, and `v` is one of its inputs.
  const Node* next(const std::string& v, const char* op, size_t n_inputs) {
    int c = sole_consumer(g, v);
    if (c < 0) return nullptr;
    const Node& n = g.nodes[static_cast<size_t>(c)];
    if (n.op_type != op || !n.domain.empty() || n.inputs.size() != n_inputs) return nullptr;
    if (op != std::string_view("Split") && n.outputs.size() != 1) return nullptr;
    matched.push_back(c);
    internal.push_back(v);
    return &n;
  }
  // Binary Mul/Add of `v` with a constant (either operand order); returns the other input's name.
  const Node* binary_with_const(const std::string& v, const char* op, std::string* other) {
    const Node* n = next(v, op, 2);
    if (!n) return nullptr;
    if (n->inputs[0] == v) *other = n->inputs[1];
    else *other = n->inputs[0];
    if (*other == v || !constant(*other)) return nullptr;
    return n;
  }
};

// Tries the pattern starting at Reshape node `ri`; on success returns the fused node and fills
// `dead` with the matched nodes' indices (the Concat last) and `gone` with the dropped values.
std::optional<Node> match(SpecializedGraph& sg, size_t ri, std::vector<int>& dead, std::vector<std::string>& gone) {
  Graph& g = sg.graph;
  Matcher m{sg, g, {}, {}};
  const Node& reshape = g.nodes[ri];
  if (reshape.op_type != "Reshape" || !reshape.domain.empty() || reshape.inputs.empty() || reshape.outputs.size() != 1)
    return std::nullopt;
  const std::string& x = reshape.inputs[0];
  const ValueDesc* xd = m.desc(x);
  const ValueDesc* rd = m.desc(reshape.outputs[0]);
  if (!xd || !rd || xd->value || xd->dtype != DataType::kFloat32 || xd->shape.size() != 4) return std::nullopt;
  if (rd->dtype != DataType::kFloat32 || rd->shape.size() != 5) return std::nullopt;
  const int64_t N = xd->shape[0], H = xd->shape[2], W = xd->shape[3];
  const int64_t A = rd->shape[1], C = rd->shape[2];
  if (A <= 0 || C <= 4 || rd->shape != Shape{N, A, C, H, W} || xd->shape[1] != A * C) return std::nullopt;
  m.matched.push_back(static_cast<int>(ri));

  const Shape t_shape{N, A, H, W, C}, two{N, A, H, W, 2}, grid_shape{1, A, H, W, 2};
  // Transpose perm [0, 1, 3, 4, 2].
  const Node* tr = m.next(reshape.outputs[0], "Transpose", 1);
  if (!tr) return std::nullopt;
  auto ta = TransposeAttrs::parse(*tr, rd->shape);
  if (!ta || ta->perm != std::vector<int64_t>{0, 1, 3, 4, 2} || !m.is_f32(tr->outputs[0], t_shape)) return std::nullopt;
  // Sigmoid.
  const Node* sig = m.next(tr->outputs[0], "Sigmoid", 1);
  if (!sig || !m.is_f32(sig->outputs[0], t_shape)) return std::nullopt;
  // Split axis 4 into [2, 2, C-4].
  int si = sole_consumer(g, sig->outputs[0]);
  if (si < 0) return std::nullopt;
  const Node& split = g.nodes[static_cast<size_t>(si)];
  if (split.op_type != "Split" || !split.domain.empty() || split.outputs.size() != 3 || split.inputs.empty() ||
      split.inputs[0] != sig->outputs[0] || split.inputs.size() > 2)
    return std::nullopt;
  std::optional<std::vector<int64_t>> split_input;
  if (split.has_input(1)) {
    const ValueDesc* sd = m.desc(split.inputs[1]);
    if (!sd || !sd->value) return std::nullopt;
    split_input = sd->value->to_int64_vector();
  }
  auto sa = SplitAttrs::parse(split, t_shape, split_input);
  if (!sa || sa->axis != 4 || sa->sizes != std::vector<int64_t>{2, 2, C - 4}) return std::nullopt;
  m.matched.push_back(si);
  m.internal.push_back(sig->outputs[0]);
  const std::string xy = split.outputs[0], wh = split.outputs[1], conf = split.outputs[2];
  if (!m.is_f32(xy, two) || !m.is_f32(wh, two) || !m.is_f32(conf, Shape{N, A, H, W, C - 4})) return std::nullopt;

  // XY = ((xy * c1) + GRID) * STRIDE
  std::string c1_name, grid_name, stride_name;
  const Node* mul1 = m.binary_with_const(xy, "Mul", &c1_name);
  if (!mul1 || !m.is_f32(mul1->outputs[0], two)) return std::nullopt;
  const Node* add = m.binary_with_const(mul1->outputs[0], "Add", &grid_name);
  if (!add || !m.is_f32(add->outputs[0], two)) return std::nullopt;
  const Node* mul_s = m.binary_with_const(add->outputs[0], "Mul", &stride_name);
  if (!mul_s || !m.is_f32(mul_s->outputs[0], two)) return std::nullopt;
  auto c1 = m.scalar(c1_name), stride = m.scalar(stride_name);
  const Tensor* grid = m.constant(grid_name);
  if (!c1 || !stride || !grid || grid->shape() != grid_shape) return std::nullopt;

  // WH = ((wh * c2) ^ c3) * ANCHOR_GRID
  std::string c2_name, anchor_name;
  const Node* mul2 = m.binary_with_const(wh, "Mul", &c2_name);
  if (!mul2 || !m.is_f32(mul2->outputs[0], two)) return std::nullopt;
  const Node* pw = m.next(mul2->outputs[0], "Pow", 2);
  if (!pw || pw->inputs[0] != mul2->outputs[0] || pw->inputs[1] == mul2->outputs[0] || !m.is_f32(pw->outputs[0], two))
    return std::nullopt;
  const Node* mul_a = m.binary_with_const(pw->outputs[0], "Mul", &anchor_name);
  if (!mul_a || !m.is_f32(mul_a->outputs[0], two)) return std::nullopt;
  auto c2 = m.scalar(c2_name), c3 = m.scalar(pw->inputs[1]);
  const Tensor* anchor = m.constant(anchor_name);
  if (!c2 || !c3 || !anchor || anchor->shape() != grid_shape) return std::nullopt;

  // Y = Concat(XY, WH, conf, axis 4)
  const std::string xy_out = mul_s->outputs[0], wh_out = mul_a->outputs[0];
  int ci = sole_consumer(g, xy_out);
  if (ci < 0 || sole_consumer(g, wh_out) != ci || sole_consumer(g, conf) != ci) return std::nullopt;
  const Node& concat = g.nodes[static_cast<size_t>(ci)];
  if (concat.op_type != "Concat" || !concat.domain.empty() || concat.outputs.size() != 1 ||
      concat.inputs != std::vector<std::string>{xy_out, wh_out, conf})
    return std::nullopt;
  auto axis = concat.attr_int("axis");
  if (!axis || (*axis != 4 && *axis != -1) || !m.is_f32(concat.outputs[0], t_shape)) return std::nullopt;
  m.matched.push_back(ci);
  m.internal.insert(m.internal.end(), {xy, wh, conf, xy_out, wh_out});

  // Every matched node is distinct (a malformed graph could alias them).
  std::set<int> uniq(m.matched.begin(), m.matched.end());
  if (uniq.size() != m.matched.size() || m.matched.size() != 11) return std::nullopt;

  Node fused;
  fused.name = concat.name + "/qyolo_yolo_decode";
  fused.op_type = kYoloDecodeOp;
  fused.inputs = {x, grid_name, anchor_name};
  fused.outputs = {concat.outputs[0]};
  fused.attrs["num_anchors"] = A;
  fused.attrs["stride"] = *stride;
  fused.attrs["c1"] = *c1;
  fused.attrs["c2"] = *c2;
  fused.attrs["c3"] = *c3;
  // The op's own validation must agree (shapes re-derived from X).
  auto fa = YoloDecodeAttrs::parse(fused, xd->shape);
  if (!fa || fa->out_shape() != t_shape) return std::nullopt;
  dead = std::move(m.matched);
  gone = std::move(m.internal);
  return fused;
}

}  // namespace

Result<int> fuse_yolo_decode(SpecializedGraph& sg) {
  Graph& g = sg.graph;
  int fused = 0;
  for (size_t i = 0; i < g.nodes.size();) {
    std::vector<int> dead;
    std::vector<std::string> gone;
    auto node = match(sg, i, dead, gone);
    if (!node) {
      ++i;
      continue;
    }
    // The fused node takes the Concat's place (its inputs X and the constants are ready there);
    // the other matched nodes go.
    const int concat_idx = dead.back();
    g.nodes[static_cast<size_t>(concat_idx)] = std::move(*node);
    dead.pop_back();
    std::sort(dead.rbegin(), dead.rend());
    for (int k : dead) g.nodes.erase(g.nodes.begin() + k);
    for (const auto& v : gone) sg.values.erase(v);
    ++fused;
    i = 0;  // indices moved; the matched Reshape is gone, so rescanning finds only the others
  }
  if (fused) {
    // Drop the scalar constants nobody reads any more (initializers and their descriptions).
    std::set<std::string> before;
    for (const auto& [name, t] : g.initializers) before.insert(name);
    g.remove_dead_nodes();
    for (const auto& name : before)
      if (!g.initializers.count(name)) sg.values.erase(name);
  }
  return fused;
}

}  // namespace qyolo
