// `qyolo export-float`: a quantized graph (Q/DQ, or QOperator rewritten at import) turned back into
// a float graph that a calibrator can observe: weights stored as DequantizeLinear(int8 constant)
// become float initializers, activation QuantizeLinear/DequantizeLinear pairs are removed (the
// float value flows on), and the integer bias ONNX Runtime's older quantizer adds to an int8 conv
// output (Add(conv_q, bias_q), same scale) becomes a float bias (scale * bias_q), folded back into
// the Conv.
#pragma once

#include "ir/graph.h"

namespace qyolo {

struct DequantizeReport {
  int weights = 0;         // DequantizeLinear of constants folded into float initializers
  int activation_qdq = 0;  // QuantizeLinear / DequantizeLinear nodes on activations removed
  int integer_biases = 0;  // integer constants added to quantized activations, dequantized
  int conv_biases = 0;     // Conv -> Add(per-channel constant) folded back into the Conv bias
};

// Errors (naming the node) where a quantized value cannot be expressed in float without changing
// meaning: runtime scales (DynamicQuantizeLinear) or integer arithmetic other than the bias add.
Status dequantize_graph(Graph& g, DequantizeReport* report = nullptr);

}  // namespace qyolo
