#include "onnx/qoperator.h"

#include <algorithm>

namespace qyolo {

namespace {

constexpr int64_t kOnnxInt32 = 6;  // TensorProto.INT32, Cast's `to`

struct Rewriter {
  const Node& node;
  Graph& g;
  std::string where;
  int dq_count = 0;

  const std::string& in(size_t i) const {
    static const std::string kNone;
    return i < node.inputs.size() ? node.inputs[i] : kNone;
  }
  const Tensor* initializer(const std::string& name) const {
    auto it = g.initializers.find(name);
    return it == g.initializers.end() ? nullptr : &it->second;
  }
  Status error(const std::string& what) const { return unsupported(where + ": " + what); }

  std::string add_initializer(const std::string& suffix, Tensor t) {
    std::string name = node.name + "/" + suffix;
    g.initializers[name] = std::move(t);
    return name;
  }

  // DequantizeLinear(x, scale, zp) -> "<node>/<tag>_dequantized". `axis` matters for per-axis scales.
  std::string dequantize(const std::string& x, const std::string& scale, const std::string& zp,
                         const std::string& tag, int64_t axis = 1) {
    Node dq;
    dq.name = node.name + "/DequantizeLinear_" + std::to_string(dq_count++);
    dq.op_type = "DequantizeLinear";
    dq.inputs = {x, scale};
    if (!zp.empty()) dq.inputs.push_back(zp);
    dq.outputs = {node.name + "/" + tag + "_dequantized"};
    dq.attrs["axis"] = axis;
    g.nodes.push_back(std::move(dq));
    return g.nodes.back().outputs[0];
  }

  // The float op: the original node's name and attributes (minus `drop`), new op type and inputs.
  std::string float_op(const std::string& op_type, std::vector<std::string> inputs,
                       std::initializer_list<const char*> drop = {}) {
    Node f;
    f.name = node.name;
    f.op_type = op_type;
    f.inputs = std::move(inputs);
    f.outputs = {node.name + "/float_output"};
    f.attrs = node.attrs;
    for (const char* k : drop) f.attrs.erase(k);
    g.nodes.push_back(std::move(f));
    return g.nodes.back().outputs[0];
  }

  // QuantizeLinear(y, scale, zp) -> the node's original output. Without a zero point the output type
  // would default to uint8; ONNX Runtime's contrib ops take it from the input's zero point instead.
  Status quantize(const std::string& y, const std::string& scale, std::string zp,
                  const std::string& like_zp) {
    if (zp.empty()) {
      const Tensor* like = like_zp.empty() ? nullptr : initializer(like_zp);
      if (like == nullptr)
        return error(
            "output zero point omitted and the input's is not a constant: the output type is unknown");
      zp = add_initializer("output_zero_point", Tensor(like->dtype(), {}));
    }
    Node q;
    q.name = node.name + "/QuantizeLinear";
    q.op_type = "QuantizeLinear";
    q.inputs = {y, scale, zp};
    q.outputs = {node.outputs.at(0)};
    q.attrs["axis"] = int64_t{1};
    g.nodes.push_back(std::move(q));
    return Status::ok();
  }

  // A weight zero point given per tensor while its scale is per channel (allowed by QLinearConv):
  // DequantizeLinear wants both the same shape, so the zero point is repeated per channel.
  Result<std::string> zero_point_like_scale(const std::string& zp, const std::string& scale) {
    const Tensor* z = initializer(zp);
    const Tensor* s = initializer(scale);
    if (zp.empty() || z == nullptr || s == nullptr || z->shape() == s->shape()) return zp;
    if (z->numel() != 1)
      return error("zero point '" + zp + "' (" + shape_str(z->shape()) + ") does not match its scale '" +
                   scale + "' (" + shape_str(s->shape()) + ")");
    Tensor per(z->dtype(), s->shape());
    const size_t es = dtype_size(z->dtype());
    for (int64_t i = 0; i < per.numel(); ++i)
      std::copy_n(static_cast<const std::byte*>(z->raw()), es, static_cast<std::byte*>(per.raw()) + i * es);
    return add_initializer("weight_zero_point", std::move(per));
  }

