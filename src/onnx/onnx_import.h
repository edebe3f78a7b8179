// ONNX -> qyolo IR. Reads the protobuf (external data included), converts initializers and
// Constant nodes, records symbolic dims, and rejects ops outside src/ir/ops.def with the node name.
#pragma once

#include <string>

#include "ir/graph.h"

namespace onnx {
class TensorProto;
}

namespace qyolo {

struct ImportOptions {
  int min_opset = 1;
  int max_opset = 21;
};

Result<Graph> import_onnx(const std::string& path, const ImportOptions& options = {});
// Parses an in-memory model (tests); `origin` is used in error messages, `base_dir` for external data.
Result<Graph> import_onnx_bytes(const std::string& bytes, const std::string& origin, const std::string& base_dir,
                                const ImportOptions& options = {});

// TensorProto -> Tensor (raw_data, typed fields, or external data relative to base_dir).
Result<Tensor> tensor_from_proto(const onnx::TensorProto& proto, const std::string& base_dir);
// Reads a serialized TensorProto file (the ONNX backend test data sets' input_0.pb ...).
Result<Tensor> read_tensor_pb(const std::string& path);

}  // namespace qyolo
