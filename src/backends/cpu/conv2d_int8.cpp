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
//
// Int8 between layers (src/quant/int8_dataflow.h): an input planned int8 is read as it is
// (channels-last, oneDNN's nhwc: no quantisation, no reorder). An output planned int8 (scale s_y)
// is q_y = round(clip((act(v) + s_r * q_r) / s_y, -127, 127)) from the float v = out_scale * acc:
//  - SiLU / sigmoid: oneDNN writes v (float, channels-last, in the workspace) and our epilogue
//    computes the float path's own arithmetic, x / (1 + expf(-x)), then nearbyint(y / s_y): the
//    same integers the float path's next conv computed. oneDNN's swish post-op instead (polynomial
//    exp, a few ulps off) cost 0.002 val500 mAP on yolov5n (docs/cpu-int8.md).
//  - other activations: oneDNN writes int8 itself, act as an eltwise post-op with scale 1 / s_y
//    (without an activation 1 / s_y joins the output scales), the residual a sum post-op on the
//    int8 copy of q_r placed in the output first, then a clip.
#include "backends/cpu/conv2d_int8.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <string>
#include <unordered_map>

#include "backends/cpu/int8_epilogue.h"
#include "backends/cpu/int8_stem.h"
#include "ir/ops/conv2d.h"
#include "passes/passes.h"
#include "quant/int8_dataflow.h"
#include "quant/quant_params.h"

namespace qyolo {

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

memory::dims to_dims(const std::vector<int64_t>& v) {
  return memory::dims(v.begin(), v.end());
}

class CpuConvInt8 final : public CpuKernel {
 public:
  explicit CpuConvInt8(const Node& node) : name_(node.describe()) {}

  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    try {
      return prepare_impl(node, inputs, outputs);
    } catch (const dnnl::error& e) {
      return unsupported(name_ + ": oneDNN could not build this INT8 convolution (" + e.what() + ")");
    }
  }

