// qyolo IR: a graph of named values (tensors) and nodes, imported from ONNX.
// Values are identified by their ONNX names; initializers hold constant tensors.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "qyolo/status.h"
#include "qyolo/tensor.h"

namespace qyolo {

using AttrValue = std::variant<int64_t, float, std::string, std::vector<int64_t>, std::vector<float>,
                               std::vector<std::string>, Tensor>;

class Node {
 public:
  std::string name;     // unique (import names unnamed nodes "<op>_<index>")
  std::string op_type;  // ONNX op type, e.g. "Conv"
  std::string domain;   // "" for ai.onnx
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;
  std::map<std::string, AttrValue> attrs;

  bool has_attr(const std::string& key) const { return attrs.count(key) != 0; }
  // Typed getters: the default when absent, an error when present with the wrong type.
  Result<int64_t> attr_int(const std::string& key, std::optional<int64_t> dflt = std::nullopt) const;
  Result<float> attr_float(const std::string& key, std::optional<float> dflt = std::nullopt) const;
  Result<std::string> attr_string(const std::string& key, std::optional<std::string> dflt = std::nullopt) const;
  Result<std::vector<int64_t>> attr_ints(const std::string& key,
                                         std::optional<std::vector<int64_t>> dflt = std::nullopt) const;
  Result<std::vector<float>> attr_floats(const std::string& key,
                                         std::optional<std::vector<float>> dflt = std::nullopt) const;
  Result<Tensor> attr_tensor(const std::string& key) const;

  // "Conv node '/model.0/conv/Conv'" — prefix for error messages.
  std::string describe() const;
  bool has_input(size_t i) const { return i < inputs.size() && !inputs[i].empty(); }
};

// A graph input/output dimension: a fixed size, or a symbolic name ("batch") with value -1.
struct Dim {
  int64_t value = -1;
  std::string param;
  bool is_static() const { return value >= 0; }
};

struct ValueInfo {
  std::string name;
  DataType dtype = DataType::kFloat32;
  std::vector<Dim> dims;
  std::string dims_str() const;  // "batchx3x640x640"
};

struct Graph {
  std::string source_path;  // the ONNX file (for error messages)
  int64_t opset = 0;
  std::vector<ValueInfo> inputs;   // real inputs (initializers excluded)
  std::vector<ValueInfo> outputs;
  std::vector<Node> nodes;         // topologically sorted
  std::map<std::string, Tensor> initializers;
  std::map<std::string, std::string> metadata;  // ONNX metadata_props (ultralytics: names, stride)

  const ValueInfo* find_input(const std::string& name) const;
  // Index of the node producing `value`, or -1 (graph input / initializer / absent).
  int producer_of(const std::string& value) const;
  // Number of nodes (and graph outputs) consuming `value`.
  int consumer_count(const std::string& value) const;
  bool is_graph_output(const std::string& value) const;
  // Sorts nodes topologically; errors on cycles or values nobody produces.
  Status toposort();
  // Removes nodes whose outputs reach no graph output; drops unused initializers.
  void remove_dead_nodes();
};

}  // namespace qyolo
