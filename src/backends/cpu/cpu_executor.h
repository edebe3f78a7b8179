// Runs a specialised graph on the CPU: one prepared kernel per node. Intermediate values live in
// one arena planned at build (offsets from their lifetimes), so a run allocates only the graph's
// outputs (or reuses the caller's); some concats are written in place (place_concats). With an
// observer (calibration, layer comparison, which may keep the values) every value is allocated
// per run instead.
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

  // `inputs` by graph input name; fills `outputs` by graph output name. An entry of `outputs` that
  // already holds a tensor of that output's dtype and shape, with storage no other Tensor shares,
  // is written in place (no allocation and no page faults for a large detect output run after
  // run); any other output gets new storage. On error `outputs` is left as it was.
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
  // Concat in place (place_concats): a placed value is written by its producer straight into its
  // slice of the concat's output `base` (batch item n at byte_offset + n * batch_stride elements);
  // that concat step is elided (its output is complete when it would run).
  struct Placement {
    int base = -1;
    size_t byte_offset = 0;
    int64_t batch_stride = 0;
  };
  std::vector<Placement> placed_;  // per value
  // Row bands (fuse_bands): band_producer_[reader step] = the step whose output it reads band by
  // band (-1: none); that producer does not run on its own (banded_), unless observed.
  std::vector<int> band_producer_;
  std::vector<bool> banded_;
  mutable Tensor band_;                // one band of output rows (scratch of run, as arena_)
  std::vector<bool> elided_;           // per step
  Tensor workspace_;                   // shared scratch of all kernels (see CpuKernel::workspace_bytes)
  Tensor arena_;                       // intermediate values (plan_arena)
  std::vector<int64_t> arena_offset_;  // per value: byte offset in arena_, -1 when allocated per run

  // Places every value that a non-aliasing step produces and that no graph output views into
  // arena_, first fit by size over step-index lifetimes.
  void plan_arena();
  // A Concat along axis 1 whose inputs are each the output (or a reshape view of the output) of a
  // kernel that supports an output batch stride, read by nothing else: each producer writes into
  // its slice of the concat's output and the concat step is elided. In YOLOv5 the three decodes
  // write the detect output directly.
  void place_concats();
  // A producer with row bands (CpuKernel::band_rows) whose output only one band reader reads
  // (CpuKernel::reads_bands; the Detect head conv and its decode): without an observer the
  // reader's step runs both, band by band, through band_ (the output stays in the cache).
  // QYOLO_CPU_BANDS=0 turns it off (the tests compare the two).
  void fuse_bands();
};

// Evaluates one node on constant inputs (constant folding). `outputs` carry the inferred descs.
Result<std::vector<Tensor>> evaluate_node_cpu(const Node& node, const std::vector<const ValueDesc*>& inputs,
                                              const std::vector<ValueDesc>& outputs);

}  // namespace qyolo
