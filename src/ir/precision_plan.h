// The precision plan of an engine: which nodes run in which precision, and which tensors are held
// quantised with which scale. One plan per engine, made once (src/quant/precision_plan_pass.h:
// rules from the build options and the calibrated scales; on cuda then refined by the backend's
// timing), stored as its own section of the engine file, and lowered by the backends as it is.
//
//   nodes:   every Conv of the prepared graph (precision fp32 / fp16 / int8), and the
//            DequantizeLinear nodes of a Q/DQ model whose pair is bypassed (fp32). Nodes not
//            listed run at the plan's float precision (fp32, or fp16 on cuda fp16 builds).
//   tensors: each tensor an INT8 conv reads quantised (its input, or its fused residual), with the
//            scale it is quantised with (real = scale * q, src/quant/quant_params.h), and the
//            values the CPU backend keeps int8 between layers (storage int8); storage says what
//            is held between layers (int8, or the plan's float precision). A tensor's zero point
//            makes its grid asymmetric (CPU plans with asymmetric activations).
// Names are those of the prepared graph (after the graph passes), the same at every input shape.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "qyolo/status.h"
#include "qyolo/tensor.h"

namespace qyolo {

enum class NodePrecision : uint8_t { kFp32 = 0, kFp16 = 1, kInt8 = 2 };
const char* node_precision_name(NodePrecision p);

struct TensorPlan {
  DataType storage = DataType::kFloat32;  // kFloat32, kFloat16 or kInt8
  float scale = 0.f;                      // > 0: read quantised with this scale; 0: never quantised
  // real = scale * (q - zero_point) (src/quant/quant_params.h); 0: the symmetric grid. Non-zero
  // only in CPU INT8 plans with asymmetric activations.
  int32_t zero_point = 0;
  bool operator==(const TensorPlan&) const = default;
};

struct PrecisionPlan {
  NodePrecision float_precision = NodePrecision::kFp32;  // nodes not listed
  std::map<std::string, NodePrecision> nodes;
  std::map<std::string, TensorPlan> tensors;

  // The node's precision: its entry, else float_precision.
  NodePrecision precision_of(const std::string& node) const;
  // The tensor's quantisation scale, 0 when it has none.
  float scale_of(const std::string& tensor) const;
  bool operator==(const PrecisionPlan&) const = default;
};

// Bytes of the engine file's plan section (layout in precision_plan.cpp).
std::string serialize_precision_plan(const PrecisionPlan& plan);
// Reads a plan section; `where` names it in errors ("engine file 'a.qengine'"), as does the node
// or tensor at fault.
Result<PrecisionPlan> parse_precision_plan(const std::string& bytes, const std::string& where);

// One line per node entry ("node  <name>  int8"), then per tensor entry
// ("tensor  <name>  int8  scale 0.0123[  zero point -127]"), sorted by name.
std::string format_precision_plan(const PrecisionPlan& plan);

}  // namespace qyolo
