// Runs a specialised graph on the CPU: one prepared kernel per node. Intermediate values live in
// one arena planned at build (offsets from their lifetimes), so a run allocates only the graph's
// outputs; with an observer (calibration, layer comparison, which may keep the values) every
// value is allocated per run instead.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/cpu_kernel.h"
#include "passes/specialize.h"

namespace qyolo {

// Called for every value a node produces (calibration statistics, layer-wise comparison).
using ValueObserver = std::function<void(const std::string& name, const Tensor& value)>;

class CpuExecutor {
 public:
  static Result<std::unique_ptr<CpuExecutor>> build(SpecializedGraph graph);

  // `inputs` by graph input name; fills `outputs` by graph output name.
  // `step_seconds` (optional) receives each node's wall time, in graph().graph.nodes order.
  Status run(const std::map<std::string, Tensor>& inputs, std::map<std::string, Tensor>& outputs,
             const ValueObserver& observer = nullptr, std::vector<double>* step_seconds = nullptr) const;

  const SpecializedGraph& graph() const { return graph_; }

 private:
  struct Step {
    const Node* node;
    std::unique_ptr<CpuKernel> kernel;
    std::vector<int> input_ids;  // -1 for omitted inputs
    std::vector<int> output_ids;
  };
  SpecializedGraph graph_;
  std::vector<Step> steps_;
  std::vector<std::string> value_names_;
  std::vector<ValueDesc> value_descs_;
  std::vector<int> consumers_;  // per value: number of step inputs reading it
  std::vector<int> input_ids_, output_ids_;
  std::vector<int> constant_ids_;
  Tensor workspace_;                   // shared scratch of all kernels (see CpuKernel::workspace_bytes)
  Tensor arena_;                       // intermediate values (plan_arena)
  std::vector<int64_t> arena_offset_;  // per value: byte offset in arena_, -1 when allocated per run

  // Places every value that a non-aliasing step produces and that no graph output views into
  // arena_, first fit by size over step-index lifetimes.
  void plan_arena();
};

// Evaluates one node on constant inputs (constant folding). `outputs` carry the inferred descs.
Result<std::vector<Tensor>> evaluate_node_cpu(const Node& node, const std::vector<const ValueDesc*>& inputs,
                                              const std::vector<ValueDesc>& outputs);

}  // namespace qyolo
