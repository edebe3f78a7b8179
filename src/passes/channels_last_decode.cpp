#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "ir/ops/yolo_decode.h"
#include "passes/passes.h"

namespace qyolo {

Result<int> plan_channels_last_decode(SpecializedGraph& sg) {
  Graph& g = sg.graph;
  std::unordered_map<std::string, std::vector<Node*>> readers;
  for (Node& n : g.nodes)
    for (const auto& in : n.inputs)
      if (!in.empty()) readers[in].push_back(&n);
  int planned = 0;
  for (Node& conv : g.nodes) {
    if (conv.op_type != "Conv" || conv.outputs.size() != 1 || conv.has_input(3)) continue;
    const std::string& out = conv.outputs[0];
    const ValueDesc& d = sg.values.at(out);
    if (g.is_graph_output(out) || d.dtype != DataType::kFloat32 || d.shape.size() != 4) continue;
    auto it = readers.find(out);
    if (it == readers.end()) continue;
    bool only_decodes = true;
    for (const Node* r : it->second)
      only_decodes = only_decodes && r->op_type == kYoloDecodeOp && r->inputs[0] == out &&
                     std::count(r->inputs.begin(), r->inputs.end(), out) == 1;
    if (!only_decodes) continue;
    conv.attrs[kChannelsLastOutputAttr] = int64_t{1};
    for (Node* r : it->second) r->attrs[kChannelsLastInputAttr] = int64_t{1};
    ++planned;
  }
  return planned;
}

}  // namespace qyolo

namespace qyolo {

namespace {

// A 2-D Conv (FP32, or INT8 reading float and writing float; the int8 plan's int8 values are
// channels-last anyway).
bool is_conv(const SpecializedGraph& sg, const Node& n) {
  return n.op_type == "Conv" && n.outputs.size() == 1 && sg.values.at(n.inputs[0]).shape.size() == 4;
}
bool is_int8_concat(const Node& n) {
  return n.op_type == "Concat" && n.has_attr("qyolo_int8_output_scale");
}
// A Conv of the int8 plan writing int8 reads a float residual (input 3) in either layout.
bool int8_conv_reads_residual(const Node& n, size_t slot) {
  return n.op_type == "Conv" && slot == 3 && n.has_attr("qyolo_int8_output_scale");
}

// MaxPool (2-D), nearest Resize of H/W, Concat of channels: they only move values, in any layout.
bool is_float_mover(const SpecializedGraph& sg, const Node& n) {
  if (n.outputs.size() != 1 || n.inputs.empty() || n.inputs[0].empty()) return false;
  const Shape& out = sg.values.at(n.outputs[0]).shape;
  if (out.size() != 4) return false;
  for (const auto& in : n.inputs)
    if (!in.empty() && !sg.values.at(in).value && sg.values.at(in).dtype != DataType::kFloat32) return false;
  if (n.op_type == "MaxPool") return sg.values.at(n.inputs[0]).shape.size() == 4;
  if (n.op_type == "Resize" || n.op_type == "Upsample") {
    auto mode = n.attr_string("mode", "nearest");
    auto coord = n.attr_string("coordinate_transformation_mode", "half_pixel");
    const Shape& in = sg.values.at(n.inputs[0]).shape;
    return mode && *mode == "nearest" && coord && *coord != "tf_crop_and_resize" && in.size() == 4 &&
           in[0] == out[0] && in[1] == out[1];
  }
  if (n.op_type == "Concat") {
    auto axis = n.attr_int("axis");
    if (!axis || (*axis != 1 && *axis != -3)) return false;
    for (const auto& in : n.inputs)
      if (in.empty() || sg.values.at(in).shape.size() != 4) return false;
    return true;
  }
  return false;
}

}  // namespace

Result<int> plan_channels_last_float(SpecializedGraph& sg) {
  Graph& g = sg.graph;
  struct Use {
    Node* node;
    size_t slot;
  };
  std::unordered_map<std::string, std::vector<Use>> readers;
  std::unordered_map<std::string, Node*> producer;
  for (Node& n : g.nodes) {
    for (size_t s = 0; s < n.inputs.size(); ++s)
      if (!n.inputs[s].empty()) readers[n.inputs[s]].push_back({&n, s});
    for (const auto& o : n.outputs) producer[o] = &n;
  }
  std::unordered_set<std::string> planned;
  for (Node& n : g.nodes) {
    if (!is_conv(sg, n) && !is_float_mover(sg, n)) continue;
    const std::string& out = n.outputs[0];
    const ValueDesc& d = sg.values.at(out);
    if (g.is_graph_output(out) || d.dtype != DataType::kFloat32 || d.shape.size() != 4 || !readers.count(out))
      continue;
    planned.insert(out);
  }
  auto is_planned = [&](const std::string& v) { return planned.count(v) > 0; };
  // Drop values whose producer or readers cannot take channels-last, until nothing changes.
  for (bool changed = true; changed;) {
    changed = false;
    for (auto it = planned.begin(); it != planned.end();) {
      const Node& p = *producer.at(*it);
      bool ok = true;
      if (p.op_type == "Conv") {
        ok = !p.has_input(3) || is_planned(p.inputs[3]);  // the residual seeds the output
      } else if (p.op_type == "Concat") {
        for (const auto& in : p.inputs) ok = ok && is_planned(in);
      } else {
        ok = is_planned(p.inputs[0]);  // MaxPool, Resize
      }
      for (const Use& u : readers.at(*it)) {
        const Node& r = *u.node;
        if ((is_conv(sg, r) && u.slot == 0) || (r.op_type == kYoloDecodeOp && u.slot == 0) ||
            int8_conv_reads_residual(r, u.slot))
          continue;
        if (is_int8_concat(r)) {  // quantises its float inputs: all channels-last or none
          for (const auto& in : r.inputs)
            ok = ok && (sg.values.at(in).dtype != DataType::kFloat32 || is_planned(in));
          continue;
        }
        const bool follows_output = (is_conv(sg, r) && u.slot == 3) ||
                                    (is_float_mover(sg, r) && (u.slot == 0 || r.op_type == "Concat"));
        ok = ok && follows_output && is_planned(r.outputs[0]);
      }
      if (ok) {
        ++it;
      } else {
        it = planned.erase(it);
        changed = true;
      }
    }
  }
  for (const auto& v : planned) {
    producer.at(v)->attrs[kChannelsLastOutputAttr] = int64_t{1};
    for (const Use& u : readers.at(v))
      if ((u.slot == 0 && (u.node->op_type == "Conv" || u.node->op_type == kYoloDecodeOp)) ||
          is_int8_concat(*u.node))
        u.node->attrs[kChannelsLastInputAttr] = int64_t{1};
      else if (int8_conv_reads_residual(*u.node, u.slot))
        u.node->attrs[kChannelsLastResidualAttr] = int64_t{1};
  }
  return static_cast<int>(planned.size());
}

}  // namespace qyolo