  size_t workspace_bytes() const override {
    if (stem_) return stem_->workspace_bytes();
    size_t n = src_q_bytes_ + (src_reordered_ ? align64(src_conv_.get_desc().get_size()) : 0);
    if ((!int8_out_ && !channels_last_out_) || (int8_out_ && own_epilogue_))
      n += align64(dst_conv_.get_desc().get_size());
    if (float_residual_int8_out_ && !residual_channels_last_)
      n += align64(residual_nhwc_.get_desc().get_size());
    return n;
  }
  void set_workspace(std::byte* workspace) override { workspace_ = workspace; }
  std::string implementation() const override { return impl_; }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    try {
      return run_impl(inputs, outputs);
    } catch (const dnnl::error& e) {
      return internal_error(name_ + ": oneDNN INT8 execution failed (" + e.what() + ")");
    }
  }

 private:
  Status prepare_impl(const Node& node, std::span<const ValueDesc* const> inputs,
                      std::span<const ValueDesc> outputs) {
    const Shape& x = inputs[0]->shape;
    const Shape& w = inputs[1]->shape;
    QYOLO_ASSIGN_OR_RETURN(attrs_, ConvAttrs::parse(node, x, w));
    const ConvAttrs& a = attrs_;
    if (x.size() != 4) return unsupported(name_ + ": INT8 convolution supports 2-D convolutions only");
    if (!inputs[1]->value || inputs[1]->value->dtype() != DataType::kFloat32)
      return unsupported(name_ + ": INT8 convolution needs constant float weights");
    if (a.has_bias && !inputs[2]->value)
      return unsupported(name_ + ": INT8 convolution needs a constant bias");
    QYOLO_ASSIGN_OR_RETURN(const Int8Grid in_grid, conv_input_grid(node));
    input_scale_ = in_grid.scale;
    input_zp_ = in_grid.zero_point;
    if (!(input_scale_ > 0.f) || !std::isfinite(input_scale_))
      return invalid_argument(name_ + ": invalid input scale " + std::to_string(input_scale_));
    // The int8 plan (src/quant/int8_dataflow.h): int8 values are channels-last.
    int8_in_ = inputs[0]->dtype == DataType::kInt8;
    int8_out_ = node.has_attr(kInt8OutputScaleAttr);
    int8_residual_ = a.has_residual && inputs[3]->dtype == DataType::kInt8;
    // Float values of the channels-last plan (passes.h): a float input is quantised as it is
    // (nhwc) and a float output written nhwc in place; a float residual then is nhwc too.
    channels_last_in_ = !int8_in_ && node.has_attr(kChannelsLastInputAttr);
    channels_last_out_ = !int8_out_ && node.has_attr(kChannelsLastOutputAttr);
    QYOLO_ASSIGN_OR_RETURN(out_scale_, node.attr_float(kInt8OutputScaleAttr, 1.f));
    QYOLO_ASSIGN_OR_RETURN(const int64_t out_zp, node.attr_int(kInt8OutputZeroPointAttr, 0));
    out_zp_ = static_cast<int32_t>(std::clamp<int64_t>(out_zp, -128, 127));
    QYOLO_ASSIGN_OR_RETURN(residual_scale_, node.attr_float(kInt8ResidualScaleAttr, 1.f));
    const float out_scale = out_scale_, residual_scale = residual_scale_;
    own_epilogue_ = a.activation == FusedActivation::kSilu || a.activation == FusedActivation::kSigmoid;
    // An int8 output with a float residual: our epilogue adds it (channels-last, or reordered so).
    float_residual_int8_out_ = a.has_residual && int8_out_ && !int8_residual_;
    residual_channels_last_ = node.has_attr(kChannelsLastResidualAttr);
    if (int8_out_ != (outputs[0].dtype == DataType::kInt8) || !(out_scale > 0.f) || !(residual_scale > 0.f) ||
        (int8_residual_ && !int8_out_) || (float_residual_int8_out_ && !own_epilogue_) ||
        (int8_residual_ && !node.has_attr(kInt8ResidualScaleAttr)) || out_zp != out_zp_ ||
        (out_zp_ != 0 && (!int8_out_ || !own_epilogue_)))
      return internal_error(name_ +
                            ": inconsistent int8 plan (an int8 output needs its scale attribute, an int8 "
                            "residual its scale and an int8 output, a float residual with an int8 output "
                            "SiLU or sigmoid, an output zero point SiLU or sigmoid and an int8 output)");

    // Per-output-channel weight quantisation.
    const Tensor& wt = *inputs[1]->value;
    const int64_t cout = w[0];
    const int64_t per_out = wt.numel() / cout;
    weights_q_ = Tensor(DataType::kInt8, w);
    weight_scales_.resize(static_cast<size_t>(cout));
    std::vector<float> out_scales(static_cast<size_t>(cout));
    // Without an activation the int8 output's 1 / s_y is one more factor of the output scales.
    const float extra = int8_out_ && a.activation == FusedActivation::kNone ? 1.f / out_scale : 1.f;
    for (int64_t c = 0; c < cout; ++c) {
      const float* src = wt.data<float>() + c * per_out;
      float amax = 0.f;
      for (int64_t j = 0; j < per_out; ++j) amax = std::max(amax, std::fabs(src[j]));
      const float s = scale_from_amax(amax);
      weight_scales_[static_cast<size_t>(c)] = s;
      int8_t* dst = weights_q_.data<int8_t>() + c * per_out;
      for (int64_t j = 0; j < per_out; ++j) dst[j] = quantize_int8(src[j], s);
      out_scales[static_cast<size_t>(c)] = input_scale_ * s * extra;
    }
    // The bias joins the accumulator, in units of s_x * s_w[c]: the int8 output's 1 / s_y (extra)
    // scales the bias with the accumulator and must not divide it too.
    bias_scaled_ = Tensor(DataType::kFloat32, {cout});
    if (a.has_bias) {
      const float* b = inputs[2]->value->data<float>();
      for (int64_t c = 0; c < cout; ++c)
        bias_scaled_.data<float>()[c] = b[c] / (input_scale_ * weight_scales_[static_cast<size_t>(c)]);
    }
    // The equalisation multiplier m[c] > 0 after the activation: one more output scale where the
    // activation commutes with it (none, ReLU, LeakyReLU: act(m v) = m act(v)); after our own
    // SiLU / sigmoid epilogue otherwise.
    if (!a.output_multiplier.empty()) {
      if (a.activation == FusedActivation::kHardSwish)
        return unsupported(name_ + ": the output multiplier after hardswish is not supported in INT8");
      if (!own_epilogue_)
        for (int64_t c = 0; c < cout; ++c) out_scales[static_cast<size_t>(c)] *= a.output_multiplier[c];
      // m[k % cout] for k < cout + 16: any 16 consecutive channels from one load (int8_epilogue.h).
      multiplier_ext_.resize(static_cast<size_t>(cout + 16));
      for (int64_t k = 0; k < cout + 16; ++k)
        multiplier_ext_[static_cast<size_t>(k)] = a.output_multiplier[k % cout];
    }

    epilogue_ = cpu::best_int8_epilogue();
    eng_ = dnnl::engine(dnnl::engine::kind::cpu, 0);
    strm_ = dnnl::stream(eng_);
    const bool grouped = a.group > 1;
    memory::dims w_dims;
    if (grouped)
      w_dims = {a.group, w[0] / a.group, w[1], w[2], w[3]};
    else
      w_dims = to_dims(w);
    const dt dst_dt = int8_out_ && !own_epilogue_ ? dt::s8 : dt::f32;
    // Our epilogue at batch > 1: the primitive runs per batch item, so that the epilogue reads
    // that item's float output (and the conv that item's quantised input) while it is still in
    // the cache (a yolov5n b8 layer's output is 105 MB; one image's 13 MB fits the L3).
    per_item_ = own_epilogue_ && x[0] > 1;
    Shape xs = x, ys = a.out_shape;
    if (per_item_) xs[0] = ys[0] = 1;
    batch_ = x[0];
    memory::desc src_user_md(to_dims(xs), dt::s8, int8_in_ || channels_last_in_ ? tag::nhwc : tag::nchw);
    memory::desc dst_user_md(to_dims(ys), int8_out_ ? dt::s8 : dt::f32,
                             int8_out_ || channels_last_out_ ? tag::nhwc : tag::nchw);
    memory::desc w_user_md(w_dims, dt::s8, grouped ? tag::goihw : tag::oihw);
    memory::desc bias_md({cout}, dt::f32, tag::x);
    // Int8 values between layers are nhwc; float ones let oneDNN choose (reorders around it).
    memory::desc src_md(to_dims(xs), dt::s8, int8_in_ || channels_last_in_ ? tag::nhwc : tag::any);
    memory::desc dst_md(to_dims(ys), dst_dt, int8_out_ || channels_last_out_ ? tag::nhwc : tag::any);
    memory::desc w_md(w_dims, dt::s8, tag::any);
    memory::dims dil(2);
    for (size_t i = 0; i < 2; ++i) dil[i] = a.window.dilations[i] - 1;

    dnnl::post_ops po;
    const float act_scale = int8_out_ ? 1.f / out_scale : 1.f;
    switch (a.activation) {
      case FusedActivation::kNone:
        break;
      case FusedActivation::kRelu:
        po.append_eltwise(act_scale, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
        break;
      case FusedActivation::kLeakyRelu:
        po.append_eltwise(act_scale, dnnl::algorithm::eltwise_relu, a.activation_alpha, 0.f);
        break;
      case FusedActivation::kSilu:
        break;  // own_epilogue_
      case FusedActivation::kSigmoid:
        break;  // own_epilogue_
      case FusedActivation::kHardSwish:
        po.append_eltwise(act_scale, dnnl::algorithm::eltwise_hardswish, 0.f, 0.f);
        break;
    }
    if (a.has_residual && !own_epilogue_) po.append_sum(int8_residual_ ? residual_scale / out_scale : 1.f);
    // Our convention saturates to [-127, 127]; oneDNN's s8 conversion would allow -128.
    if (int8_out_ && !own_epilogue_) po.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, -127.f, 127.f);
    dnnl::primitive_attr pattr;
    pattr.set_output_scales(1 << 1, out_scales);  // per output channel
    // An asymmetric input: oneDNN subtracts the zero point, padding included (real 0 = q zp).
    if (input_zp_ != 0) pattr.set_zero_points(DNNL_ARG_SRC, 0, {input_zp_});
    pattr.set_post_ops(po);

    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                      src_md, w_md, bias_md, dst_md, to_dims(a.window.strides), dil,
                                      to_dims(a.window.pads_begin), to_dims(a.window.pads_end));
    dnnl::convolution_forward::primitive_desc pd(d, pattr, eng_);
    conv_ = dnnl::convolution_forward(pd);
    impl_ = pd.impl_info_str();

    // A float input is quantised (NCHW) into the workspace and reordered to oneDNN's layout
    // there; a float output is written blocked into the workspace and reordered out.
    src_q_bytes_ = int8_in_ ? 0 : align64(static_cast<size_t>(shape_numel(xs)));
    src_user_ = memory(src_user_md, eng_, DNNL_MEMORY_NONE);
    src_reordered_ = pd.src_desc() != src_user_md;
    // A 3-channel float NCHW input (the image) that oneDNN reads as nhwc int8: quantised into it
    // in one pass, without the reorder.
    image_to_nhwc_ = !int8_in_ && !channels_last_in_ && src_reordered_ && xs[1] == 3 && input_zp_ == 0 &&
                     pd.src_desc() == memory::desc(to_dims(xs), dt::s8, tag::nhwc);
    image_pixels_ = xs[2] * xs[3];
    if (src_reordered_) {
      src_conv_ = memory(pd.src_desc(), eng_, DNNL_MEMORY_NONE);
      src_reorder_ = dnnl::reorder(src_user_, src_conv_);
    } else {
      src_conv_ = src_user_;
    }
    dst_user_ = memory(dst_user_md, eng_, DNNL_MEMORY_NONE);
    if (int8_out_ && !own_epilogue_) {
      if (pd.dst_desc() != dst_user_md)
        return internal_error(name_ + ": oneDNN chose another int8 output layout");
      dst_conv_ = dst_user_;
    } else if (int8_out_) {
      // v in float, channels-last like the int8 output: the epilogue is elementwise.
      if (pd.dst_desc() != memory::desc(to_dims(ys), dt::f32, tag::nhwc))
        return internal_error(name_ + ": oneDNN chose another output layout");
      dst_conv_ = memory(pd.dst_desc(), eng_, DNNL_MEMORY_NONE);
    } else if (channels_last_out_) {
      if (pd.dst_desc() != dst_user_md) return internal_error(name_ + ": oneDNN chose another output layout");
      dst_conv_ = dst_user_;  // written in place, no reorder
    } else {
      dst_conv_ = memory(pd.dst_desc(), eng_, DNNL_MEMORY_NONE);
      dst_reorder_ = dnnl::reorder(dst_conv_, dst_user_);
      if (a.has_residual && !own_epilogue_) {
        residual_user_ = memory(dst_user_md, eng_, DNNL_MEMORY_NONE);
        residual_reorder_ = dnnl::reorder(residual_user_, dst_conv_);
      }
    }
    if (float_residual_int8_out_ && !residual_channels_last_) {
      residual_user_ = memory(memory::desc(to_dims(ys), dt::f32, tag::nchw), eng_, DNNL_MEMORY_NONE);
      residual_nhwc_ = memory(memory::desc(to_dims(ys), dt::f32, tag::nhwc), eng_, DNNL_MEMORY_NONE);
      residual_reorder_ = dnnl::reorder(residual_user_, residual_nhwc_);
    }
    memory w_user(w_user_md, eng_, weights_q_.raw());
    w_conv_ = memory(pd.weights_desc(), eng_);
    dnnl::reorder(w_user, w_conv_).execute(strm_, w_user, w_conv_);
    bias_ = memory(bias_md, eng_, bias_scaled_.raw());
    strm_.wait();
    // The image stem (int8_stem.h), where its output goes through our epilogue as int8.
    // QYOLO_CPU_INT8_STEM=0 keeps oneDNN's kernel (the tests compare the two).
    const char* env = std::getenv("QYOLO_CPU_INT8_STEM");
    const auto& win = a.window;
    std::array<int64_t, 4> pads{};
    if (win.pads_begin.size() == 2 && win.pads_end.size() == 2)
      pads = {win.pads_begin[0], win.pads_begin[1], win.pads_end[0], win.pads_end[1]};
    if (own_epilogue_ && int8_out_ && !int8_in_ && !channels_last_in_ && !a.has_residual && input_zp_ == 0 &&
        !(env && std::string(env) == "0") &&
        cpu::Int8Stem::supported(x[1], cout, w[2], w[3], win.strides[0], win.strides[1], pads.data(),
                                 win.dilations[0], win.dilations[1], a.group, x[2], x[3])) {
      stem_.emplace();
      stem_->prepare(weights_q_.data<int8_t>(), cout, bias_scaled_.data<float>(), out_scales.data(), x[2],
                     x[3]);
      impl_ = "qyolo_stem:avx512_vnni";
    }
    prepare_bands(pd, pattr, w_md, bias_md, xs, ys);
    weights_q_ = Tensor();  // packed into w_conv_
    return Status::ok();
  }

  // Batch item by item when per_item_ (the primitive was built for one), else the whole batch.
  Status run_impl(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) {
    const int64_t items = per_item_ ? batch_ : 1;
    for (int64_t b = 0; b < items; ++b) run_item(inputs, outputs, b, items);
    return Status::ok();
  }

  // Item b of `items` equal slices of the batch (each value's first dimension is the batch).
  void run_item(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs, int64_t b,
                int64_t items) {
    auto slice = [&](const Tensor& t) {
      return const_cast<std::byte*>(static_cast<const std::byte*>(t.raw())) +
             static_cast<size_t>(b) * (t.nbytes() / static_cast<size_t>(items));
    };
    const int64_t in_n = inputs[0]->numel() / items, m = outputs[0]->numel() / items;
    std::byte* in = slice(*inputs[0]);
    std::byte* out = slice(*outputs[0]);
    std::byte* res = attrs_.has_residual ? slice(*inputs[3]) : nullptr;
    const size_t res_bytes = attrs_.has_residual ? inputs[3]->nbytes() / static_cast<size_t>(items) : 0;
    std::byte* ws = workspace_;
    const float* x = reinterpret_cast<const float*>(in);
    const float scale = input_scale_;
    if (stem_) return run_stem(x, reinterpret_cast<int8_t*>(out), m, in_n / (3 * image_pixels_));
    if (int8_in_) {
      src_user_.set_data_handle(in);
    } else if (!image_to_nhwc_) {
      // Quantise the input: round half to even, saturate to [-127, 127] (int8_epilogue.h).
      int8_t* q = reinterpret_cast<int8_t*>(ws);
      cpu::parallel_chunks(
          in_n, [&](int64_t c0, int64_t len) { epilogue_.quantize(x + c0, scale, input_zp_, q + c0, len); });
      src_user_.set_data_handle(ws);
    }
    ws += src_q_bytes_;
    if (src_reordered_) {
      src_conv_.set_data_handle(ws);
      if (image_to_nhwc_) {
        // The same quantisation, written straight into the nhwc layout (no reorder).
        int8_t* q = reinterpret_cast<int8_t*>(ws);
        const int64_t plane = image_pixels_, images = in_n / (3 * plane);
        for (int64_t image = 0; image < images; ++image)
          cpu::parallel_chunks(plane, [&](int64_t c0, int64_t len) {
            epilogue_.quantize_3planes(x + image * 3 * plane + c0, plane, scale,
                                       q + image * 3 * plane + 3 * c0, len);
          });
      } else {
        src_reorder_.execute(strm_, src_user_, src_conv_);
      }
      ws += align64(src_conv_.get_desc().get_size());
    }
    dst_user_.set_data_handle(out);
    if (int8_out_ && !own_epilogue_) {
      // The sum post-op accumulates into the output: seed it with the int8 residual.
      if (attrs_.has_residual) std::memcpy(out, res, res_bytes);
    } else if (channels_last_out_) {
      // Written in place: the sum post-op's residual (same layout) is copied there first.
      if (attrs_.has_residual && !own_epilogue_) std::memcpy(out, res, res_bytes);
    } else {
      dst_conv_.set_data_handle(ws);
      if (attrs_.has_residual && !own_epilogue_) {
        residual_user_.set_data_handle(res);
        residual_reorder_.execute(strm_, residual_user_, dst_conv_);
      }
    }
    conv_.execute(strm_, {{DNNL_ARG_SRC, src_conv_},
                          {DNNL_ARG_WEIGHTS, w_conv_},
                          {DNNL_ARG_BIAS, bias_},
                          {DNNL_ARG_DST, dst_conv_}});
    if (!int8_out_ && !channels_last_out_) dst_reorder_.execute(strm_, dst_conv_, dst_user_);
    strm_.wait();
    const bool multiply = own_epilogue_ && !attrs_.output_multiplier.empty();
    const bool silu = attrs_.activation == FusedActivation::kSilu;
    const int64_t channels = attrs_.out_shape[1];
    if (multiply && int8_out_) {
      // The float path's arithmetic (below: activation, multiplier), then the next conv's
      // quantisation, on the channels-last v: one pass, each 16 values in registers (three
      // passes cost yolov5n about a third of its INT8 time, docs/weight-refine.md section 6).
      const float* v = reinterpret_cast<const float*>(ws);
      int8_t* q = reinterpret_cast<int8_t*>(out);
      cpu::parallel_chunks(m, [&](int64_t c0, int64_t len) {
        epilogue_.activation_quantize(v + c0, nullptr, multiplier_ext_.data(), channels, c0, out_scale_,
                                      out_zp_, silu, q + c0, len);
      });
    } else if (float_residual_int8_out_) {
      // The float path's arithmetic exactly (below: activation plus the float residual, this
      // ISA's activation_float), then its reader's quantisation, in one pass.
      const float* v = reinterpret_cast<const float*>(ws);
      const float* r = reinterpret_cast<const float*>(res);
      if (!residual_channels_last_) {
        std::byte* nhwc = ws + align64(dst_conv_.get_desc().get_size());
        residual_user_.set_data_handle(res);
        residual_nhwc_.set_data_handle(nhwc);
        residual_reorder_.execute(strm_, residual_user_, residual_nhwc_);
        strm_.wait();
        r = reinterpret_cast<const float*>(nhwc);
      }
      int8_t* q = reinterpret_cast<int8_t*>(out);
      cpu::parallel_chunks(m, [&](int64_t c0, int64_t len) {
        epilogue_.activation_quantize(v + c0, r + c0, nullptr, channels, c0, out_scale_, out_zp_, silu,
                                      q + c0, len);
      });
    } else if (own_epilogue_ && int8_out_) {
      // The float path's arithmetic (below, then the next conv's quantisation), written as int8.
      const float* v = reinterpret_cast<const float*>(ws);
      int8_t* q = reinterpret_cast<int8_t*>(out);
      const int8_t* r = reinterpret_cast<const int8_t*>(res);
      cpu::parallel_chunks(m, [&](int64_t c0, int64_t len) {
        epilogue_.requantize_activation(v + c0, r ? r + c0 : nullptr, residual_scale_, out_scale_, out_zp_,
                                        silu, q + c0, len);
      });
    } else if (own_epilogue_) {
      float* y = reinterpret_cast<float*>(out);
      const float* r = reinterpret_cast<const float*>(res);
      cpu::parallel_chunks(m, [&](int64_t c0, int64_t len) {
        epilogue_.activation_float(y + c0, r ? r + c0 : nullptr, silu, y + c0, len);
      });
      if (multiply) {  // per output channel, in the layout the output is written in
        const int64_t n = attrs_.out_shape[0] / items;
        const int64_t pixels = m / (n * channels);
        if (channels_last_out_)
          cpu::scale_channels(y, n * pixels, channels, 1, attrs_.output_multiplier.data());
        else
          cpu::scale_channels(y, n, channels, pixels, attrs_.output_multiplier.data());
      }
    }
  }

  // Row bands (cpu_kernel.h) for a 1x1 conv from int8 to channels-last float without residual
  // (the Detect head): a primitive for kBandBytes of output rows, so that the decode reads them
  // from the cache instead of a 6.5 MB output written to memory (yolov5n's 80x80 head).
  void prepare_bands(const dnnl::convolution_forward::primitive_desc& pd, const dnnl::primitive_attr& pattr,
                     const memory::desc& w_md, const memory::desc& bias_md, const Shape& xs,
                     const Shape& ys) {
    const ConvAttrs& a = attrs_;
    const auto& win = a.window;
    bool pointwise = xs.size() == 4 && a.group == 1;
    for (size_t i = 0; i < win.strides.size() && pointwise; ++i)
      pointwise =
          win.strides[i] == 1 && win.dilations[i] == 1 && win.pads_begin[i] == 0 && win.pads_end[i] == 0;
    if (!pointwise || !int8_in_ || int8_out_ || !channels_last_out_ || own_epilogue_ || a.has_residual ||
        per_item_ || ys[2] != xs[2] || ys[3] != xs[3] || weights_q_.shape()[2] != 1 ||
        weights_q_.shape()[3] != 1)
      return;
    constexpr int64_t kBandBytes = 768 << 10;
    const int64_t h = ys[2], w = ys[3], row_bytes = w * ys[1] * 4;
    int64_t rows = 0;
    for (int64_t r = 1; r <= h; ++r)
      if (h % r == 0 && r * row_bytes <= kBandBytes) rows = r;
    if (rows == 0 || rows == h) return;
    memory::desc src({1, xs[1], rows, w}, dt::s8, tag::nhwc), dst({1, ys[1], rows, w}, dt::f32, tag::nhwc);
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                      src, w_md, bias_md, dst, to_dims(win.strides), memory::dims(2, 0),
                                      to_dims(win.pads_begin), to_dims(win.pads_end));
    dnnl::convolution_forward::primitive_desc bpd(d, pattr, eng_);
    if (bpd.src_desc() != src || bpd.dst_desc() != dst) return;
    if (bpd.weights_desc() == pd.weights_desc()) {
      band_w_ = w_conv_;
    } else {
      memory::desc w_user_md(to_dims(weights_q_.shape()), dt::s8, tag::oihw);
      memory w_user(w_user_md, eng_, weights_q_.raw());
      band_w_ = memory(bpd.weights_desc(), eng_);
      dnnl::reorder(w_user, band_w_).execute(strm_, w_user, band_w_);
      strm_.wait();
    }
    band_conv_ = dnnl::convolution_forward(bpd);
    band_src_ = memory(src, eng_, DNNL_MEMORY_NONE);
    band_dst_ = memory(dst, eng_, DNNL_MEMORY_NONE);
    band_rows_ = rows;
  }

 public:
  int64_t band_rows() const override { return band_rows_; }
  Status run_band(std::span<const Tensor* const> inputs, float* band, int64_t r0) override {
    try {
      const int64_t w = attrs_.out_shape[3], cin = inputs[0]->shape()[1];
      band_src_.set_data_handle(const_cast<int8_t*>(inputs[0]->data<int8_t>()) + r0 * w * cin);
      band_dst_.set_data_handle(band);
      band_conv_.execute(strm_, {{DNNL_ARG_SRC, band_src_},
                                 {DNNL_ARG_WEIGHTS, band_w_},
                                 {DNNL_ARG_BIAS, bias_},
                                 {DNNL_ARG_DST, band_dst_}});
      strm_.wait();
    } catch (const dnnl::error& e) {
      return internal_error(name_ + ": oneDNN INT8 band execution failed (" + e.what() + ")");
    }
    return Status::ok();
  }

 private:
  // The stem kernel's rows, each through the epilogue the oneDNN path runs on its output (the
  // same functions per element: the same integers).
  void run_stem(const float* x, int8_t* q, int64_t m, int64_t images) {
    const int64_t channels = attrs_.out_shape[1], per_image = m / images,
                  row = per_image / attrs_.out_shape[2];
    const bool silu = attrs_.activation == FusedActivation::kSilu;
    const float* mult = attrs_.output_multiplier.empty() ? nullptr : multiplier_ext_.data();
    for (int64_t image = 0; image < images; ++image) {
      int8_t* qi = q + image * per_image;
      stem_->run(x + image * 3 * image_pixels_, input_scale_, epilogue_, workspace_,
                 [&](int64_t oy, const float* v) {
                   if (mult)
                     epilogue_.activation_quantize(v, nullptr, mult, channels, 0, out_scale_, out_zp_, silu,
                                                   qi + oy * row, row);
                   else
                     epilogue_.requantize_activation(v, nullptr, 1.f, out_scale_, out_zp_, silu,
                                                     qi + oy * row, row);
                 });
    }
  }

  std::string name_;
  ConvAttrs attrs_;
  std::optional<cpu::Int8Stem> stem_;  // the image stem on AVX512-VNNI (int8_stem.h)
  int64_t band_rows_ = 0;              // row bands (prepare_bands): rows per band, 0 without
  dnnl::convolution_forward band_conv_;
  memory band_src_, band_dst_, band_w_;
  float input_scale_ = 0.f;
  bool per_item_ = false;  // see prepare_impl
  int64_t batch_ = 1;
  float out_scale_ = 1.f, residual_scale_ = 1.f;  // int8 output / int8 residual scales
  int32_t input_zp_ = 0, out_zp_ = 0;             // zero points of the input / int8 output (0: symmetric)
  bool int8_in_ = false, int8_out_ = false, int8_residual_ = false;  // the int8 plan (see the top)
  bool own_epilogue_ = false;             // activation (+ residual) applied after oneDNN, see the top
  bool float_residual_int8_out_ = false;  // int8 output, float residual added by our epilogue
  bool image_to_nhwc_ = false;            // see prepare_impl
  int64_t image_pixels_ = 0;
  bool residual_channels_last_ = false;  // that residual is nhwc (else reordered to nhwc first)
  bool channels_last_in_ = false;        // float input nhwc (passes.h)
  bool channels_last_out_ = false;       // float output written nhwc in place (passes.h)
  cpu::Int8Epilogue epilogue_ = cpu::scalar_int8_epilogue();
  bool src_reordered_ = false;
  std::vector<float> weight_scales_;
  std::vector<float> multiplier_ext_;  // the output multiplier, extended (see prepare_impl)
  Tensor weights_q_, bias_scaled_;
  size_t src_q_bytes_ = 0;
  std::byte* workspace_ = nullptr;
  std::string impl_;
  dnnl::engine eng_;
  dnnl::stream strm_;
  dnnl::convolution_forward conv_;
  memory src_user_, src_conv_, dst_user_, dst_conv_, w_conv_, bias_, residual_user_, residual_nhwc_;
  dnnl::reorder src_reorder_, dst_reorder_, residual_reorder_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_conv2d_int8(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuConvInt8>(node));
}

namespace cpu {

float int8_conv_weight_adjust() {
  static const float adjust = [] {
    try {
      const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
      const memory::desc src({1, 16, 4, 4}, dt::s8, tag::nhwc), dst({1, 16, 4, 4}, dt::f32, tag::nhwc);
      const memory::desc w({16, 16, 1, 1}, dt::s8, tag::any);
      const dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                              dnnl::algorithm::convolution_direct, src, w, dst, {1, 1}, {0, 0},
                                              {0, 0});
      const dnnl::convolution_forward::primitive_desc pd(d, eng);
      const dnnl_memory_desc_t& md = pd.weights_desc().data;
      return (md.extra.flags & dnnl_memory_extra_flag_scale_adjust) != 0 ? md.extra.scale_adjust : 1.f;
    } catch (const dnnl::error&) {
      return 1.f;
    }
  }();
  return adjust;
}

int32_t int8_conv_effective_weight(int8_t q) {
  if (int8_conv_weight_adjust() == 1.f) return q;
  return static_cast<int32_t>(2.f * std::nearbyint(0.5f * static_cast<float>(q)));
}

}  // namespace cpu

}  // namespace qyolo
