#include "ir/graph.h"

#include <set>
#include <unordered_map>
#include <unordered_set>

namespace qyolo {

namespace {
template <typename T>
Result<T> get_attr(const Node& node, const std::string& key, const std::optional<T>& dflt,
                   const char* type_name) {
  auto it = node.attrs.find(key);
  if (it == node.attrs.end()) {
    if (dflt) return *dflt;
    return invalid_argument(node.describe() + ": required attribute '" + key + "' is missing");
  }
  if (const T* v = std::get_if<T>(&it->second)) return *v;
  return invalid_argument(node.describe() + ": attribute '" + key + "' is not of type " + type_name);
}
}  // namespace

Result<int64_t> Node::attr_int(const std::string& key, std::optional<int64_t> dflt) const {
  return get_attr<int64_t>(*this, key, dflt, "int");
}
Result<float> Node::attr_float(const std::string& key, std::optional<float> dflt) const {
  return get_attr<float>(*this, key, dflt, "float");
}
Result<std::string> Node::attr_string(const std::string& key, std::optional<std::string> dflt) const {
  return get_attr<std::string>(*this, key, dflt, "string");
}
Result<std::vector<int64_t>> Node::attr_ints(const std::string& key,
                                             std::optional<std::vector<int64_t>> dflt) const {
  return get_attr<std::vector<int64_t>>(*this, key, dflt, "ints");
}
Result<std::vector<float>> Node::attr_floats(const std::string& key,
                                             std::optional<std::vector<float>> dflt) const {
  return get_attr<std::vector<float>>(*this, key, dflt, "floats");
}
Result<Tensor> Node::attr_tensor(const std::string& key) const {
  return get_attr<Tensor>(*this, key, std::nullopt, "tensor");
}

std::string Node::describe() const { return op_type + " node '" + name + "'"; }

std::string ValueInfo::dims_str() const {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += 'x';
    s += dims[i].is_static() ? std::to_string(dims[i].value) : (dims[i].param.empty() ? "?" : dims[i].param);
  }
  return s;
}

const ValueInfo* Graph::find_input(const std::string& name) const {
  for (const auto& v : inputs)
    if (v.name == name) return &v;
  return nullptr;
}

int Graph::producer_of(const std::string& value) const {
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const auto& o : nodes[i].outputs)
      if (o == value) return static_cast<int>(i);
  return -1;
}

int Graph::consumer_count(const std::string& value) const {
  int n = 0;
  for (const auto& node : nodes)
    for (const auto& in : node.inputs)
      if (in == value) ++n;
  if (is_graph_output(value)) ++n;
  return n;
}

bool Graph::is_graph_output(const std::string& value) const {
  for (const auto& o : outputs)
    if (o.name == value) return true;
  return false;
}

Status Graph::toposort() {
  std::unordered_set<std::string> available;
  for (const auto& in : inputs) available.insert(in.name);
  for (const auto& [name, t] : initializers) available.insert(name);
  available.insert("");
  std::vector<Node> sorted;
  sorted.reserve(nodes.size());
  std::vector<bool> placed(nodes.size(), false);
  size_t remaining = nodes.size();
  while (remaining > 0) {
    bool progress = false;
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (placed[i]) continue;
      bool ready = true;
      for (const auto& in : nodes[i].inputs)
        if (!available.count(in)) { ready = false; break; }
      if (!ready) continue;
      for (const auto& o : nodes[i].outputs) available.insert(o);
      sorted.push_back(std::move(nodes[i]));
      placed[i] = true;
      --remaining;
      progress = true;
    }
    if (!progress) {
      for (size_t i = 0; i < nodes.size(); ++i) {
        if (placed[i]) continue;
        for (const auto& in : nodes[i].inputs)
          if (!available.count(in))
            return corrupt(source_path + ": " + nodes[i].describe() + " reads '" + in +
                           "', which no node, input or initializer produces (or the graph has a cycle)");
      }
      return corrupt(source_path + ": graph has a cycle");
    }
  }
  nodes = std::move(sorted);
  for (const auto& o : outputs)
    if (!available.count(o.name)) return corrupt(source_path + ": graph output '" + o.name + "' is never produced");
  return Status::ok();
}

void Graph::remove_dead_nodes() {
  std::unordered_set<std::string> live;
  for (const auto& o : outputs) live.insert(o.name);
  std::vector<bool> keep(nodes.size(), false);
  for (size_t i = nodes.size(); i-- > 0;) {
    bool used = false;
    for (const auto& o : nodes[i].outputs)
      if (live.count(o)) used = true;
    if (!used) continue;
    keep[i] = true;
    for (const auto& in : nodes[i].inputs) live.insert(in);
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (keep[i]) kept.push_back(std::move(nodes[i]));
  nodes = std::move(kept);
  for (auto it = initializers.begin(); it != initializers.end();) {
    if (!live.count(it->first)) it = initializers.erase(it);
    else ++it;
  }
}

}  // namespace qyolo
