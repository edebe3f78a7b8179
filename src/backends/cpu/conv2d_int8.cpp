// INT8 Conv on the CPU (oneDNN): int8 activations and per-channel int8 weights, int32
// accumulation, per-channel requantisation to float, then bias/activation/residual in float.
//
// Scale convention (src/quant/quant_params.h): real = scale * q, symmetric, q in [-127, 127].
//   x_q = round(x / s_x)                  (s_x: calibrated scale of the conv input, attribute
//                                          qyolo_input_scale set by quantize_graph)
//   w_q[c] = round(W[c] / s_w[c]),  s_w[c] = max|W[c]| / 127
//   y[c] = act(s_x * s_w[c] * sum(x_q * w_q[c]) + b[c]) + residual
// oneDNN adds the bias to the int32 accumulator before the output scale, so it receives
// b[c] / (s_x * s_w[c]). SiLU and sigmoid (and then the residual) are applied by our own pass,
// x / (1 + expf(-x)), the formula of the CUDA INT8 kernel: oneDNN's polynomial exp differs in the
// last bits, which moves values that sit on a rounding boundary of the next layer's quantisation.
#include <oneapi/dnnl/dnnl.hpp>

#include <cmath>
#include <cstring>
#include <unordered_map>

#include "backends/cpu/conv2d_int8.h"
#include "ir/ops/conv2d.h"
#include "quant/quant_params.h"

namespace qyolo {

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

memory::dims to_dims(const std::vector<int64_t>& v) { return memory::dims(v.begin(), v.end()); }

class CpuConvInt8 final : public CpuKernel {
 public:
  explicit CpuConvInt8(const Node& node) : name_(node.describe()) {}

  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    try {
      return prepare_impl(node, inputs);
    } catch (const dnnl::error& e) {
      return unsupported(name_ + ": oneDNN could not build this INT8 convolution (" + e.what() + ")");
    }
  }

