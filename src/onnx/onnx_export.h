// qyolo IR -> ONNX file (the inverse of onnx_import for the graphs qyolo holds): nodes with their
// attributes, initializers as raw_data, inputs/outputs with symbolic dims, opset and metadata.
#pragma once

#include <string>

#include "ir/graph.h"

namespace qyolo {

// Serialised ModelProto bytes.
Result<std::string> onnx_bytes_from_graph(const Graph& g, const std::string& producer);
// Writes atomically (path + ".tmp", then renamed).
Status write_onnx(const Graph& g, const std::string& path, const std::string& producer);

}  // namespace qyolo
