// Operator definitions: typed validation and shape inference, one per op stem (src/ir/ops/<stem>.cpp).
// Shape inference runs on concrete shapes: qyolo specialises a graph for known input shapes
// (dynamic models are re-specialised per input shape), so every dim here is a real size.
// Small int tensors (shape arithmetic) carry their values, so Reshape/Expand/Range can infer.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"

namespace qyolo {

struct ValueDesc {
  DataType dtype = DataType::kFloat32;
  Shape shape;
  std::optional<Tensor> value;  // set when the value is a constant (initializer or folded)
};

struct InferContext {
  const Node& node;
  int64_t opset;
  std::vector<const ValueDesc*> inputs;  // nullptr for omitted optional inputs
  std::vector<ValueDesc> outputs;        // one per node output, filled by the infer function

  const ValueDesc* input(size_t i) const { return i < inputs.size() ? inputs[i] : nullptr; }
  // The constant value of input i as int64s; an error naming the node if it is not constant.
  Result<std::vector<int64_t>> const_ints(size_t i) const;
  Status error(const std::string& what) const { return invalid_argument(node.describe() + ": " + what); }
};

using InferFn = Status (*)(InferContext&);

struct OpDef {
  std::string_view op_type;
  std::string_view stem;
  int min_inputs, max_inputs, min_outputs, max_outputs;
  InferFn infer;
};

// nullptr when the op is not in src/ir/ops.def.
const OpDef* find_op(std::string_view op_type);
std::span<const OpDef> all_ops();

// Checks arity against ops.def, then runs the op's inference. Errors name the node.
Status infer_node(InferContext& ctx);

// numpy-style broadcast of two shapes; error text names the node.
Result<Shape> broadcast_shapes(const Shape& a, const Shape& b);
// Normalises a possibly negative axis for a given rank; error if out of range.
Result<int64_t> normalize_axis(int64_t axis, int64_t rank);
// A shape as [outer, n, inner] around a normalised axis (n = its size): how the ops that work along
// one axis (ArgMax, TopK, Softmax) see their input.
struct AxisSplit {
  int64_t outer = 1, n = 1, inner = 1;
};
AxisSplit split_at_axis(const Shape& shape, int64_t axis);

// Declarations of every stem's infer function: Status infer_<stem>(InferContext&).
#define QYOLO_OP(name, stem, ...) Status infer_##stem(InferContext& ctx);
#include "ir/ops.def"
#undef QYOLO_OP

}  // namespace qyolo
