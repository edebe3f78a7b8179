// Conv on the CPU through oneDNN (fp32), with qyolo's fused activation and residual (see conv2d.h).
//
// Layout: qyolo activations are dense NCHW. prepare() lets oneDNN pick its preferred activation
// layout (format_tag::any, in practice nChw16c + the brgconv kernels) and puts reorders around the
// convolution. Measured on this AVX-512 machine (bench/bench_cpu_conv.cpp, YOLOv5s layers), that
// is 1.2-4x faster than running oneDNN on the plain NCHW buffers, where it falls back to
// im2col + sgemm. QYOLO_CONV_LAYOUT=plain forces the plain path (benchmarks, debugging).
//
// Memory: the blocked copies of src/dst live in the executor's shared workspace (kernels of an
// executor run one at a time), so they cost the largest layer instead of the sum over layers
// (about 265 MB for YOLOv5s at 640).
//
// Fusions: the activation is an eltwise post-op; the residual is a sum post-op (dst is seeded with
// the residual before the convolution). Where the chosen implementation cannot do that efficiently
// (oneDNN's gemm path has no fast sum-after-eltwise: it drops to the reference kernel), the
// residual is added by a separate pass instead.
#include "ir/ops/conv2d.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <string_view>
#include <unordered_map>

#include "backends/cpu/conv2d_int8.h"
#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/int8_epilogue.h"
#include "passes/passes.h"

namespace qyolo {

namespace {

using dnnl::memory;
using tag = memory::format_tag;

tag plain_act_tag(size_t spatial) {
  return spatial == 1 ? tag::ncw : spatial == 2 ? tag::nchw : tag::ncdhw;
}
tag plain_weight_tag(size_t spatial, bool grouped) {
  if (grouped) return spatial == 1 ? tag::goiw : spatial == 2 ? tag::goihw : tag::goidhw;
  return spatial == 1 ? tag::oiw : spatial == 2 ? tag::oihw : tag::oidhw;
}

memory::dims to_dims(const std::vector<int64_t>& v) {
  return memory::dims(v.begin(), v.end());
}

bool force_plain_layout() {
  const char* env = std::getenv("QYOLO_CONV_LAYOUT");
  return env != nullptr && std::strcmp(env, "plain") == 0;
}

class CpuConv final : public CpuKernel {
 public:
  explicit CpuConv(const Node& node) : name_(node.describe()) {}

  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    try {
      return prepare_impl(node, inputs);
    } catch (const dnnl::error& e) {
      return unsupported(name_ + ": oneDNN could not build this convolution (" + e.what() + ", status " +
                         std::to_string(static_cast<int>(e.status)) + ")");
    }
  }

  size_t workspace_bytes() const override {
    return (src_reordered_ ? align64(src_conv_.get_desc().get_size()) : 0) +
           (dst_reordered_ ? align64(dst_conv_.get_desc().get_size()) : 0);
  }
  void set_workspace(std::byte* workspace) override { workspace_ = workspace; }
  std::string implementation() const override { return impl_; }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    try {
      return run_impl(inputs, outputs);
    } catch (const dnnl::error& e) {
      return internal_error(name_ + ": oneDNN execution failed (" + e.what() + ")");
    }
  }

