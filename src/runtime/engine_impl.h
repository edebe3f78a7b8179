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

struct ExecutionContext::Impl {
  const Engine::Impl* engine = nullptr;
  std::shared_ptr<const Engine> keep_alive;
  std::map<Shape, std::unique_ptr<CpuExecutor>> executors;  // one per input shape seen

  Result<CpuExecutor*> executor_for(const Shape& input_shape);
};

// Ultralytics stores class names as a Python dict literal: "{0: 'person', 1: 'bicycle'}".
std::vector<std::string> parse_class_names(const std::string& names_literal);

}  // namespace qyolo
