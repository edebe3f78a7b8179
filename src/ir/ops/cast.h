// Cast: the 'to' attribute (an ONNX TensorProto element type).
#pragma once

#include "ir/graph.h"

namespace qyolo {

// ONNX TensorProto.DataType enum value -> qyolo dtype; unsupported for types qyolo does not handle.
Result<DataType> dtype_from_onnx_enum(int64_t onnx_type);

struct CastAttrs {
  DataType to = DataType::kFloat32;

  static Result<CastAttrs> parse(const Node& node, int64_t opset);
};

}  // namespace qyolo
