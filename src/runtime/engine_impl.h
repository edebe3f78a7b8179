// Engine internals shared by the runtime, the calibrator and the CLI.
#pragma once

#include <array>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/cpu/cpu_executor.h"
#include "ir/graph.h"
#include "ir/precision_plan.h"
#include "passes/passes.h"
#include "qyolo/engine.h"

namespace qyolo {

// Tactic choices of the CUDA backend by problem key (CudaBuildOptions::tactics).
using TacticMap = std::map<std::string, std::vector<int64_t>>;

// The GPU a cuda engine was built on (serialised into engine files, checked on load).
struct CudaTarget {
  std::string gpu_name;  // cudaDeviceProp::name, e.g. "NVIDIA H100 80GB HBM3"
  int cc_major = 0, cc_minor = 0;
  int cudnn_version = 0;  // cudnnGetVersion(), e.g. 90300
  // "NVIDIA H100 80GB HBM3 (sm_90)"; with_cudnn adds ", cuDNN 9.3.0".
  std::string str(bool with_cudnn = false) const;
  bool same_gpu(const CudaTarget& o) const {
    return gpu_name == o.gpu_name && cc_major == o.cc_major && cc_minor == o.cc_minor;
  }
};
// The current CUDA device (errors without a device, or in a build without CUDA).
Result<CudaTarget> current_cuda_target();
// "9.3.0" from cudnnGetVersion()'s number.
std::string cudnn_version_str(int version);

// The one build mode that BuildOptions' precision fields name together (the CLI's TensorRT-style
// spellings: --fp16, --int8, --int8 --fp16, --int8 --fp16 --all-int8). Engine internals decide by
// it instead of the three fields.
enum class BuildMode { kFp32, kFp16, kInt8, kInt8Fp16Auto, kAllInt8Fp16 };
// The mode of options that finish_build accepted (it rejects combinations that name none).
BuildMode build_mode(const BuildOptions& options);
// "fp32", "fp16", "int8", "int8+fp16 auto" (per-layer choice), "all-int8 (+fp16)".
const char* build_mode_name(BuildMode mode);
// The `qyolo build` flags of the mode: "", " --fp16", " --int8", " --int8 --fp16", " --int8 --fp16 --all-int8".
const char* build_mode_flags(BuildMode mode);
inline bool is_int8(BuildMode m) {
  return m == BuildMode::kInt8 || m == BuildMode::kInt8Fp16Auto || m == BuildMode::kAllInt8Fp16;
}
// FP16 for everything not INT8 (on cuda).
inline bool is_fp16_elsewhere(BuildMode m) {
  return m == BuildMode::kFp16 || m == BuildMode::kInt8Fp16Auto || m == BuildMode::kAllInt8Fp16;
}

// FNV-1a of an engine file's payload (everything before the trailing 8-byte checksum).
uint64_t engine_file_checksum(const std::string& payload);
constexpr uint32_t kEngineFormatVersion = 4;

// An engine file's fields, read and checked (layout in engine.cpp) but not built into an engine.
struct EngineFileContents {
  std::string source;
  BuildOptions options;  // options.profile set
  ShapeProfile profile;
  std::map<std::string, float> scales;
  std::map<std::string, Tensor> weights;  // weight overrides (format 3)
  CudaTarget target;
  TacticMap tactics;
  PrecisionPlan plan;  // format 4
  std::string onnx_bytes;
};
// Parses a whole engine file (payload + checksum); `path` names it in errors. Engine::load is
// this plus building the model; fuzz/fuzz_engine_file.cpp calls it directly.
Result<EngineFileContents> parse_engine_file(std::string file_bytes, const std::string& path);
// The bytes of an engine file (payload + checksum) holding `c`; Engine::save writes these.
std::string serialize_engine_file(const EngineFileContents& c);

struct Engine::Impl {
  std::string onnx_bytes;  // the model as imported (serialised into engine files)
  Graph graph;             // imported graph (not specialised)
  ModelInfo info;
  BuildOptions options;
  ShapeProfile profile;
  // INT8: activation scales by ONNX tensor name (real = scale * q), from a cache / Q/DQ model.
  std::map<std::string, float> activation_scales;
  // Initializers of the prepared graph replaced after the passes (src/quant/weight_overrides.h).
  std::map<std::string, Tensor> weight_overrides;
  // Cuda engines: the GPU it was built on, and whether the stored tactics were dropped on load
  // (another cuDNN version: the tactics are timed again; load_note says so).
  CudaTarget cuda_target;
  std::string load_note;
  // Cuda INT8 engines: what the build-time executor (at the opt shape) runs in INT8, for reports
  // ("96% of the conv MACs in INT8 at 1x3x640x640"): --int8 --fp16 chooses per layer.
  std::string build_note;
  // Which node runs in which precision (src/ir/precision_plan.h): made by a new build (rules, then
  // on cuda the executor's choice at the opt shape), read from the engine file on load; every
  // prepare() lowers it as it is. plan_origin names where it came from in errors (the engine file
  // or the model); plan_summary counts it at the opt shape ("60 convs: 57 int8, 3 fp16 (...)").
  PrecisionPlan plan;
  std::string plan_origin;
  std::string plan_summary;