 private:
  // pin_channels_last: channels-last values (passes.h) are read and written as they are (no
  // reorder); without it oneDNN chooses, as for any other value.
  dnnl::convolution_forward::primitive_desc make_pd(bool blocked, bool residual_post_op,
                                                    bool pin_channels_last) const {
    const ConvAttrs& a = attrs_;
    const size_t k = x_shape_.size() - 2;
    const tag act_tag = blocked ? tag::any : plain_act_tag(k);
    memory::desc src_md(to_dims(x_shape_), memory::data_type::f32,
                        channels_last_in_ && pin_channels_last ? tag::nhwc : act_tag);
    memory::desc dst_md(to_dims(a.out_shape), memory::data_type::f32,
                        channels_last_out_ && pin_channels_last ? tag::nhwc : act_tag);
    memory::desc w_md(w_dims_, memory::data_type::f32, tag::any);
    memory::desc bias_md({a.out_shape[1]}, memory::data_type::f32, tag::x);
    memory::dims strides = to_dims(a.window.strides), pads_l = to_dims(a.window.pads_begin),
                 pads_r = to_dims(a.window.pads_end), dil(k);
    for (size_t i = 0; i < k; ++i) dil[i] = a.window.dilations[i] - 1;

    dnnl::post_ops po;
    switch (a.activation) {
      case FusedActivation::kNone:
        break;
      case FusedActivation::kRelu:
        po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
        break;
      case FusedActivation::kLeakyRelu:
        po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, a.activation_alpha, 0.f);
        break;
      case FusedActivation::kSilu:
        po.append_eltwise(1.f, dnnl::algorithm::eltwise_swish, 1.f, 0.f);
        break;
      case FusedActivation::kSigmoid:
        po.append_eltwise(1.f, dnnl::algorithm::eltwise_logistic, 0.f, 0.f);
        break;
      case FusedActivation::kHardSwish:
        po.append_eltwise(1.f, dnnl::algorithm::eltwise_hardswish, 0.f, 0.f);
        break;
    }
    if (residual_post_op) po.append_sum(1.f);
    dnnl::primitive_attr pattr;
    pattr.set_post_ops(po);
    const auto prop = dnnl::prop_kind::forward_inference;
    const auto alg = dnnl::algorithm::convolution_direct;
    if (a.has_bias) {
      return {dnnl::convolution_forward::desc(prop, alg, src_md, w_md, bias_md, dst_md, strides, dil, pads_l,
                                              pads_r),
              pattr, eng_};
    }
    return {dnnl::convolution_forward::desc(prop, alg, src_md, w_md, dst_md, strides, dil, pads_l, pads_r),
            pattr, eng_};
  }

  Status prepare_impl(const Node& node, std::span<const ValueDesc* const> inputs) {
    x_shape_ = inputs[0]->shape;
    const Shape& w = inputs[1]->shape;
    QYOLO_ASSIGN_OR_RETURN(attrs_, ConvAttrs::parse(node, x_shape_, w));
    const ConvAttrs& a = attrs_;
    const size_t k = x_shape_.size() - 2;
    const bool grouped = a.group > 1;
    if (grouped) {
      w_dims_ = {a.group, w[0] / a.group, w[1]};
      for (size_t i = 2; i < w.size(); ++i) w_dims_.push_back(w[i]);
    } else {
      w_dims_ = to_dims(w);
    }
    eng_ = dnnl::engine(dnnl::engine::kind::cpu, 0);
    strm_ = dnnl::stream(eng_);

    // Channels-last input / output (plan_channels_last_float / _decode, passes.h); a residual is
    // channels-last exactly when the output is.
    channels_last_in_ = node.has_attr(kChannelsLastInputAttr);
    channels_last_out_ = node.has_attr(kChannelsLastOutputAttr);
    if ((channels_last_in_ || channels_last_out_) && k != 2)
      return internal_error(name_ + ": channels-last values are 4-D");
    const bool blocked = !force_plain_layout();
    // oneDNN's reference kernel is 10-1000x slower than its JIT ones: where the pinned layout or
    // the residual post-op leads there, try without them. E.g. on AVX2 (no AVX-512) the 3-channel
    // image stem read as nhwc has no JIT kernel (1.9 s for yolov5n's stem); its blocked form has.
    const auto is_ref = [](const dnnl::convolution_forward::primitive_desc& p) {
      return std::string_view(p.impl_info_str()).substr(0, 3) == "ref";
    };
    const bool pinned = channels_last_in_ || channels_last_out_;
    const auto jit_if_any = [&](bool residual_post_op) {
      auto p = make_pd(blocked, residual_post_op, true);
      if (is_ref(p) && pinned) {
        auto unpinned = make_pd(blocked, residual_post_op, false);
        if (!is_ref(unpinned)) return unpinned;
      }
      return p;
    };
    auto pd = jit_if_any(a.has_residual);
    if (a.has_residual && is_ref(pd)) {
      pd = jit_if_any(false);
      residual_pass_ = true;
    }
    conv_ = dnnl::convolution_forward(pd);
    impl_ = pd.impl_info_str();

    memory::desc src_user_md(to_dims(x_shape_), memory::data_type::f32,
                             channels_last_in_ ? tag::nhwc : plain_act_tag(k));
    memory::desc dst_user_md(to_dims(a.out_shape), memory::data_type::f32,
                             channels_last_out_ ? tag::nhwc : plain_act_tag(k));
    src_user_ = memory(src_user_md, eng_, DNNL_MEMORY_NONE);
    dst_user_ = memory(dst_user_md, eng_, DNNL_MEMORY_NONE);
    src_reordered_ = pd.src_desc() != src_user_md;
    dst_reordered_ = pd.dst_desc() != dst_user_md;
    if (src_reordered_) {
      src_conv_ = memory(pd.src_desc(), eng_, DNNL_MEMORY_NONE);
      src_reorder_ = dnnl::reorder(src_user_, src_conv_);
    } else {
      src_conv_ = src_user_;
    }
    if (dst_reordered_) {
      dst_conv_ = memory(pd.dst_desc(), eng_, DNNL_MEMORY_NONE);
      dst_reorder_ = dnnl::reorder(dst_conv_, dst_user_);
      if (a.has_residual && !residual_pass_) {
        residual_user_ = memory(dst_user_md, eng_, DNNL_MEMORY_NONE);
        residual_reorder_ = dnnl::reorder(residual_user_, dst_conv_);
      }
    } else {
      dst_conv_ = dst_user_;
    }

    // Weights: reordered once when constant, else on every run.
    w_user_ = memory(memory::desc(w_dims_, memory::data_type::f32, plain_weight_tag(k, grouped)), eng_,
                     DNNL_MEMORY_NONE);
    w_conv_ = memory(pd.weights_desc(), eng_);
    w_reorder_ = dnnl::reorder(w_user_, w_conv_);
    weights_const_ = inputs[1]->value.has_value();
    if (weights_const_) {
      w_user_.set_data_handle(const_cast<void*>(inputs[1]->value->raw()));
      w_reorder_.execute(strm_, w_user_, w_conv_);
      strm_.wait();
      w_user_ = memory();
      w_reorder_ = dnnl::reorder();
    }
    if (a.has_bias) {
      bias_ = memory(memory::desc({a.out_shape[1]}, memory::data_type::f32, tag::x), eng_, DNNL_MEMORY_NONE);
      bias_const_ = inputs[2]->value.has_value();
      if (bias_const_) bias_tensor_ = *inputs[2]->value;  // shares storage; keeps the pointer valid
    }
    return Status::ok();
  }

  Status run_impl(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) {
    const ConvAttrs& a = attrs_;
    src_user_.set_data_handle(const_cast<void*>(inputs[0]->raw()));
    dst_user_.set_data_handle(outputs[0]->raw());
    if (!weights_const_) {
      w_user_.set_data_handle(const_cast<void*>(inputs[1]->raw()));
      w_reorder_.execute(strm_, w_user_, w_conv_);
    }
    if (a.has_bias)
      bias_.set_data_handle(const_cast<void*>(bias_const_ ? bias_tensor_.raw() : inputs[2]->raw()));
    if (src_reordered_) {
      src_conv_.set_data_handle(workspace_);
      src_reorder_.execute(strm_, src_user_, src_conv_);
    }
    if (dst_reordered_) {
      dst_conv_.set_data_handle(workspace_ + (src_reordered_ ? align64(src_conv_.get_desc().get_size()) : 0));
    }
    if (a.has_residual && !residual_pass_) {
      // The sum post-op accumulates into dst: seed dst with the residual.
      const Tensor* r = inputs[3];
      if (dst_reordered_) {
        residual_user_.set_data_handle(const_cast<void*>(r->raw()));
        residual_reorder_.execute(strm_, residual_user_, dst_conv_);
      } else {
        strm_.wait();
        std::memcpy(outputs[0]->raw(), r->raw(), r->nbytes());
      }
    }
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, src_conv_}, {DNNL_ARG_WEIGHTS, w_conv_}, {DNNL_ARG_DST, dst_conv_}};
    if (a.has_bias) args[DNNL_ARG_BIAS] = bias_;
    conv_.execute(strm_, args);
    if (dst_reordered_) dst_reorder_.execute(strm_, dst_conv_, dst_user_);
    strm_.wait();
    if (residual_pass_) {
      float* y = outputs[0]->data<float>();
      const float* r = inputs[3]->data<float>();
      const int64_t n = outputs[0]->numel();
#pragma omp parallel for schedule(static) if (n > (1 << 15))
      for (int64_t i = 0; i < n; ++i) y[i] += r[i];
    }
    if (!a.output_multiplier.empty()) {
      Tensor& y = *outputs[0];  // per output channel, in the layout the output is written in
      const int64_t pixels = y.numel() / (y.dim(0) * y.dim(1));
      if (channels_last_out_)
        cpu::scale_channels(y.data<float>(), y.dim(0) * pixels, y.dim(1), 1, a.output_multiplier.data());
      else
        cpu::scale_channels(y.data<float>(), y.dim(0), y.dim(1), pixels, a.output_multiplier.data());
    }
    return Status::ok();
  }

  std::string name_;
  ConvAttrs attrs_;
  Shape x_shape_;
  memory::dims w_dims_;
  bool src_reordered_ = false, dst_reordered_ = false;
  std::byte* workspace_ = nullptr;
  bool residual_pass_ = false;  // residual added after the convolution instead of as a post-op
  bool channels_last_in_ = false, channels_last_out_ = false;  // nhwc values (passes.h)
  bool weights_const_ = false, bias_const_ = false;
  std::string impl_;  // oneDNN implementation name (implementation())
  dnnl::engine eng_;
  dnnl::stream strm_;
  dnnl::convolution_forward conv_;
  memory src_user_, dst_user_, src_conv_, dst_conv_, w_user_, w_conv_, bias_, residual_user_;
  dnnl::reorder src_reorder_, dst_reorder_, w_reorder_, residual_reorder_;
  Tensor bias_tensor_;
};

}  // namespace

