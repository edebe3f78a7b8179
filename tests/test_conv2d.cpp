// Conv (oneDNN CPU kernel) against a naive direct convolution: shapes, groups, strides, pads,
// dilations, auto_pad, 1D/3D, qyolo fused activations and residual, both activation layouts,
// constant and runtime weights. Plus YOLOv5-specific MaxPool (SPPF) and Resize (2x nearest) checks.
#include <cmath>
#include <cstdlib>
#include <random>

#include "backends/cpu/cpu_kernel.h"
#include "ir/op_registry.h"
#include "ir/ops/conv2d.h"
#include "passes/passes.h"
#include "test_support.h"

using namespace qyolo;

// Test cases below list only the leading ConvCase fields they need.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace {

Tensor random_tensor(const Shape& shape, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
  Tensor t(DataType::kFloat32, shape);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

struct ConvCase {
  Shape x, w;
  int64_t group = 1;
  std::vector<int64_t> strides, dilations, pads;  // empty: attribute absent
  std::string auto_pad;                           // empty: absent
  bool bias = true;
  std::string activation;
  float alpha = 0.1f;
  bool residual = false;
};

Node make_conv_node(const ConvCase& c) {
  Node n;
  n.name = "test_conv";
  n.op_type = "Conv";
  n.inputs = {"x", "w", c.bias ? "b" : ""};
  if (c.residual) n.inputs.push_back("r");
  while (!n.inputs.empty() && n.inputs.back().empty()) n.inputs.pop_back();
  n.outputs = {"y"};
  if (c.group != 1) n.attrs["group"] = c.group;
  if (!c.strides.empty()) n.attrs["strides"] = c.strides;
  if (!c.dilations.empty()) n.attrs["dilations"] = c.dilations;
  if (!c.pads.empty()) n.attrs["pads"] = c.pads;
  if (!c.auto_pad.empty()) n.attrs["auto_pad"] = c.auto_pad;
  n.attrs["kernel_shape"] = std::vector<int64_t>(c.w.begin() + 2, c.w.end());
  if (!c.activation.empty()) n.attrs["qyolo_activation"] = c.activation;
  if (c.activation == "leaky_relu") n.attrs["qyolo_activation_alpha"] = c.alpha;
  return n;
}

// Naive direct convolution in double (1-3 spatial dims, treated as 3-D with leading 1s).
Tensor reference_conv(const ConvCase& c, const ConvAttrs& a, const Tensor& x, const Tensor& w,
                      const Tensor* b, const Tensor* r) {
  const size_t k = c.x.size() - 2, skip = 3 - k;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, ker[3] = {1, 1, 1}, st[3] = {1, 1, 1}, dil[3] = {1, 1, 1},
          pb[3] = {0, 0, 0};
  for (size_t i = 0; i < k; ++i) {
    in[skip + i] = c.x[2 + i];
    out[skip + i] = a.out_shape[2 + i];
    ker[skip + i] = c.w[2 + i];
    st[skip + i] = a.window.strides[i];
    dil[skip + i] = a.window.dilations[i];
    pb[skip + i] = a.window.pads_begin[i];
  }
  const int64_t n_batch = c.x[0], cin = c.x[1], m = c.w[0], cpg = cin / a.group, mpg = m / a.group;
  Tensor y(DataType::kFloat32, a.out_shape);
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  float* yp = y.data<float>();
  for (int64_t n = 0; n < n_batch; ++n)
    for (int64_t oc = 0; oc < m; ++oc) {
      const int64_t g = oc / mpg;
      for (int64_t o0 = 0; o0 < out[0]; ++o0)
        for (int64_t o1 = 0; o1 < out[1]; ++o1)
          for (int64_t o2 = 0; o2 < out[2]; ++o2) {
            double s = b ? b->data<float>()[oc] : 0.0;
            for (int64_t ic = 0; ic < cpg; ++ic)
              for (int64_t k0 = 0; k0 < ker[0]; ++k0)
                for (int64_t k1 = 0; k1 < ker[1]; ++k1)
                  for (int64_t k2 = 0; k2 < ker[2]; ++k2) {
                    const int64_t i0 = o0 * st[0] - pb[0] + k0 * dil[0];
                    const int64_t i1 = o1 * st[1] - pb[1] + k1 * dil[1];
                    const int64_t i2 = o2 * st[2] - pb[2] + k2 * dil[2];
                    if (i0 < 0 || i0 >= in[0] || i1 < 0 || i1 >= in[1] || i2 < 0 || i2 >= in[2]) continue;
                    const int64_t xi = (((n * cin + g * cpg + ic) * in[0] + i0) * in[1] + i1) * in[2] + i2;
                    const int64_t wi = (((oc * cpg + ic) * ker[0] + k0) * ker[1] + k1) * ker[2] + k2;
                    s += static_cast<double>(xp[xi]) * wp[wi];
                  }
            const int64_t yi = (((n * m + oc) * out[0] + o0) * out[1] + o1) * out[2] + o2;
            float v = apply_fused_activation(a.activation, a.activation_alpha, static_cast<float>(s));
            if (r) v += r->data<float>()[yi];
            yp[yi] = v;
          }
    }
  return y;
}

// Runs the kernel the way the executor does; weights_const=false leaves W/B non-constant in prepare.
Result<Tensor> run_conv_kernel(const Node& node, const std::vector<Tensor>& ins, bool weights_const) {
  std::vector<ValueDesc> descs;
  for (size_t i = 0; i < ins.size(); ++i) {
    ValueDesc d{ins[i].dtype(), ins[i].shape(), std::nullopt};
    if (weights_const && (i == 1 || i == 2)) d.value = ins[i];
    descs.push_back(d);
  }
  InferContext ctx{node, 13, {}, {}};
  for (size_t i = 0; i < node.inputs.size(); ++i)
    ctx.inputs.push_back(node.has_input(i) ? &descs[i] : nullptr);
  QYOLO_RETURN_IF_ERROR(infer_node(ctx));
  QYOLO_ASSIGN_OR_RETURN(auto kernel, make_cpu_conv2d(node));
  QYOLO_RETURN_IF_ERROR(kernel->prepare(node, ctx.inputs, ctx.outputs));
  Tensor workspace = give_own_workspace(*kernel);
  std::vector<const Tensor*> in_ptrs;
  for (size_t i = 0; i < node.inputs.size(); ++i) in_ptrs.push_back(node.has_input(i) ? &ins[i] : nullptr);
  Tensor y = Tensor::uninitialized(ctx.outputs[0].dtype, ctx.outputs[0].shape);
  Tensor* out_ptr = &y;
  // Twice: the second run checks that state carried between runs (residual seeding) is right.
  for (int rep = 0; rep < 2; ++rep)
    QYOLO_RETURN_IF_ERROR(kernel->run(in_ptrs, std::span<Tensor* const>(&out_ptr, 1)));
  return y;
}

::testing::AssertionResult close(const Tensor& ref, const Tensor& got, double rtol = 1e-4) {
  if (ref.shape() != got.shape())
    return ::testing::AssertionFailure()
           << "shape " << shape_str(got.shape()) << " != " << shape_str(ref.shape());
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double e = ref.data<float>()[i], a = got.data<float>()[i];
    if (!(std::fabs(a - e) <= rtol * (1.0 + std::fabs(e))))
      return ::testing::AssertionFailure() << "element " << i << ": " << a << " vs reference " << e;
  }
  return ::testing::AssertionSuccess();
}