  // Per-channel bias scale x_scale * w_scale[c] of QLinearConv's int32 bias.
  Result<std::string> bias_scale() {
    const Tensor* xs = initializer(in(1));
    const Tensor* ws = initializer(in(4));
    if (xs == nullptr || ws == nullptr || xs->numel() != 1 || xs->dtype() != DataType::kFloat32 ||
        ws->dtype() != DataType::kFloat32)
      return error("a bias needs constant float32 x_scale (scalar) and w_scale");
    Tensor s(DataType::kFloat32, ws->shape());
    for (int64_t i = 0; i < s.numel(); ++i) s.data<float>()[i] = xs->data<float>()[0] * ws->data<float>()[i];
    return add_initializer("bias_scale", std::move(s));
  }

  // Scale 1 (and per-channel ones shaped like zp) for ConvInteger/MatMulInteger's integer inputs.
  std::string unit_scale(const std::string& zp, const std::string& tag) {
    const Tensor* z = zp.empty() ? nullptr : initializer(zp);
    Shape shape = z ? z->shape() : Shape{};
    Tensor one(DataType::kFloat32, shape);
    for (int64_t i = 0; i < one.numel(); ++i) one.data<float>()[i] = 1.f;
    return add_initializer(tag + "_unit_scale", std::move(one));
  }

  Status cast_to_int32(const std::string& y) {
    Node c;
    c.name = node.name + "/Cast";
    c.op_type = "Cast";
    c.inputs = {y};
    c.outputs = {node.outputs.at(0)};
    c.attrs["to"] = kOnnxInt32;
    g.nodes.push_back(std::move(c));
    return Status::ok();
  }

  Status arity(size_t lo, size_t hi) const {
    if (node.inputs.size() < lo || node.inputs.size() > hi)
      return invalid_argument(where + ": expects " + std::to_string(lo) + ".." + std::to_string(hi) +
                              " inputs, has " + std::to_string(node.inputs.size()));
    if (node.outputs.size() != 1)
      return invalid_argument(where + ": expects 1 output, has " + std::to_string(node.outputs.size()));
    if (in(0).empty()) return invalid_argument(where + ": input 0 is required");
    return Status::ok();
  }