  size_t workspace_bytes() const override {
    return src_q_bytes_ + align64(src_conv_.get_desc().get_size()) + align64(dst_conv_.get_desc().get_size());
  }
  void set_workspace(std::byte* workspace) override { workspace_ = workspace; }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    try {
      return run_impl(inputs, outputs);
    } catch (const dnnl::error& e) {
      return internal_error(name_ + ": oneDNN INT8 execution failed (" + e.what() + ")");
    }
  }

 private:
  Status prepare_impl(const Node& node, std::span<const ValueDesc* const> inputs) {
    const Shape& x = inputs[0]->shape;
    const Shape& w = inputs[1]->shape;
    QYOLO_ASSIGN_OR_RETURN(attrs_, ConvAttrs::parse(node, x, w));
    const ConvAttrs& a = attrs_;
    if (x.size() != 4) return unsupported(name_ + ": INT8 convolution supports 2-D convolutions only");
    if (!inputs[1]->value || inputs[1]->value->dtype() != DataType::kFloat32)
      return unsupported(name_ + ": INT8 convolution needs constant float weights");
    if (a.has_bias && !inputs[2]->value) return unsupported(name_ + ": INT8 convolution needs a constant bias");
    QYOLO_ASSIGN_OR_RETURN(input_scale_, node.attr_float("qyolo_input_scale"));
    if (!(input_scale_ > 0.f) || !std::isfinite(input_scale_))
      return invalid_argument(name_ + ": invalid input scale " + std::to_string(input_scale_));

    // Per-output-channel weight quantisation.
    const Tensor& wt = *inputs[1]->value;
    const int64_t cout = w[0];
    const int64_t per_out = wt.numel() / cout;
    weights_q_ = Tensor(DataType::kInt8, w);
    weight_scales_.resize(static_cast<size_t>(cout));
    std::vector<float> out_scales(static_cast<size_t>(cout));
    for (int64_t c = 0; c < cout; ++c) {
      const float* src = wt.data<float>() + c * per_out;
      float amax = 0.f;
      for (int64_t j = 0; j < per_out; ++j) amax = std::max(amax, std::fabs(src[j]));
      const float s = scale_from_amax(amax);
      weight_scales_[static_cast<size_t>(c)] = s;
      int8_t* dst = weights_q_.data<int8_t>() + c * per_out;
      for (int64_t j = 0; j < per_out; ++j) dst[j] = quantize_int8(src[j], s);
      out_scales[static_cast<size_t>(c)] = input_scale_ * s;
    }
    bias_scaled_ = Tensor(DataType::kFloat32, {cout});
    if (a.has_bias) {
      const float* b = inputs[2]->value->data<float>();
      for (int64_t c = 0; c < cout; ++c) bias_scaled_.data<float>()[c] = b[c] / out_scales[static_cast<size_t>(c)];
    }

    eng_ = dnnl::engine(dnnl::engine::kind::cpu, 0);
    strm_ = dnnl::stream(eng_);
    const bool grouped = a.group > 1;
    memory::dims w_dims;
    if (grouped) w_dims = {a.group, w[0] / a.group, w[1], w[2], w[3]};
    else w_dims = to_dims(w);
    memory::desc src_user_md(to_dims(x), dt::s8, tag::nchw);
    memory::desc dst_user_md(to_dims(a.out_shape), dt::f32, tag::nchw);
    memory::desc w_user_md(w_dims, dt::s8, grouped ? tag::goihw : tag::oihw);
    memory::desc bias_md({cout}, dt::f32, tag::x);
    memory::desc src_md(to_dims(x), dt::s8, tag::any);
    memory::desc dst_md(to_dims(a.out_shape), dt::f32, tag::any);
    memory::desc w_md(w_dims, dt::s8, tag::any);
    memory::dims dil(2);
    for (size_t i = 0; i < 2; ++i) dil[i] = a.window.dilations[i] - 1;

    dnnl::post_ops po;
    own_epilogue_ = a.activation == FusedActivation::kSilu || a.activation == FusedActivation::kSigmoid;
    switch (a.activation) {
      case FusedActivation::kNone: break;
      case FusedActivation::kRelu: po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f); break;
      case FusedActivation::kLeakyRelu: po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, a.activation_alpha, 0.f); break;
      case FusedActivation::kSilu: break;     // own_epilogue_
      case FusedActivation::kSigmoid: break;  // own_epilogue_
      case FusedActivation::kHardSwish: po.append_eltwise(1.f, dnnl::algorithm::eltwise_hardswish, 0.f, 0.f); break;
    }
    if (a.has_residual && !own_epilogue_) po.append_sum(1.f);
    dnnl::primitive_attr pattr;
    pattr.set_output_scales(1 << 1, out_scales);  // per output channel
    pattr.set_post_ops(po);

    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md,
                                      w_md, bias_md, dst_md, to_dims(a.window.strides), dil,
                                      to_dims(a.window.pads_begin), to_dims(a.window.pads_end));
    dnnl::convolution_forward::primitive_desc pd(d, pattr, eng_);
    conv_ = dnnl::convolution_forward(pd);
    impl_ = pd.impl_info_str();

    // Quantised input, its blocked copy and the blocked output live in the executor's workspace.
    src_q_bytes_ = align64(static_cast<size_t>(shape_numel(x)));
    src_user_ = memory(src_user_md, eng_, DNNL_MEMORY_NONE);
    src_conv_ = memory(pd.src_desc(), eng_, DNNL_MEMORY_NONE);
    src_reorder_ = dnnl::reorder(src_user_, src_conv_);
    dst_user_ = memory(dst_user_md, eng_, DNNL_MEMORY_NONE);
    dst_conv_ = memory(pd.dst_desc(), eng_, DNNL_MEMORY_NONE);
    dst_reorder_ = dnnl::reorder(dst_conv_, dst_user_);
    if (a.has_residual && !own_epilogue_) {
      residual_user_ = memory(dst_user_md, eng_, DNNL_MEMORY_NONE);
      residual_reorder_ = dnnl::reorder(residual_user_, dst_conv_);
    }
    memory w_user(w_user_md, eng_, weights_q_.raw());
    w_conv_ = memory(pd.weights_desc(), eng_);
    dnnl::reorder(w_user, w_conv_).execute(strm_, w_user, w_conv_);
    bias_ = memory(bias_md, eng_, bias_scaled_.raw());
    strm_.wait();
    return Status::ok();
  }

  Status run_impl(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) {
    // Quantise the input: round half to even, saturate to [-127, 127].
    const float* x = inputs[0]->data<float>();
    int8_t* q = reinterpret_cast<int8_t*>(workspace_);
    const int64_t n = inputs[0]->numel();
    src_user_.set_data_handle(workspace_);
    src_conv_.set_data_handle(workspace_ + src_q_bytes_);
    dst_conv_.set_data_handle(workspace_ + src_q_bytes_ + align64(src_conv_.get_desc().get_size()));
    const float scale = input_scale_;
    // x / scale, not x * (1 / scale): the rounding of ONNX QuantizeLinear (ONNX Runtime, TensorRT).
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      float v = std::nearbyint(x[i] / scale);
      v = std::min(127.f, std::max(-127.f, v));
      q[i] = static_cast<int8_t>(v);
    }
    src_reorder_.execute(strm_, src_user_, src_conv_);
    dst_user_.set_data_handle(outputs[0]->raw());
    if (attrs_.has_residual && !own_epilogue_) {
      residual_user_.set_data_handle(const_cast<void*>(inputs[3]->raw()));
      residual_reorder_.execute(strm_, residual_user_, dst_conv_);
    }
    conv_.execute(strm_, {{DNNL_ARG_SRC, src_conv_}, {DNNL_ARG_WEIGHTS, w_conv_}, {DNNL_ARG_BIAS, bias_},
                          {DNNL_ARG_DST, dst_conv_}});
    dst_reorder_.execute(strm_, dst_conv_, dst_user_);
    strm_.wait();
    if (own_epilogue_) {
      float* y = outputs[0]->data<float>();
      const float* r = attrs_.has_residual ? inputs[3]->data<float>() : nullptr;
      const int64_t m = outputs[0]->numel();
      const bool silu = attrs_.activation == FusedActivation::kSilu;
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < m; ++i) {
        const float v = y[i];
        float out = silu ? v / (1.0f + std::exp(-v)) : 1.0f / (1.0f + std::exp(-v));
        if (r) out += r[i];
        y[i] = out;
      }
    }
    return Status::ok();
  }

  std::string name_;
  ConvAttrs attrs_;
  float input_scale_ = 0.f;
  bool own_epilogue_ = false;  // activation (+ residual) applied after oneDNN, see the top
  std::vector<float> weight_scales_;
  Tensor weights_q_, bias_scaled_;
  size_t src_q_bytes_ = 0;
  std::byte* workspace_ = nullptr;
  std::string impl_;
  dnnl::engine eng_;
  dnnl::stream strm_;
  dnnl::convolution_forward conv_;
  memory src_user_, src_conv_, dst_user_, dst_conv_, w_conv_, bias_, residual_user_;
  dnnl::reorder src_reorder_, dst_reorder_, residual_reorder_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_conv2d_int8(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuConvInt8>(node));
}

}  // namespace qyolo