class ScopedLayout {
 public:
  explicit ScopedLayout(const char* layout) {
    if (layout) setenv("QYOLO_CONV_LAYOUT", layout, 1);
  }
  ~ScopedLayout() { unsetenv("QYOLO_CONV_LAYOUT"); }
};

void check_case(const ConvCase& c, uint32_t seed, const char* layout = nullptr, bool weights_const = true) {
  SCOPED_TRACE("x " + shape_str(c.x) + " w " + shape_str(c.w) + " group " + std::to_string(c.group) +
               " act '" + c.activation + "' residual " + std::to_string(c.residual) + " layout " +
               (layout ? layout : "auto") + " const weights " + std::to_string(weights_const));
  ScopedLayout scoped(layout);
  std::mt19937 rng(seed);
  Node node = make_conv_node(c);
  auto attrs = ConvAttrs::parse(node, c.x, c.w);
  ASSERT_TRUE(attrs.is_ok()) << attrs.status().to_string();
  std::vector<Tensor> ins = {random_tensor(c.x, rng), random_tensor(c.w, rng)};
  ins.push_back(c.bias ? random_tensor({c.w[0]}, rng) : Tensor());
  if (c.residual) ins.push_back(random_tensor(attrs->out_shape, rng, -2.f, 2.f));
  if (!c.residual && !c.bias) ins.pop_back();
  auto got = run_conv_kernel(node, ins, weights_const);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  Tensor ref =
      reference_conv(c, *attrs, ins[0], ins[1], c.bias ? &ins[2] : nullptr, c.residual ? &ins[3] : nullptr);
  EXPECT_TRUE(close(ref, *got));
}

