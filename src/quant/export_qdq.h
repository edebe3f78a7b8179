// Explicit quantisation export: writes the ONNX model with QuantizeLinear/DequantizeLinear pairs
// (symmetric int8, zero point 0; per-channel weights on axis 0; per-tensor activations) where
// TensorRT fuses them: on every Conv input and weight, and on both inputs of residual Adds.
// The result is opset >= 13 (per-axis DequantizeLinear); Split/Squeeze/Unsqueeze are upgraded.
#pragma once

#include <map>
#include <string>

#include "qyolo/status.h"

namespace qyolo {

struct QdqExportOptions {
  // Activations with a lower bound here (activation_lower_bounds of the imported model,
  // src/quant/precision_plan_pass.h: SiLU outputs -0.2785 and what keeps or combines them) are
  // quantised as the CPU engine's asymmetric activations are (src/quant/quant_params.h): uint8 with
  // a zero point over [bound, 127 * scale] instead of symmetric int8 (the cache's threshold is
  // kept). For ONNX Runtime; empty (the default): symmetric int8 throughout, as TensorRT takes it.
  // qyolo runs uint8 pairs fake-quantised in float.
  std::map<std::string, double> lower_bounds;
};

struct QdqExportReport {
  int quantized_activations = 0;
  int asymmetric_activations = 0;  // of those, uint8 with a zero point (asymmetric_silu)
  int quantized_weights = 0;
  int residual_adds = 0;
  int missing_scales = 0;  // conv inputs left in float because the table had no scale
};

Status export_qdq(const std::string& onnx_path, const std::map<std::string, float>& activation_scales,
                  const std::string& out_path, QdqExportReport* report = nullptr,
                  const QdqExportOptions& options = {});

}  // namespace qyolo
