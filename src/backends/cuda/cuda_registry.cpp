#include <cstring>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/cuda_op_factories.h"

namespace qyolo {

const char* cuda_precision_name(CudaPrecision p) {
  switch (p) {
    case CudaPrecision::kFp16: return "fp16";
    case CudaPrecision::kInt8: return "int8";
    default: return "fp32";
  }
}

namespace cuda {

std::vector<int64_t> plain_strides(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t d = s.size(); d-- > 1;) st[d - 1] = st[d] * s[d];
  return st;
}

std::optional<std::vector<int64_t>> view_strides(const Shape& old_shape, const std::vector<int64_t>& old_strides,
                                                 const Shape& new_shape) {
  if (shape_numel(old_shape) != shape_numel(new_shape)) return std::nullopt;
  if (old_shape.empty() || shape_numel(old_shape) == 0) return plain_strides(new_shape);
  std::vector<int64_t> ns(new_shape.size(), 1);
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base = old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[static_cast<size_t>(d)];
    if (d == 0 || (old_shape[static_cast<size_t>(d - 1)] != 1 &&
                   old_strides[static_cast<size_t>(d - 1)] != tensor_numel * chunk_base)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[static_cast<size_t>(view_d)] == 1)) {
        ns[static_cast<size_t>(view_d)] = view_numel * chunk_base;
        view_numel *= new_shape[static_cast<size_t>(view_d)];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base = old_strides[static_cast<size_t>(d - 1)];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return ns;
}

std::optional<int64_t> nhwc_pixel_pitch(const TensorInfo& t) {
  if (t.shape.size() != 4) return std::nullopt;
  if (t.layout == Layout::kNHWC) return t.shape[1];
  if (t.layout != Layout::kStrided || t.view.size() != 4) return std::nullopt;
  const int64_t pitch = t.view[3];
  const std::vector<int64_t> want = {t.shape[2] * t.shape[3] * pitch, 1, t.shape[3] * pitch, pitch};
  if (pitch < t.shape[1] || !same_strides(t.shape, t.view, want)) return std::nullopt;
  return pitch;
}

bool same_strides(const Shape& shape, const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  if (a.size() != shape.size() || b.size() != shape.size()) return false;
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] != 1 && a[d] != b[d]) return false;
  return true;
}

std::vector<int64_t> TensorInfo::strides() const {
  if (layout == Layout::kStrided) return view;
  if (layout == Layout::kNHWC && shape.size() == 4) {
    const int64_t c = shape[1], h = shape[2], w = shape[3];
    return {h * w * c, 1, w * c, c};
  }
  return plain_strides(shape);
}

