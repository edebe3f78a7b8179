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
  // Conv inputs bounded below by construction, quantised as the CPU engine's asymmetric
  // activations do (BuildOptions::asymmetric_activations, src/quant/quant_params.h): SiLU outputs
  // (Mul(x, Sigmoid(x)), lo = -0.2785), Sigmoid/Relu outputs (0), and MaxPool / nearest Resize /
  // Identity / Reshape of them (the input's bound), Concats (the least) and Adds (the sum) get
  // uint8 with a zero point over [lo, 127 * scale] instead of symmetric int8 (the cache's
  // threshold is kept). For ONNX Runtime: TensorRT takes symmetric int8 only, and qyolo runs uint8
  // pairs fake-quantised in float.
  bool asymmetric_activations = false;
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
