#include "passes/graph_readers.h"

#include <algorithm>

namespace qyolo {

std::vector<int> readers_of(const Graph& g, const std::string& value) {
  std::vector<int> out;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (std::find(g.nodes[i].inputs.begin(), g.nodes[i].inputs.end(), value) != g.nodes[i].inputs.end())
      out.push_back(static_cast<int>(i));
  return out;
}

}  // namespace qyolo
