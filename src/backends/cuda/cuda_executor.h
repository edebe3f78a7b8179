// Runs a specialised graph on one CUDA device: one prepared CudaKernel per node (plus the
// layout/dtype conversions the executor inserts), activations in one arena with liveness-based
// offsets, reshape-family outputs aliasing their input, one shared workspace.
//
// Bindings: every graph input and output is float32 (or its ONNX dtype if not float), row-major
// (NCHW) in device memory owned by the caller; in fp16 mode the executor converts at the edges.
#pragma once

#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/cuda/cuda_kernel.h"
#include "passes/specialize.h"

namespace qyolo {

struct CudaBinding {
  std::string name;
  DataType dtype = DataType::kFloat32;
  Shape shape;
  size_t nbytes() const { return static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype); }
};

// The chip's measured ceilings for a profile's roofline (bench_gpu measures them in the same run);
// zeros: unknown.
struct CudaRoofline {
  double gbs = 0, int8_tops = 0, fp16_tflops = 0;
};

class CudaExecutor {
 public:
  static Result<std::unique_ptr<CudaExecutor>> build(SpecializedGraph graph, const CudaBuildOptions& options = {});
  ~CudaExecutor();
  CudaExecutor(const CudaExecutor&) = delete;
  CudaExecutor& operator=(const CudaExecutor&) = delete;

  // Launches the whole graph on `stream`: device_inputs in inputs() order, device_outputs in
  // outputs() order. Never allocates or synchronises; one enqueue at a time per executor (the
  // arena and workspace are shared). Capturable into a CUDA graph.
  Status enqueue(const std::vector<const void*>& device_inputs, const std::vector<void*>& device_outputs,
                 cudaStream_t stream);

  // Host convenience: copies inputs in, runs on the executor's stream, waits, copies outputs out.
  Status run(const std::map<std::string, Tensor>& inputs, std::map<std::string, Tensor>& outputs);

  const std::vector<CudaBinding>& inputs() const { return inputs_; }
  const std::vector<CudaBinding>& outputs() const { return outputs_; }
  const SpecializedGraph& graph() const { return graph_; }
  const CudaBuildOptions& options() const { return options_; }
  size_t arena_bytes() const { return arena_.size(); }
  size_t workspace_bytes() const { return workspace_.size(); }
  size_t weight_bytes() const { return weight_bytes_; }
  // Tactics chosen (or reused) by this build, by problem key (see CudaBuildOptions::tactics).
  const std::map<std::string, std::vector<int64_t>>& tactics() const { return tactics_; }
  int num_steps() const { return static_cast<int>(steps_.size()); }
  // The precision every Conv runs in, by node name: int8 on the INT8 kernel, else the float
  // precision of this build (what an engine's precision plan records).
  const std::map<std::string, NodePrecision>& conv_precisions() const { return conv_precisions_; }
  // Programmatic dependent launch of our kernels (CudaBuildOptions::programmatic_launch): on only
  // where the device has it (sm_90+). A run-time setting that applies from the next enqueue on
  // (a CUDA graph keeps the launches it captured); not while another thread enqueues.
  bool programmatic_launch() const { return programmatic_; }
  void set_programmatic_launch(bool on) { programmatic_ = on && programmatic_capable_; }
  // Work of one enqueue, for achieved-throughput reports: convolution multiply-accumulates, of
  // which on the INT8 kernel, and the bytes every launched step reads and writes (activations,
  // bindings and weights; aliases and unwritten values excluded).
  struct Cost {
    double conv_macs = 0, int8_macs = 0, bytes = 0;
  };
  Cost cost() const;
  using Roofline = CudaRoofline;
  // Profiling: runs the graph `iters` times timing every step with events; returns one line per
  // step, sorted by time, with its share (allocates events; not for the hot path). With ceilings,
  // each step also gets its roofline floor, max(bytes / bandwidth, 2 x MACs / tensor peak), and
  // the report ends with the sum of the floors: what this data flow could reach at best.
  Result<std::string> profile(const std::vector<const void*>& device_inputs, const std::vector<void*>& device_outputs,
                              cudaStream_t stream, int iters = 10, const Roofline& roofline = {});
  // Test hook: fills the activation arena with `byte` (synchronous), so that values a kernel
  // fails to write show up as garbage (0xFF: NaN in float and half).
  Status debug_fill_arena(int byte);
  // One line per step: node, op, output dtype/layout/shape, kernel info.
  std::string summary() const;