  Status run() {
    const std::string& op = node.op_type;
    if (op == "QLinearConv") {
      QYOLO_RETURN_IF_ERROR(arity(8, 9));
      std::string x = dequantize(in(0), in(1), in(2), "x");
      QYOLO_ASSIGN_OR_RETURN(std::string wzp, zero_point_like_scale(in(5), in(4)));
      std::vector<std::string> conv_in = {x, dequantize(in(3), in(4), wzp, "w", 0)};
      if (!in(8).empty()) {
        QYOLO_ASSIGN_OR_RETURN(std::string bs, bias_scale());
        conv_in.push_back(dequantize(in(8), bs, "", "bias", 0));
      }
      return quantize(float_op("Conv", conv_in), in(6), in(7), in(2));
    }
    if (op == "QLinearMatMul") {
      QYOLO_RETURN_IF_ERROR(arity(8, 8));
      // a per tensor (or per row: axis -2), b per tensor or per column (axis -1).
      std::string a = dequantize(in(0), in(1), in(2), "a", -2);
      std::string b = dequantize(in(3), in(4), in(5), "b", -1);
      return quantize(float_op("MatMul", {a, b}), in(6), in(7), in(2));
    }
    if (op == "QLinearAdd" || op == "QLinearMul") {
      QYOLO_RETURN_IF_ERROR(arity(7, 8));
      std::string a = dequantize(in(0), in(1), in(2), "a");
      std::string b = dequantize(in(3), in(4), in(5), "b");
      return quantize(float_op(op == "QLinearAdd" ? "Add" : "Mul", {a, b}), in(6), in(7), in(2));
    }
    if (op == "QLinearSigmoid" || op == "QLinearLeakyRelu") {
      QYOLO_RETURN_IF_ERROR(arity(4, 5));
      std::string x = dequantize(in(0), in(1), in(2), "x");
      return quantize(float_op(op == "QLinearSigmoid" ? "Sigmoid" : "LeakyRelu", {x}), in(3), in(4), in(2));
    }
    if (op == "QLinearGlobalAveragePool" || op == "QLinearAveragePool") {
      QYOLO_RETURN_IF_ERROR(arity(4, 5));
      QYOLO_ASSIGN_OR_RETURN(int64_t channels_last, node.attr_int("channels_last", 0));
      if (channels_last != 0) return error("channels_last=1 (NHWC) is not supported");
      std::string x = dequantize(in(0), in(1), in(2), "x");
      return quantize(
          float_op(op == "QLinearAveragePool" ? "AveragePool" : "GlobalAveragePool", {x}, {"channels_last"}),
          in(3), in(4), in(2));
    }
    if (op == "QLinearConcat") {
      // Y_scale, Y_zero_point, then (X, X_scale, X_zero_point) per input.
      if (node.inputs.size() < 5 || (node.inputs.size() - 2) % 3 != 0)
        return invalid_argument(
            where + ": expects Y_scale, Y_zero_point and triples (X, X_scale, X_zero_point), has " +
            std::to_string(node.inputs.size()) + " inputs");
      std::vector<std::string> xs;
      for (size_t i = 2; i < node.inputs.size(); i += 3)
        xs.push_back(dequantize(in(i), in(i + 1), in(i + 2), "x" + std::to_string(xs.size())));
      return quantize(float_op("Concat", xs), in(0), in(1), in(4));
    }
    if (op == "ConvInteger" || op == "MatMulInteger") {
      // y = op(x - x_zero_point, w - w_zero_point) in int32. The float op computes it exactly while
      // every partial sum stays below 2^24 (e.g. |x - zp| <= 128, |w| <= 127, up to 1032 products).
      QYOLO_RETURN_IF_ERROR(arity(2, 4));
      const bool conv = op == "ConvInteger";
      std::string a = dequantize(in(0), unit_scale(in(2), "x"), in(2), "x", conv ? 1 : -2);
      std::string b = dequantize(in(1), unit_scale(in(3), "w"), in(3), "w", conv ? 0 : -1);
      return cast_to_int32(float_op(conv ? "Conv" : "MatMul", {a, b}));
    }
    return internal_error(where + ": not a QOperator op");
  }
};

}  // namespace

std::span<const QOperatorOp> qoperator_ops() {
  static constexpr QOperatorOp kOps[] = {
      {"", "QLinearConv", "Conv"},
      {"", "QLinearMatMul", "MatMul"},
      {"", "ConvInteger", "Conv"},
      {"", "MatMulInteger", "MatMul"},
      {"com.microsoft", "QLinearAdd", "Add"},
      {"com.microsoft", "QLinearMul", "Mul"},
      {"com.microsoft", "QLinearSigmoid", "Sigmoid"},
      {"com.microsoft", "QLinearLeakyRelu", "LeakyRelu"},
      {"com.microsoft", "QLinearConcat", "Concat"},
      {"com.microsoft", "QLinearGlobalAveragePool", "GlobalAveragePool"},
      {"com.microsoft", "QLinearAveragePool", "AveragePool"},
  };
  return kOps;
}

bool is_qoperator(std::string_view op_type, std::string_view domain) {
  for (const auto& op : qoperator_ops())
    if (op.op_type == op_type && op.domain == domain) return true;
  return false;
}

Status rewrite_qoperator(const Node& node, Graph& g, const std::string& where) {
  Rewriter r{node, g, where};
  return r.run();
}

}  // namespace qyolo