TEST(Conv2d, BasicShapesAgainstNaive) {
  std::vector<ConvCase> cases = {
      {{1, 3, 8, 8}, {4, 3, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {{2, 5, 9, 7}, {6, 5, 3, 2}, 1, {2, 1}, {}, {0, 1, 1, 0}},        // stride, asymmetric pads
      {{1, 8, 11, 10}, {6, 4, 3, 3}, 2, {1, 2}, {2, 2}, {2, 1, 2, 1}},  // groups, dilation
      {{1, 16, 12, 12}, {16, 1, 3, 3}, 16, {2, 2}, {}, {1, 1, 1, 1}},   // depthwise
      {{1, 3, 13, 13}, {8, 3, 6, 6}, 1, {2, 2}, {}, {2, 2, 2, 2}},      // YOLOv5 stem shape, scaled down
      {{1, 32, 20, 20}, {64, 32, 3, 3}, 1, {2, 2}, {}, {1, 1, 1, 1}},   // YOLOv5 down-sampling conv
      {{1, 64, 10, 10}, {32, 64, 1, 1}, 1, {}, {}, {}},                 // 1x1
      {{1, 4, 7, 9}, {5, 4, 3, 3}, 1, {1, 1}, {}, {}, "", false},       // no bias
  };
  uint32_t seed = 1;
  for (const auto& c : cases) {
    check_case(c, seed++);
    check_case(c, seed++, "plain");
    check_case(c, seed++, "blocked");
  }
}

TEST(Conv2d, AutoPad) {
  for (const char* ap : {"SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET"}) {
    ConvCase c{{1, 3, 10, 9}, {4, 3, 4, 3}, 1, {2, 2}, {}, {}, ap};
    check_case(c, 7);
    ConvCase d{{1, 6, 9, 9}, {4, 3, 3, 3}, 2, {3, 1}, {2, 1}, {}, ap};
    check_case(d, 8);
  }
  // SAME_UPPER puts the odd padding at the end, SAME_LOWER at the beginning.
  Node n = make_conv_node({{1, 1, 4, 4}, {1, 1, 2, 2}, 1, {}, {}, {}, "SAME_UPPER"});
  auto a = ConvAttrs::parse(n, {1, 1, 4, 4}, {1, 1, 2, 2});
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->window.pads_begin, (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(a->window.pads_end, (std::vector<int64_t>{1, 1}));
  n.attrs["auto_pad"] = std::string("SAME_LOWER");
  a = ConvAttrs::parse(n, {1, 1, 4, 4}, {1, 1, 2, 2});
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->window.pads_begin, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(a->out_shape, (Shape{1, 1, 4, 4}));
}

TEST(Conv2d, OneAndThreeSpatialDims) {
  check_case({{2, 4, 17}, {6, 4, 3}, 1, {2}, {2}, {1, 2}}, 11);
  check_case({{1, 4, 17}, {4, 2, 5}, 2, {1}, {1}, {2, 2}, "", true, "silu", 0.1f, true}, 12);
  check_case({{1, 3, 5, 6, 7}, {4, 3, 3, 3, 3}, 1, {1, 2, 1}, {}, {1, 1, 1, 1, 1, 1}}, 13);
}

TEST(Conv2d, FusedActivationsAndResidual) {
  uint32_t seed = 100;
  for (const char* act : {"", "relu", "silu", "sigmoid", "leaky_relu", "hardswish"})
    for (bool residual : {false, true})
      for (const char* layout : {"plain", "blocked"}) {
        // Both layouts: blocked (default; residual as a sum post-op) and plain (residual as a pass).
        check_case({{1, 3, 12, 12}, {8, 3, 3, 3}, 1, {1, 1}, {}, {1, 1, 1, 1}, "", true, act, 0.1f, residual},
                   seed++, layout);
        check_case({{1, 16, 9, 9}, {16, 16, 1, 1}, 1, {}, {}, {}, "", true, act, 0.2f, residual}, seed++,
                   layout);
        check_case({{1, 8, 9, 9}, {8, 2, 3, 3}, 4, {2, 2}, {}, {1, 1, 1, 1}, "", false, act, 0.05f, residual},
                   seed++, layout);
      }
}

// The image stem as the channels-last plan gives it (3 channels, 6x6 stride 2, nhwc input): on
// AVX2 (no AVX-512) oneDNN has no JIT kernel for the nhwc form and fell to its reference one (1.9 s
// for yolov5n's stem); the kernel then lets oneDNN choose the layout and reorders the input.
TEST(Conv2d, ChannelsLastImageStemTakesAJitKernel) {
  for (bool cl_out : {false, true}) {
    SCOPED_TRACE(cl_out ? "nhwc output" : "nchw output");
    ConvCase c{{1, 3, 64, 48}, {16, 3, 6, 6}, 1, {2, 2}, {}, {2, 2, 2, 2}, "", true, "silu", 0.f, false};
    std::mt19937 rng(7);
    Node node = make_conv_node(c);
    node.attrs[kChannelsLastInputAttr] = int64_t{1};
    if (cl_out) node.attrs[kChannelsLastOutputAttr] = int64_t{1};
    auto attrs = ConvAttrs::parse(node, c.x, c.w);
    ASSERT_TRUE(attrs.is_ok()) << attrs.status().to_string();
    std::vector<Tensor> ins = {random_tensor(c.x, rng), random_tensor(c.w, rng), random_tensor({16}, rng)};
    const int64_t h = c.x[2], w = c.x[3];
    Tensor x_nhwc(DataType::kFloat32, c.x);  // the same shape, data in h, w, c order (channels-last)
    for (int64_t ch = 0; ch < 3; ++ch)
      for (int64_t i = 0; i < h * w; ++i) x_nhwc.data<float>()[i * 3 + ch] = ins[0].data<float>()[ch * h * w + i];
    std::vector<ValueDesc> descs = {{DataType::kFloat32, c.x, std::nullopt},
                                    {DataType::kFloat32, c.w, ins[1]},
                                    {DataType::kFloat32, {16}, ins[2]}};
    InferContext ctx{node, 13, {}, {}};
    for (auto& d : descs) ctx.inputs.push_back(&d);
    ASSERT_TRUE(infer_node(ctx).is_ok());
    auto kernel = make_cpu_conv2d(node);
    ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();
    ASSERT_TRUE((*kernel)->prepare(node, ctx.inputs, ctx.outputs).is_ok());
    const std::string impl = (*kernel)->implementation();
    if (__builtin_cpu_supports("avx2")) EXPECT_NE(impl.substr(0, 3), "ref") << impl;
    Tensor workspace = give_own_workspace(**kernel);
    Tensor y = Tensor::uninitialized(ctx.outputs[0].dtype, ctx.outputs[0].shape);
    Tensor* out = &y;
    std::vector<const Tensor*> in_ptrs = {&x_nhwc, &ins[1], &ins[2]};
    ASSERT_TRUE((*kernel)->run(in_ptrs, std::span<Tensor* const>(&out, 1)).is_ok());
    Tensor ref = reference_conv(c, *attrs, ins[0], ins[1], &ins[2], nullptr);
    if (cl_out) {  // back to nchw for the comparison
      const int64_t k = ref.dim(1), pixels = ref.dim(2) * ref.dim(3);
      Tensor y_nchw(DataType::kFloat32, ref.shape());
      for (int64_t ch = 0; ch < k; ++ch)
        for (int64_t i = 0; i < pixels; ++i) y_nchw.data<float>()[ch * pixels + i] = y.data<float>()[i * k + ch];
      y = y_nchw;
    }
    EXPECT_TRUE(close(ref, y)) << impl;
  }
}

TEST(Conv2d, RuntimeWeights) {
  // W and B produced at run time (not constants): reordered on every run.
  check_case({{1, 6, 8, 8}, {4, 3, 3, 3}, 2, {1, 1}, {}, {1, 1, 1, 1}}, 21, "plain", false);
  check_case({{1, 3, 8, 8}, {4, 3, 3, 3}, 1, {2, 2}, {}, {1, 1, 1, 1}, "", true, "silu", 0.1f, true}, 22,
             "blocked", false);
}

TEST(Conv2d, ErrorsNameTheNode) {
  Node n = make_conv_node({{1, 4, 8, 8}, {4, 3, 3, 3}});
  auto a = ConvAttrs::parse(n, {1, 4, 8, 8}, {4, 3, 3, 3});
  ASSERT_FALSE(a.is_ok());
  EXPECT_NE(a.status().message().find("test_conv"), std::string::npos) << a.status().message();
  n = make_conv_node({{1, 3, 8, 8}, {4, 3, 3, 3}});
  n.attrs["qyolo_activation"] = std::string("gelu");
  a = ConvAttrs::parse(n, {1, 3, 8, 8}, {4, 3, 3, 3});
  ASSERT_FALSE(a.is_ok());
  EXPECT_NE(a.status().message().find("gelu"), std::string::npos);
  n = make_conv_node({{1, 3, 2, 2}, {4, 3, 3, 3}});
  a = ConvAttrs::parse(n, {1, 3, 2, 2}, {4, 3, 3, 3});
  EXPECT_FALSE(a.is_ok());
}

// --- YOLOv5-specific configurations of other ops ----------------------------------------------

Result<Tensor> run_single(const Node& node, const std::vector<Tensor>& ins, const std::vector<bool>& is_const,
                          int64_t opset = 13) {
  std::vector<ValueDesc> descs;
  for (size_t i = 0; i < ins.size(); ++i) {
    ValueDesc d{ins[i].dtype(), ins[i].shape(), std::nullopt};
    if (is_const[i]) d.value = ins[i];
    descs.push_back(d);
  }
  InferContext ctx{node, opset, {}, {}};
  for (size_t i = 0; i < node.inputs.size(); ++i)
    ctx.inputs.push_back(node.has_input(i) ? &descs[i] : nullptr);
  QYOLO_RETURN_IF_ERROR(infer_node(ctx));
  CpuKernelFactory f = find_cpu_kernel(node.op_type);
  if (!f) return internal_error("no kernel");
  QYOLO_ASSIGN_OR_RETURN(auto kernel, f(node));
  QYOLO_RETURN_IF_ERROR(kernel->prepare(node, ctx.inputs, ctx.outputs));
  Tensor workspace = give_own_workspace(*kernel);
  std::vector<const Tensor*> in_ptrs;
  for (size_t i = 0; i < node.inputs.size(); ++i) in_ptrs.push_back(node.has_input(i) ? &ins[i] : nullptr);
  Tensor y = Tensor::uninitialized(ctx.outputs[0].dtype, ctx.outputs[0].shape);
  Tensor* out_ptr = &y;
  QYOLO_RETURN_IF_ERROR(kernel->run(in_ptrs, std::span<Tensor* const>(&out_ptr, 1)));
  return y;
}

TEST(YoloOps, SppfMaxPool) {
  std::mt19937 rng(5);
  Tensor x = random_tensor({1, 4, 7, 6}, rng);
  Node n;
  n.name = "sppf_pool";
  n.op_type = "MaxPool";
  n.inputs = {"x"};
  n.outputs = {"y"};
  n.attrs["kernel_shape"] = std::vector<int64_t>{5, 5};
  n.attrs["pads"] = std::vector<int64_t>{2, 2, 2, 2};
  n.attrs["strides"] = std::vector<int64_t>{1, 1};
  auto y = run_single(n, {x}, {false});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  ASSERT_EQ(y->shape(), x.shape());
  for (int64_t c = 0; c < 4; ++c)
    for (int64_t i = 0; i < 7; ++i)
      for (int64_t j = 0; j < 6; ++j) {
        float m = -1e30f;
        for (int64_t a = i - 2; a <= i + 2; ++a)
          for (int64_t b = j - 2; b <= j + 2; ++b)
            if (a >= 0 && a < 7 && b >= 0 && b < 6) m = std::max(m, x.data<float>()[(c * 7 + a) * 6 + b]);
        ASSERT_EQ(y->data<float>()[(c * 7 + i) * 6 + j], m);
      }
}

TEST(YoloOps, ResizeNearest2x) {
  std::mt19937 rng(6);
  Tensor x = random_tensor({1, 3, 4, 5}, rng);
  Node n;
  n.name = "up";
  n.op_type = "Resize";
  n.inputs = {"x", "roi", "scales"};
  n.outputs = {"y"};
  n.attrs["mode"] = std::string("nearest");
  n.attrs["coordinate_transformation_mode"] = std::string("asymmetric");
  n.attrs["nearest_mode"] = std::string("floor");
  Tensor roi(DataType::kFloat32, {0});
  Tensor scales = Tensor::from_vector<float>({4}, {1.f, 1.f, 2.f, 2.f});
  auto y = run_single(n, {x, roi, scales}, {false, true, true}, 12);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  ASSERT_EQ(y->shape(), (Shape{1, 3, 8, 10}));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < 8; ++i)
      for (int64_t j = 0; j < 10; ++j)
        ASSERT_EQ(y->data<float>()[(c * 8 + i) * 10 + j], x.data<float>()[(c * 4 + i / 2) * 5 + j / 2]);
}

}  // namespace