 private:
  CudaExecutor() = default;
  struct Impl;
  friend struct Impl;
  // --int8 --fp16: which assignment of the INT8-eligible convs a build uses: the cost model's
  // choice, every one in FP16 or every one in INT8 (the engine-level check in build()), recorded
  // as tactic "engine-precision:" (executors built without a plan reuse it); kPlan: the one
  // CudaBuildOptions::plan gives.
  enum class PrecisionVariant { kModelled = 0, kAllFp16 = 1, kAllInt8 = 2, kPlan = 3 };
  static Result<std::unique_ptr<CudaExecutor>> build_variant(SpecializedGraph graph, const CudaBuildOptions& options,
                                                              PrecisionVariant variant);
  // Mean time of one enqueue replayed as a CUDA graph, on zeroed bindings (build-time choice).
  Result<float> time_replay(int iters);

  enum class Storage : uint8_t { kArena, kInput, kOutput, kConstant, kAlias, kNone };
  struct Value {
    std::string name;
    cuda::TensorInfo info;
    Storage storage = Storage::kNone;
    size_t offset = 0;    // arena offset
    int binding = -1;     // input/output index
    int alias_of = -1;    // value id
    int constant = -1;    // index into constants_
    size_t view_offset = 0;  // kAlias slices (concat in place): bytes into alias_of's storage
  };
  struct Step {
    const Node* node = nullptr;  // nullptr for executor-inserted conversions
    std::string label;
    std::unique_ptr<cuda::CudaKernel> kernel;
    std::vector<int> inputs;   // value ids (-1: omitted or host parameter)
    std::vector<int> outputs;  // value ids
    bool alias = false;        // no launch: output aliases input
    float quantize_scale = 0;  // > 0: an executor-inserted quantize step (INT8 conv input)
    bool int8 = false;         // a conv on the INT8 kernel
    // Concurrent branches (Impl::assign_streams): a side step waits for fork event `wait_fork`
    // on the side stream and records join event `record_join` after it; main steps record fork
    // event `record_fork` after them and wait for `wait_joins` before them.
    bool side = false;
    int wait_fork = -1, record_join = -1, record_fork = -1;
    std::vector<int> wait_joins;
  };

  // Multiply-accumulates of a Conv step (0 for other steps).
  double conv_macs(const Step& s) const;
  // Bytes a step reads and writes: its inputs, written outputs and (convs) weights.
  double step_bytes(const Step& s) const;

  // The handle and stream outlive the kernels (members are destroyed in reverse order).
  cuda::CudnnHandle cudnn_;
  cuda::CublasLtHandle cublaslt_;
  cuda::Stream stream_;
  SpecializedGraph graph_;
  CudaBuildOptions options_;
  std::vector<Value> values_;
  std::vector<Step> steps_;
  std::vector<CudaBinding> inputs_, outputs_;
  std::vector<int> input_values_, output_values_;
  // Concat in place: values that are slices of another value's storage (resolved per enqueue,
  // after the bindings, since the base may be an output binding).
  std::vector<int> slices_;
  std::vector<cuda::DeviceBuffer> constants_;
  cuda::DeviceBuffer arena_, workspace_;
  // Concurrent branches: the side stream, its own workspace, and the events that fork it from and
  // join it back into the enqueue stream (fork events recorded before the first step, join events
  // waited after the last: branches that start at the inputs or that nothing reads).
  cuda::Stream side_stream_;
  cuda::DeviceBuffer side_workspace_;
  std::vector<cuda::Event> fork_events_, join_events_;
  std::vector<int> start_forks_, end_joins_;
  size_t weight_bytes_ = 0;
  // Our kernels launch programmatically (options_.programmatic_launch on an sm_90+ device).
  bool programmatic_ = false, programmatic_capable_ = false;
  std::map<std::string, std::vector<int64_t>> tactics_;
  std::map<std::string, NodePrecision> conv_precisions_;
  std::string precision_note_;  // --int8 --fp16: the per-layer choice's modelled times (summary)
  // Per-enqueue pointer table, sized at build (enqueue does not allocate).
  std::vector<void*> ptrs_;
  std::vector<const void*> in_scratch_;
  std::vector<void*> out_scratch_;
};

}  // namespace qyolo
