// Conv on the CPU through oneDNN (fp32), with qyolo's fused activation and residual (see conv2d.h).
//
// Layout: activations are dense NCHW tensors in qyolo. prepare() builds the primitive for the
// concrete shapes and picks, per layer, between running oneDNN directly on the plain NCHW buffers
// and letting oneDNN choose its preferred (blocked) layout with reorders around the convolution.
// See choose_layout() for the measured rule; QYOLO_CONV_LAYOUT=plain|blocked forces one (benchmarks).
#include <oneapi/dnnl/dnnl.hpp>

#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "backends/cpu/cpu_kernel.h"
#include "ir/ops/conv2d.h"

namespace qyolo {

namespace {

using dnnl::memory;
using tag = memory::format_tag;

enum class ConvLayout { kPlain, kBlocked };

tag plain_act_tag(size_t spatial) { return spatial == 1 ? tag::ncw : spatial == 2 ? tag::nchw : tag::ncdhw; }
tag plain_weight_tag(size_t spatial, bool grouped) {
  if (grouped) return spatial == 1 ? tag::goiw : spatial == 2 ? tag::goihw : tag::goidhw;
  return spatial == 1 ? tag::oiw : spatial == 2 ? tag::oihw : tag::oidhw;
}

memory::dims to_dims(const std::vector<int64_t>& v) { return memory::dims(v.begin(), v.end()); }

class CpuConv final : public CpuKernel {
 public:
  explicit CpuConv(const Node& node) : name_(node.describe()) {}

  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    try {
      return prepare_impl(node, inputs, outputs);
    } catch (const dnnl::error& e) {
      return unsupported(name_ + ": oneDNN could not build this convolution (" + e.what() + ", status " +
                         std::to_string(static_cast<int>(e.status)) + ")");
    }
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    try {
      return run_impl(inputs, outputs);
    } catch (const dnnl::error& e) {
      return internal_error(name_ + ": oneDNN execution failed (" + e.what() + ")");
    }
  }

 private:
  static ConvLayout choose_layout(const ConvAttrs& a, const Shape& x, const Shape& w) {
    if (const char* env = std::getenv("QYOLO_CONV_LAYOUT")) {
      if (std::strcmp(env, "plain") == 0) return ConvLayout::kPlain;
      if (std::strcmp(env, "blocked") == 0) return ConvLayout::kBlocked;
    }
    // Measured on AVX-512 (bench/bench_cpu_conv.cpp): with NCHW buffers oneDNN falls back to
    // im2col + sgemm, which beats blocked direct convolution plus two activation reorders for all
    // YOLOv5 layers except those with very few input channels (the 3-channel stem).
    (void)a;
    (void)w;
    return x[1] / a.group <= 4 ? ConvLayout::kBlocked : ConvLayout::kPlain;
  }

  Status prepare_impl(const Node& node, std::span<const ValueDesc* const> inputs,
                      std::span<const ValueDesc> outputs) {
    const Shape& x = inputs[0]->shape;
    const Shape& w = inputs[1]->shape;
    QYOLO_ASSIGN_OR_RETURN(attrs_, ConvAttrs::parse(node, x, w));
    const ConvAttrs& a = attrs_;
    const size_t k = x.size() - 2;
    const bool grouped = a.group > 1;
    layout_ = choose_layout(a, x, w);

    eng_ = dnnl::engine(dnnl::engine::kind::cpu, 0);
    strm_ = dnnl::stream(eng_);

    memory::dims src_dims = to_dims(x), dst_dims = to_dims(a.out_shape);
    memory::dims w_dims;
    if (grouped) {
      w_dims = {a.group, w[0] / a.group, w[1]};
      for (size_t i = 2; i < w.size(); ++i) w_dims.push_back(w[i]);
    } else {
      w_dims = to_dims(w);
    }
    memory::desc src_user_md(src_dims, memory::data_type::f32, plain_act_tag(k));
    memory::desc dst_user_md(dst_dims, memory::data_type::f32, plain_act_tag(k));
    memory::desc w_user_md(w_dims, memory::data_type::f32, plain_weight_tag(k, grouped));
    memory::desc bias_md({w[0]}, memory::data_type::f32, tag::x);
    const tag act_tag = layout_ == ConvLayout::kPlain ? plain_act_tag(k) : tag::any;
    memory::desc src_md(src_dims, memory::data_type::f32, act_tag);
    memory::desc dst_md(dst_dims, memory::data_type::f32, act_tag);
    memory::desc w_md(w_dims, memory::data_type::f32, tag::any);

    memory::dims strides = to_dims(a.window.strides), pads_l = to_dims(a.window.pads_begin),
                 pads_r = to_dims(a.window.pads_end), dil(k);
    for (size_t i = 0; i < k; ++i) dil[i] = a.window.dilations[i] - 1;

    dnnl::post_ops po;
    switch (a.activation) {
      case FusedActivation::kNone: break;
      case FusedActivation::kRelu: po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f); break;
      case FusedActivation::kLeakyRelu:
        po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, a.activation_alpha, 0.f);
        break;
      case FusedActivation::kSilu: po.append_eltwise(1.f, dnnl::algorithm::eltwise_swish, 1.f, 0.f); break;
      case FusedActivation::kSigmoid: po.append_eltwise(1.f, dnnl::algorithm::eltwise_logistic, 0.f, 0.f); break;
      case FusedActivation::kHardSwish: po.append_eltwise(1.f, dnnl::algorithm::eltwise_hardswish, 0.f, 0.f); break;
    }
    if (a.has_residual) {
      residual_post_op_ = po.len();
      po.append_sum(1.f);
    }
    dnnl::primitive_attr pattr;
    pattr.set_post_ops(po);

