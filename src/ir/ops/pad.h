// Pad: constant / reflect / edge / wrap padding (negative pads crop). Pads are the `pads`
// attribute before opset 11 and a constant input from opset 11 (with optional axes from opset 18).
#pragma once

#include <vector>

#include "ir/op_registry.h"

namespace qyolo {

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

struct PadPlan {
  PadMode mode = PadMode::kConstant;
  std::vector<int64_t> begin, end;  // per dim of the input
  Shape out;
};

// `pads` and `axes` already read (attribute or constant input); validates against the input shape.
Result<PadPlan> plan_pad(const Node& node, const Shape& in, const std::vector<int64_t>& pads,
                         std::vector<int64_t> axes);

}  // namespace qyolo
