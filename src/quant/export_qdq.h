// Explicit quantisation export: writes the ONNX model with QuantizeLinear/DequantizeLinear pairs
// (symmetric int8, zero point 0; per-channel weights on axis 0; per-tensor activations) where
// TensorRT fuses them: on every Conv input and weight, and on both inputs of residual Adds.
// The result is opset >= 13 (per-axis DequantizeLinear); Split/Squeeze/Unsqueeze are upgraded.
#pragma once

#include <map>
#include <string>

#include "qyolo/status.h"

namespace qyolo {

struct QdqExportReport {
  int quantized_activations = 0;
  int quantized_weights = 0;
  int residual_adds = 0;
  int missing_scales = 0;  // conv inputs left in float because the table had no scale
};

Status export_qdq(const std::string& onnx_path, const std::map<std::string, float>& activation_scales,
                  const std::string& out_path, QdqExportReport* report = nullptr);

}  // namespace qyolo
