// ONNX Runtime as an independent reference at test time: runs scripts/ort_reference.js
// (onnxruntime-node, CPU) on a model and an input .npy and reads its outputs back. Tests skip with a
// message when node or onnxruntime-node is absent (set QYOLO_ORT_NODE_PATH to a node_modules
// holding onnxruntime-node; default ~/.ort-peer/node_modules, as ../shared/bench/ort_cpu_peer.js).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "ir/npy.h"

namespace qyolo::testing {

inline std::string ort_node_path() {
  if (const char* env = std::getenv("QYOLO_ORT_NODE_PATH"); env && *env) return env;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.ort-peer/node_modules";
}

// Empty when ONNX Runtime can run; otherwise why not (the skip message).
inline std::string ort_unavailable_reason() {
  if (std::system("node --version > /dev/null 2>&1") != 0) return "node is not installed";
  if (!std::filesystem::exists(std::filesystem::path(ort_node_path()) / "onnxruntime-node"))
    return "onnxruntime-node is absent from " + ort_node_path() +
           " (see scripts/ort_reference.js; or set QYOLO_ORT_NODE_PATH)";
  return "";
}

inline std::string sanitize_output_name(std::string name) {
  for (char& c : name)
    if (c == '/') c = '_';
  return name;
}

// Runs the model on `input` (float32) in ONNX Runtime; returns the named outputs as float32.
inline Result<std::map<std::string, Tensor>> run_onnxruntime(const std::filesystem::path& model,
                                                             const Tensor& input,
                                                             const std::vector<std::string>& output_names,
                                                             const std::filesystem::path& work_dir) {
  std::filesystem::create_directories(work_dir);
  const auto in_path = work_dir / "ort_input.npy";
  QYOLO_RETURN_IF_ERROR(write_npy(in_path.string(), input));
  const auto prefix = (work_dir / "ort_").string();
  const auto log = work_dir / "ort.log";
  const std::string cmd = "NODE_PATH='" + ort_node_path() + "' node '" + QYOLO_SOURCE_DIR +
                          "/scripts/ort_reference.js' '" + model.string() + "' '" + in_path.string() + "' '" +
                          prefix + "' > '" + log.string() + "' 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::ifstream f(log);
    std::stringstream ss;
    ss << f.rdbuf();
    return internal_error("onnxruntime failed on " + model.string() + ": " + ss.str());
  }
  std::map<std::string, Tensor> out;
  for (const auto& name : output_names) {
    QYOLO_ASSIGN_OR_RETURN(out[name], read_npy(prefix + sanitize_output_name(name) + ".npy"));
  }
  return out;
}

}  // namespace qyolo::testing
