// Specialisation: given concrete input shapes, infer every value's shape and fold every node
// whose inputs are all constant (this evaluates the Shape/Gather/Range/... subgraphs of dynamic
// exports). The result has concrete shapes everywhere and only runtime nodes left.
#pragma once

#include <map>
#include <string>
#include <unordered_map>

#include "ir/op_registry.h"

namespace qyolo {

struct SpecializedGraph {
  Graph graph;
  std::unordered_map<std::string, ValueDesc> values;  // every live value; constants carry `value`
};

// Checks `input_shapes` against the graph's declared inputs (rank, fixed dims) and errors
// naming the input and dim otherwise.
Result<SpecializedGraph> specialize(const Graph& graph, const std::map<std::string, Shape>& input_shapes);

}  // namespace qyolo
