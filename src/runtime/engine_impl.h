// Engine internals shared by the runtime, the calibrator and the CLI.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "backends/cpu/cpu_executor.h"
#include "ir/graph.h"
#include "passes/passes.h"
#include "qyolo/engine.h"

namespace qyolo {

struct Engine::Impl {
  std::string onnx_bytes;  // the model as imported (serialised into engine files)
  Graph graph;             // imported graph (not specialised)
  ModelInfo info;
  BuildOptions options;
  ShapeProfile profile;
  // INT8: activation scales by ONNX tensor name (real = scale * q), from a cache / Q/DQ model.
  std::map<std::string, float> activation_scales;

  // Specialises the graph for one input shape and runs the passes (and quantisation for INT8).
  Result<SpecializedGraph> prepare(const Shape& input_shape, const PassOptions& passes = {}) const;
};

class CudaExecutor;  // src/backends/cuda (builds with CUDA only)

struct ExecutionContext::Impl {
  const Engine::Impl* engine = nullptr;
  std::map<Shape, std::unique_ptr<CpuExecutor>> executors;  // one per input shape seen
  std::map<Shape, std::unique_ptr<CudaExecutor>> cuda_executors;

  ~Impl();
  // CPU executor for a shape (also used for calibration/compare/bench on any engine).
  Result<CpuExecutor*> executor_for(const Shape& input_shape);
  // Runs on the engine's device.
  Status run(const Shape& shape, const std::map<std::string, Tensor>& inputs, std::map<std::string, Tensor>& outputs);
};

// Builds the device executor for a prepared graph (CUDA builds only; otherwise an error).
Result<std::unique_ptr<CudaExecutor>> build_cuda_executor(SpecializedGraph graph, const BuildOptions& options);

// Ultralytics stores class names as a Python dict literal: "{0: 'person', 1: 'bicycle'}".
std::vector<std::string> parse_class_names(const std::string& names_literal);

}  // namespace qyolo
