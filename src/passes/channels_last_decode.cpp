#include <algorithm>
#include <unordered_map>

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
