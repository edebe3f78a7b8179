// Who reads a value, for the graph passes that rewrite producers only when they know every reader.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"

namespace qyolo {

// Indices of the nodes reading `value` (each once, however many of its inputs it is).
std::vector<int> readers_of(const Graph& g, const std::string& value);

}  // namespace qyolo