  // Cuda engines: tactics from the build-time executor (or the engine file), merged with those
  // of executors built later for other shapes; every CudaExecutor of this engine starts from them.
  TacticMap tactics() const;
  void merge_tactics(const TacticMap& more) const;
  void set_tactics(TacticMap t) {
    std::lock_guard<std::mutex> lock(tactics_mu_);
    tactics_ = std::move(t);
  }

  // Specialises the graph for one input shape and runs the passes (and lowers the precision plan
  // for INT8).
  Result<SpecializedGraph> prepare(const Shape& input_shape, const PassOptions& passes = {}) const;
  // The same without the precision plan: the float graph the plan is made on.
  Result<SpecializedGraph> prepare_float(const Shape& input_shape, const PassOptions& passes = {}) const;

 private:
  mutable std::mutex tactics_mu_;
  mutable TacticMap tactics_;
};

class CudaExecutor;  // src/backends/cuda (builds with CUDA only)

struct ExecutionContext::Impl {
  const Engine::Impl* engine = nullptr;
  std::map<Shape, std::unique_ptr<CpuExecutor>> executors;  // one per input shape seen
  std::map<Shape, std::unique_ptr<CudaExecutor>> cuda_executors;
  Shape input_shape;  // set_input_shape(); the only shape of a static engine

  ~Impl();
  // CPU executor for a shape (also used for calibration/compare/bench on any engine).
  Result<CpuExecutor*> executor_for(const Shape& input_shape);
  // CUDA executor for a shape (built on first use, cached; errors outside the profile or
  // on a CPU engine). Device-pointer enqueue, profiling and the GPU detector go through it.
  Result<CudaExecutor*> cuda_executor_for(const Shape& input_shape);
  // Runs on the engine's device.
  Status run(const Shape& shape, const std::map<std::string, Tensor>& inputs, std::map<std::string, Tensor>& outputs);
};

// Engine::build with weight overrides given in memory (options.weights_file is then ignored):
// diagnostics and weight refinement try candidates without writing files.
Result<std::shared_ptr<const Engine>> build_engine_with_weights(const std::string& onnx_path,
                                                                const BuildOptions& options,
                                                                std::map<std::string, Tensor> weights);

// Builds the device executor for a prepared graph (CUDA builds only; otherwise an error),
// starting from `tactics` (may be null) instead of timing the problems it names.
// With `plan`, the executor lowers the plan's conv precisions as they are (no per-layer choice).
Result<std::unique_ptr<CudaExecutor>> build_cuda_executor(SpecializedGraph graph, const BuildOptions& options,
                                                          const TacticMap* tactics = nullptr,
                                                          const PrecisionPlan* plan = nullptr);

// The error for an input shape outside the engine's profile: the input, the shape, the profile.
Status outside_profile(const std::string& input, const Shape& shape, const ShapeProfile& profile);

// Ultralytics' `imgsz` metadata ("[640, 640]", or one number): (H, W); nullopt if unreadable.
std::optional<std::array<int64_t, 2>> parse_imgsz_metadata(const std::string& text);

// Ultralytics stores class names as a Python dict literal: "{0: 'person', 1: 'bicycle'}".
std::vector<std::string> parse_class_names(const std::string& names_literal);

}  // namespace qyolo
