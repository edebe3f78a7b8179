// DequantizeLinear shares QuantizeLinear's attributes and scale layout.
#pragma once

#include "ir/ops/quantize_linear.h"

namespace qyolo {
using DequantizeLinearAttrs = QLinearAttrs;
}  // namespace qyolo