namespace {
// INT8 where oneDNN has an int8 kernel for the layer; otherwise the layer runs in FP32, as TensorRT
// falls back to a higher-precision tactic. `ran_int8()` tells which.
class CpuConvInt8OrFloat final : public CpuKernel {
 public:
  explicit CpuConvInt8OrFloat(const Node& node) : node_(node) {}
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    QYOLO_ASSIGN_OR_RETURN(impl_, make_cpu_conv2d_int8(node));
    Status int8 = impl_->prepare(node, inputs, outputs);
    if (int8.is_ok()) return Status::ok();
    // Int8 values planned around the conv (src/quant/int8_dataflow.h) leave no float fallback
    // (a channels-last float output has one: CpuConv writes it too).
    bool planned = outputs[0].dtype == DataType::kInt8;
    for (const auto* in : inputs) planned = planned || (in != nullptr && in->dtype == DataType::kInt8);
    if (planned) return int8;
    impl_ = std::make_unique<CpuConv>(node);
    return impl_->prepare(node, inputs, outputs);
  }
  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    return impl_->run(inputs, outputs);
  }
  size_t workspace_bytes() const override { return impl_->workspace_bytes(); }
  void set_workspace(std::byte* workspace) override { impl_->set_workspace(workspace); }
  std::string implementation() const override { return impl_->implementation(); }
  int64_t band_rows() const override { return impl_->band_rows(); }
  Status run_band(std::span<const Tensor* const> inputs, float* band, int64_t r0) override {
    return impl_->run_band(inputs, band, r0);
  }

 private:
  const Node& node_;
  std::unique_ptr<CpuKernel> impl_;
};
}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_conv2d(const Node& node) {
  // quantize_graph marks the convs that run in INT8 with their input scale.
  if (node.has_attr("qyolo_input_scale"))
    return std::unique_ptr<CpuKernel>(std::make_unique<CpuConvInt8OrFloat>(node));
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuConv>(node));
}

}  // namespace qyolo
