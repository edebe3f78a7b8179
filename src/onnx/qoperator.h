// ONNX Runtime's operator-form quantized models (QOperator: QLinearConv, QLinearMatMul, the
// com.microsoft QLinearAdd/Mul/Sigmoid/Concat/GlobalAveragePool, ConvInteger, MatMulInteger) are
// imported by rewriting each such node into DequantizeLinear -> the float op -> QuantizeLinear.
// The result is an ordinary Q/DQ graph: it runs through the same path as Q/DQ models (fake-quant in
// float, or INT8 convs where quantize_graph folds a symmetric int8 Q->DQ pair), and qyolo needs no
// kernel per quantized op. u8 and s8, per-tensor and per-channel (weights on axis 0, QLinearMatMul's
// B per column) are covered by DequantizeLinear's own per-axis support.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "ir/graph.h"

namespace qyolo {

struct QOperatorOp {
  std::string_view domain, op_type, float_op;  // float_op: what the rewrite runs between DQ and Q
};
std::span<const QOperatorOp> qoperator_ops();

// True for the op types (with their domain: "" or "com.microsoft") that rewrite_qoperator expands.
bool is_qoperator(std::string_view op_type, std::string_view domain);

// Appends the float expansion of `node` to g.nodes (and the few constants it needs, e.g. a bias
// scale = x_scale * w_scale, to g.initializers). The float op keeps the node's name, so errors and
// --float-layers still name the original node. `where` prefixes error messages.
Status rewrite_qoperator(const Node& node, Graph& g, const std::string& where);

}  // namespace qyolo