namespace {
struct Entry {
  const char* op_type;
  CudaOpTraits traits;
};
constexpr uint32_t bit(int i) { return 1u << i; }

// stem, factory, alias, host_inputs, any_float_inputs, nhwc_output, compute
const Entry kOps[] = {
    {"Conv", {"conv2d", &make_cuda_conv2d, false, bit(1) | bit(2), false, true, true}},
    {"MaxPool", {"max_pool", &make_cuda_max_pool, false, 0, false, true, true}},
    {"Resize", {"resize", &make_cuda_resize, false, bit(1) | bit(2) | bit(3), false, true, true}},
    {"Upsample", {"resize", &make_cuda_resize, false, bit(1), false, true, true}},
    {"Concat", {"concat", &make_cuda_concat, false, 0, true, true, false}},
    {"Split", {"split", &make_cuda_split, false, bit(1), true, false, false}},
    {"Slice", {"slice", &make_cuda_slice, false, bit(1) | bit(2) | bit(3) | bit(4), true, false, false}},
    {"Transpose", {"transpose", &make_cuda_transpose, false, 0, true, false, false}},
    {"Reshape", {"reshape", &make_cuda_reshape, true, bit(1), false, false, false}},
    {"Flatten", {"reshape", &make_cuda_reshape, true, 0, false, false, false}},
    {"Squeeze", {"reshape", &make_cuda_reshape, true, bit(1), false, false, false}},
    {"Unsqueeze", {"reshape", &make_cuda_reshape, true, bit(1), false, false, false}},
    {"Identity", {"reshape", &make_cuda_reshape, true, 0, false, false, false}},
    {"Sigmoid", {"unary", &make_cuda_unary, false, 0, false, true, true}},
    {"Relu", {"unary", &make_cuda_unary, false, 0, false, true, true}},
    {"LeakyRelu", {"unary", &make_cuda_unary, false, 0, false, true, true}},
    {"HardSigmoid", {"unary", &make_cuda_unary, false, 0, false, true, true}},
    {"HardSwish", {"unary", &make_cuda_unary, false, 0, false, true, true}},
    {"Tanh", {"unary", &make_cuda_unary, false, 0, false, true, true}},
    {"Exp", {"unary", &make_cuda_unary, false, 0, false, true, true}},
    {"Log", {"unary", &make_cuda_unary, false, 0, false, true, true}},
    {"Sqrt", {"unary", &make_cuda_unary, false, 0, false, true, true}},
    {"Neg", {"unary", &make_cuda_unary, false, 0, false, true, true}},
    {"Abs", {"unary", &make_cuda_unary, false, 0, false, true, true}},
    {"Softplus", {"unary", &make_cuda_unary, false, 0, false, true, true}},
    {"Elu", {"unary", &make_cuda_unary, false, 0, false, true, true}},
    {"Add", {"binary", &make_cuda_binary, false, 0, false, true, true}},
    {"Sub", {"binary", &make_cuda_binary, false, 0, false, true, true}},
    {"Mul", {"binary", &make_cuda_binary, false, 0, false, true, true}},
    {"Div", {"binary", &make_cuda_binary, false, 0, false, true, true}},
    {"Pow", {"binary", &make_cuda_binary, false, 0, false, true, true}},
    {"Max", {"binary", &make_cuda_binary, false, 0, false, true, true}},
    {"Min", {"binary", &make_cuda_binary, false, 0, false, true, true}},
    {"Floor", {"rounding", &make_cuda_rounding, false, 0, false, true, true}},
    {"Ceil", {"rounding", &make_cuda_rounding, false, 0, false, true, true}},
    {"Round", {"rounding", &make_cuda_rounding, false, 0, false, true, true}},
    {"Erf", {"erf", &make_cuda_erf, false, 0, false, true, true}},
    // Issue 16 ops: plain float/half in and out (the executor converts NHWC inputs).
    {"Softmax", {"softmax", &make_cuda_softmax, false, 0, false, false, true}},
    {"MatMul", {"matmul", &make_cuda_matmul, false, 0, false, false, true}},
    {"Gemm", {"matmul", &make_cuda_matmul, false, 0, false, false, true}},
    {"ReduceMax", {"reduce", &make_cuda_reduce, false, bit(1), false, false, true}},
    {"ReduceMin", {"reduce", &make_cuda_reduce, false, bit(1), false, false, true}},
    {"ReduceMean", {"reduce", &make_cuda_reduce, false, bit(1), false, false, true}},
    {"ReduceSum", {"reduce", &make_cuda_reduce, false, bit(1), false, false, true}},
    {"ReduceSumSquare", {"reduce", &make_cuda_reduce, false, bit(1), false, false, true}},
    {"LayerNormalization", {"layer_norm", &make_cuda_layer_norm, false, 0, false, false, true}},
    {"Pad", {"pad", &make_cuda_pad, false, bit(1) | bit(2) | bit(3), false, false, true}},
    {"ConvTranspose", {"conv_transpose", &make_cuda_conv_transpose, false, 0, false, false, true}},
    // Float input in its own type (plain), int64 indices out.
    {"ArgMax", {"argmax", &make_cuda_argmax, false, 0, false, false, false}},
    {"TopK", {"top_k", &make_cuda_top_k, false, bit(1), false, false, false}},
    // Data of any type (float data may change float type), int32/int64 indices.
    {"GatherElements", {"gather_elements", &make_cuda_gather_elements, false, 0, false, false, false}},
    // Reads X (float/half, any layout) as it comes; constants arrive in the output's float type.
    {"QyoloYoloDecode", {"yolo_decode", &make_cuda_yolo_decode, false, 0, true, false, false}},
    // Reads uint8 (not arithmetic on float inputs); writes fp32 plain NCHW (output_dtype).
    {"QyoloImageToFloat", {"image_to_float", &make_cuda_image_to_float, false, 0, false, false, false}},
};
}  // namespace

const CudaOpTraits* find_cuda_op(std::string_view op_type) {
  for (const auto& e : kOps)
    if (op_type == e.op_type) return &e.traits;
  return nullptr;
}

}  // namespace cuda

bool cuda_supports(const Node& node) {
  if (!node.domain.empty() && node.domain != "ai.onnx") return false;
  if (cuda::find_cuda_op(node.op_type) == nullptr) return false;
  if (node.op_type == "Resize" || node.op_type == "Upsample") {
    auto mode = node.attr_string("mode", std::string("nearest"));
    if (!mode || *mode != "nearest") return false;
  }
  if (node.op_type == "MaxPool") {
    auto ks = node.attr_ints("kernel_shape", std::vector<int64_t>{});
    if (!ks || ks->size() != 2) return false;
    if (node.outputs.size() > 1) return false;
  }
  return true;
}

std::vector<std::string> cuda_supported_ops() {
  std::vector<std::string> out;
  for (const auto& e : cuda::kOps) out.emplace_back(e.op_type);
  return out;
}

}  // namespace qyolo