    dnnl::convolution_forward::desc d =
        a.has_bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                     dnnl::algorithm::convolution_direct, src_md, w_md, bias_md,
                                                     dst_md, strides, dil, pads_l, pads_r)
                   : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                     dnnl::algorithm::convolution_direct, src_md, w_md, dst_md,
                                                     strides, dil, pads_l, pads_r);
    dnnl::convolution_forward::primitive_desc pd(d, pattr, eng_);
    conv_ = dnnl::convolution_forward(pd);

    src_user_ = memory(src_user_md, eng_, DNNL_MEMORY_NONE);
    dst_user_ = memory(dst_user_md, eng_, DNNL_MEMORY_NONE);
    if (pd.src_desc() != src_user_md) {
      src_conv_ = memory(pd.src_desc(), eng_);
      src_reorder_ = dnnl::reorder(src_user_, src_conv_);
    } else {
      src_conv_ = src_user_;
    }
    if (pd.dst_desc() != dst_user_md) {
      dst_conv_ = memory(pd.dst_desc(), eng_);
      dst_reorder_ = dnnl::reorder(dst_conv_, dst_user_);
      if (a.has_residual) {
        residual_user_ = memory(dst_user_md, eng_, DNNL_MEMORY_NONE);
        residual_reorder_ = dnnl::reorder(residual_user_, dst_conv_);
      }
    } else {
      dst_conv_ = dst_user_;
    }
    blocked_ = pd.src_desc() != src_user_md || pd.dst_desc() != dst_user_md;

    // Weights: reorder once when constant, else on every run.
    w_user_ = memory(w_user_md, eng_, DNNL_MEMORY_NONE);
    w_conv_ = memory(pd.weights_desc(), eng_);
    w_reorder_ = dnnl::reorder(w_user_, w_conv_);
    weights_const_ = inputs[1]->value.has_value();
    if (weights_const_) {
      w_user_.set_data_handle(const_cast<void*>(inputs[1]->value->raw()));
      w_reorder_.execute(strm_, w_user_, w_conv_);
      strm_.wait();
      w_user_ = memory();
    }
    if (a.has_bias) {
      bias_ = memory(bias_md, eng_, DNNL_MEMORY_NONE);
      bias_const_ = inputs[2]->value.has_value();
      if (bias_const_) bias_tensor_ = *inputs[2]->value;
    }
    impl_ = pd.impl_info_str();
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
    if (src_conv_ != src_user_) src_reorder_.execute(strm_, src_user_, src_conv_);
    if (a.has_residual) {
      // The sum post-op accumulates into dst: seed dst with the residual.
      const Tensor* r = inputs[3];
      if (dst_conv_ != dst_user_) {
        residual_user_.set_data_handle(const_cast<void*>(r->raw()));
        residual_reorder_.execute(strm_, residual_user_, dst_conv_);
      } else {
        std::memcpy(outputs[0]->raw(), r->raw(), r->nbytes());
      }
    }
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src_conv_}, {DNNL_ARG_WEIGHTS, w_conv_},
                                         {DNNL_ARG_DST, dst_conv_}};
    if (a.has_bias) args[DNNL_ARG_BIAS] = bias_;
    conv_.execute(strm_, args);
    if (dst_conv_ != dst_user_) dst_reorder_.execute(strm_, dst_conv_, dst_user_);
    strm_.wait();
    return Status::ok();
  }

  std::string name_;
  ConvAttrs attrs_;
  ConvLayout layout_ = ConvLayout::kPlain;
  bool blocked_ = false;
  bool weights_const_ = false;
  bool bias_const_ = false;
  int residual_post_op_ = -1;
  std::string impl_;
  dnnl::engine eng_;
  dnnl::stream strm_;
  dnnl::convolution_forward conv_;
  memory src_user_, dst_user_, src_conv_, dst_conv_, w_user_, w_conv_, bias_, residual_user_;
  dnnl::reorder src_reorder_, dst_reorder_, w_reorder_, residual_reorder_;
  Tensor bias_tensor_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_conv2d(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuConv>(node));
}

}  // namespace qyolo
