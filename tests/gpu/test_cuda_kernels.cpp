// Each CUDA kernel against the CPU backend on random inputs, outputs and arena poisoned first, in
// every precision/layout configuration (fp32 NCHW/NHWC, fp16 NHWC/NCHW with and without the fp32
// tail). Small graphs put a Conv in front where a kernel has an NHWC path to exercise.
#include <gtest/gtest.h>

#include "gpu_test_support.h"

using namespace qyolo;
using namespace qyolo::gputest;

namespace {

// Runs `spec` on the CPU and on the GPU in every config; inputs uniform in [lo, hi].
void check(const GraphSpec& spec, float lo = -2.f, float hi = 2.f, double tol_scale = 1.0) {
  expect_gpu_matches_cpu(spec, lo, hi, tol_scale);
}

std::map<std::string, AttrValue> conv_attrs(std::vector<int64_t> k, std::vector<int64_t> s, std::vector<int64_t> p,
                                            int64_t group = 1, std::vector<int64_t> d = {1, 1}) {
  return {{"kernel_shape", k}, {"strides", s}, {"pads", p}, {"group", group}, {"dilations", d}};
}

// Adds Conv(x -> out) with random weights (and bias) to `spec`.
void add_conv(GraphSpec& spec, std::mt19937& rng, const std::string& x, const std::string& out, int64_t c, int64_t k,
              int64_t ks, int64_t stride, int64_t pad, bool bias = true, int64_t group = 1,
              const std::string& act = "", const std::string& residual = "", int64_t dil = 1, float alpha = 0.1f) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(c / group * ks * ks));
  spec.constants[out + "_w"] = random_tensor({k, c / group, ks, ks}, rng, -scale, scale);
  std::vector<std::string> in = {x, out + "_w"};
  if (bias) {
    spec.constants[out + "_b"] = random_tensor({k}, rng, -0.5f, 0.5f);
    in.push_back(out + "_b");
  }
  if (!residual.empty()) {
    if (!bias) in.push_back("");
    in.push_back(residual);
  }
  auto attrs = conv_attrs({ks, ks}, {stride, stride}, {pad, pad, pad, pad}, group, {dil, dil});
  if (!act.empty()) {
    attrs["qyolo_activation"] = act;
    attrs["qyolo_activation_alpha"] = alpha;
  }
  spec.nodes.push_back(make_node("Conv", in, {out}, attrs));
}

struct ConvCase {
  const char* name;
  int64_t n, c, h, w, k, ks, stride, pad, group, dil;
  bool bias;
  const char* act;
  bool residual;
};

class ConvTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvTest, MatchesCpu) {
  QYOLO_REQUIRE_GPU();
  const ConvCase& cc = GetParam();
  std::mt19937 rng(test_seed() + 1);
  GraphSpec spec;
  spec.inputs = {{"x", {cc.n, cc.c, cc.h, cc.w}}};
  std::string res;
  if (cc.residual) {
    const int64_t oh = (cc.h + 2 * cc.pad - cc.dil * (cc.ks - 1) - 1) / cc.stride + 1;
    const int64_t ow = (cc.w + 2 * cc.pad - cc.dil * (cc.ks - 1) - 1) / cc.stride + 1;
    spec.inputs.push_back({"r", {cc.n, cc.k, oh, ow}});
    res = "r";
  }
  add_conv(spec, rng, "x", "y", cc.c, cc.k, cc.ks, cc.stride, cc.pad, cc.bias, cc.group, cc.act, res, cc.dil);
  spec.outputs = {"y"};
  check(spec);
}

INSTANTIATE_TEST_SUITE_P(
    Cuda, ConvTest,
    ::testing::Values(ConvCase{"k1", 1, 16, 20, 20, 32, 1, 1, 0, 1, 1, true, "", false},
                      ConvCase{"k3_silu", 1, 32, 24, 24, 32, 3, 1, 1, 1, 1, true, "silu", false},
                      ConvCase{"k3s2_relu", 2, 16, 33, 31, 24, 3, 2, 1, 1, 1, true, "relu", false},
                      ConvCase{"k6s2_first_layer", 1, 3, 64, 64, 16, 6, 2, 2, 1, 1, true, "silu", false},
                      ConvCase{"grouped_leaky", 1, 16, 12, 12, 16, 3, 1, 1, 4, 1, true, "leaky_relu", false},
                      ConvCase{"dilated_sigmoid", 1, 8, 17, 19, 8, 3, 1, 2, 1, 2, true, "sigmoid", false},
                      ConvCase{"hardswish_residual", 1, 16, 10, 10, 16, 3, 1, 1, 1, 1, true, "hardswish", true},
                      ConvCase{"silu_residual_nobias", 1, 24, 9, 9, 24, 1, 1, 0, 1, 1, false, "silu", true},
                      ConvCase{"odd_nobias", 1, 5, 13, 11, 7, 3, 1, 1, 1, 1, false, "", false},
                      ConvCase{"head_255", 2, 32, 8, 8, 255, 1, 1, 0, 1, 1, true, "", false}),
    [](const ::testing::TestParamInfo<ConvCase>& i) { return std::string(i.param.name); });

// fp16 convs with bias / activation / residual fused into the cuDNN graph (runtime-compiled
// fusion engines), forced on: the same result as the CPU and as our separate epilogue pass.
TEST(CudaKernels, CudnnFusedEpilogue) {
  QYOLO_REQUIRE_GPU();
  const ConvCase cases[] = {
      ConvCase{"k3_silu", 2, 32, 24, 24, 32, 3, 1, 1, 1, 1, true, "silu", false},
      ConvCase{"k1_relu_residual", 1, 16, 20, 20, 16, 1, 1, 0, 1, 1, true, "relu", true},
      ConvCase{"silu_residual_nobias", 1, 24, 9, 9, 24, 1, 1, 0, 1, 1, false, "silu", true},
      ConvCase{"sigmoid_s2", 1, 16, 18, 18, 32, 3, 2, 1, 1, 1, true, "sigmoid", false},
      ConvCase{"bias_only", 1, 32, 10, 10, 64, 1, 1, 0, 1, 1, true, "", false},
  };
  for (const ConvCase& cc : cases) {
    SCOPED_TRACE(cc.name);
    std::mt19937 rng(test_seed() + 31);
    GraphSpec spec;
    spec.inputs = {{"x", {cc.n, cc.c, cc.h, cc.w}}};
    std::string res;
    const int64_t oh = (cc.h + 2 * cc.pad - (cc.ks - 1) - 1) / cc.stride + 1;
    const int64_t ow = (cc.w + 2 * cc.pad - (cc.ks - 1) - 1) / cc.stride + 1;
    if (cc.residual) {
      spec.inputs.push_back({"r", {cc.n, cc.k, oh, ow}});
      res = "r";
    }
    add_conv(spec, rng, "x", "y", cc.c, cc.k, cc.ks, cc.stride, cc.pad, cc.bias, 1, cc.act, res);
    spec.outputs = {"y"};
    auto sg = specialize_spec(spec);
    ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
    std::map<std::string, Tensor> inputs, ref, fused, separate;
    for (const auto& [name, shape] : spec.inputs) inputs[name] = random_tensor(shape, rng, -2.f, 2.f);
    ASSERT_NO_FATAL_FAILURE(cpu_reference(*sg, inputs, ref));
    CudaBuildOptions opt;
    opt.precision = CudaPrecision::kFp16;
    opt.layout = CudaLayout::kNHWC;
    opt.cudnn_fused_epilogue = 2;
    opt.cublaslt_convs = 0;  // cuBLASLt + our epilogue pass may time faster on the 1x1 cases
    auto gpu = CudaExecutor::build(*sg, opt);
    ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
    EXPECT_NE((*gpu)->summary().find("+fused epilogue"), std::string::npos) << (*gpu)->summary();
    ASSERT_TRUE(run_gpu_poisoned(**gpu, inputs, fused).is_ok());
    opt.cudnn_fused_epilogue = 0;
    auto plain = CudaExecutor::build(*sg, opt);
    ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
    EXPECT_EQ((*plain)->summary().find("+fused epilogue"), std::string::npos) << (*plain)->summary();
    ASSERT_TRUE(run_gpu_poisoned(**plain, inputs, separate).is_ok());
    Diff d = compare(fused.at("y"), ref.at("y"));
    EXPECT_EQ(d.nan_count, 0);
    EXPECT_LE(d.rel(), 1e-2) << "max abs err " << d.max_abs_err << " of " << d.max_abs_ref << "\n" << (*gpu)->summary();
    EXPECT_LE(compare(fused.at("y"), separate.at("y")).rel(), 1e-2);
  }
}

CudaBuildOptions fp16_nhwc() {
  CudaBuildOptions opt;
  opt.precision = CudaPrecision::kFp16;
  opt.layout = CudaLayout::kNHWC;
  return opt;
}

// Captures one enqueue into a CUDA graph and replays it once, synchronously.
void run_captured(CudaExecutor& ex, const std::vector<const void*>& in, const std::vector<void*>& out, cudaStream_t s) {
  const cuda::GraphExec exec = capture_enqueue(ex, in, out, s);
  ASSERT_TRUE(exec);
  ASSERT_EQ(cudaGraphLaunch(exec.get(), s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
}

// The stem (a conv on the RGB image) in fp16: by default qyolo's direct tensor-core kernel reads
// the fp32 image; without it the 6x6/2 runs as a 3x3/1 conv on a space-to-depth copy (16 half
// channels); without both, cuDNN on 3 channels. All three match the CPU. The other cases cover the
// direct kernel's edges: partial tiles, 4 channels, k padding (3x3x4 = 36 of 48), other K.
TEST(CudaKernels, Fp16StemDirectAndSpaceToDepth) {
  QYOLO_REQUIRE_GPU();
  struct Case {
    Shape x;
    int64_t k, ks, stride, pad;
    const char* act;
    bool s2d_possible;
  };
  const Case cases[] = {{{2, 3, 64, 48}, 16, 6, 2, 2, "silu", true},
                        {{1, 3, 72, 40}, 32, 6, 2, 2, "silu", true},
                        {{1, 4, 37, 53}, 48, 3, 1, 1, "relu", false},
                        {{2, 1, 19, 70}, 64, 5, 2, 2, "", false},
                        {{1, 3, 34, 36}, 24, 2, 2, 0, "sigmoid", true}};
  int index = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE("case " + std::to_string(index) + " x " + shape_str(c.x) + " k " + std::to_string(c.k));
    std::mt19937 rng(test_seed() + 32 + static_cast<unsigned>(index++));
    GraphSpec spec;
    spec.inputs = {{"x", c.x}};
    add_conv(spec, rng, "x", "y", c.x[1], c.k, c.ks, c.stride, c.pad, true, 1, c.act);
    spec.outputs = {"y"};
    auto sg = specialize_spec(spec);
    ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
    std::map<std::string, Tensor> inputs{{"x", random_tensor(c.x, rng, 0.f, 1.f)}}, ref;
    ASSERT_NO_FATAL_FAILURE(cpu_reference(*sg, inputs, ref));
    CudaBuildOptions opt = fp16_nhwc();
    std::map<std::string, Tensor> direct, s2d, plain;
    auto gpu = CudaExecutor::build(*sg, opt);
    ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
    std::string summary = (*gpu)->summary();
    EXPECT_NE(summary.find("direct stem"), std::string::npos) << summary;
    EXPECT_EQ(summary.find("convert 'x'"), std::string::npos) << summary;  // reads the fp32 image itself
    ASSERT_TRUE(run_gpu_poisoned(**gpu, inputs, direct).is_ok());
    opt.fp16_direct_stem = false;
    auto gs = CudaExecutor::build(*sg, opt);
    ASSERT_TRUE(gs.is_ok()) << gs.status().to_string();
    summary = (*gs)->summary();
    EXPECT_EQ(summary.find("direct stem"), std::string::npos) << summary;
    EXPECT_EQ(summary.find("space-to-depth 'x'") != std::string::npos, c.s2d_possible) << summary;
    ASSERT_TRUE(run_gpu_poisoned(**gs, inputs, s2d).is_ok());
    opt.fp16_space_to_depth = false;
    auto gp = CudaExecutor::build(*sg, opt);
    ASSERT_TRUE(gp.is_ok()) << gp.status().to_string();
    EXPECT_EQ((*gp)->summary().find("space-to-depth"), std::string::npos) << (*gp)->summary();
    ASSERT_TRUE(run_gpu_poisoned(**gp, inputs, plain).is_ok());
    for (const auto* got : {&direct, &s2d, &plain}) {
      Diff d = compare(got->at("y"), ref.at("y"));
      EXPECT_EQ(d.nan_count, 0);
      EXPECT_LE(d.rel(), 1e-2) << "max abs err " << d.max_abs_err << " of " << d.max_abs_ref;
    }
    EXPECT_LE(compare(direct.at("y"), plain.at("y")).rel(), 1e-2);
  }
}

// cuBLASLt as the conv tactic (forced): 1x1 convs as one GEMM over the pixels, with our epilogue
// pass for bias + SiLU, for the residual, and none at all; equal to the CPU.
TEST(CudaKernels, CublasLtConvMatchesCpu) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 36);
  GraphSpec spec;
  spec.inputs = {{"x", {2, 32, 9, 13}}};
  add_conv(spec, rng, "x", "a", 32, 48, 1, 1, 0, true, 1, "silu");
  add_conv(spec, rng, "a", "b", 48, 48, 1, 1, 0, true, 1, "silu", "a");  // with a residual
  add_conv(spec, rng, "b", "c", 48, 16, 1, 1, 0, false);                  // no epilogue
  spec.outputs = {"c", "b"};
  auto sg = specialize_spec(spec);
  ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
  std::map<std::string, Tensor> inputs{{"x", random_tensor({2, 32, 9, 13}, rng, -2.f, 2.f)}}, ref, got;
  ASSERT_NO_FATAL_FAILURE(cpu_reference(*sg, inputs, ref));
  CudaBuildOptions opt = fp16_nhwc();
  opt.cublaslt_convs = 2;
  auto gpu = CudaExecutor::build(*sg, opt);
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  const std::string summary = (*gpu)->summary();
  EXPECT_EQ(count_in(summary, "cublasLt algo"), 3u) << summary;
  ASSERT_TRUE(run_gpu_poisoned(**gpu, inputs, got).is_ok());
  for (const char* name : {"b", "c"}) {
    SCOPED_TRACE(name);
    Diff d = compare(got.at(name), ref.at(name));
    EXPECT_EQ(d.nan_count, 0) << summary;
    EXPECT_LE(d.rel(), 1e-2) << "max abs err " << d.max_abs_err << " of " << d.max_abs_ref << "\n" << summary;
  }
}

// fp16 NHWC convs with a channel count that is not a multiple of 8 compute the next multiple with
// zero weights; readers (a graph output, a sigmoid, a second conv) see the first K channels.
TEST(CudaKernels, Fp16OddChannelsArePadded) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 35);
  GraphSpec spec;
  spec.inputs = {{"x", {2, 16, 12, 10}}};
  add_conv(spec, rng, "x", "h", 16, 21, 1, 1, 0, true, 1, "silu");
  spec.nodes.push_back(make_node("Sigmoid", {"h"}, {"s"}));
  add_conv(spec, rng, "h", "z", 21, 16, 3, 1, 1, true, 1, "relu");
  spec.outputs = {"h", "s", "z"};
  auto sg = specialize_spec(spec);
  ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
  std::map<std::string, Tensor> inputs{{"x", random_tensor({2, 16, 12, 10}, rng, -2.f, 2.f)}}, ref, got;
  ASSERT_NO_FATAL_FAILURE(cpu_reference(*sg, inputs, ref));
  auto gpu = CudaExecutor::build(*sg, fp16_nhwc());
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  const std::string summary = (*gpu)->summary();
  EXPECT_NE(summary.find("2x24x12x10"), std::string::npos) << summary;
  ASSERT_TRUE(run_gpu_poisoned(**gpu, inputs, got).is_ok());
  for (const char* name : {"h", "s", "z"}) {
    SCOPED_TRACE(name);
    Diff d = compare(got.at(name), ref.at(name));
    EXPECT_EQ(d.nan_count, 0) << summary;
    EXPECT_LE(d.rel(), 1e-2) << "max abs err " << d.max_abs_err << " of " << d.max_abs_ref << "\n" << summary;
  }
}

// FP16 concat in place: a C3-style concat of two convs (one with a fused residual) disappears,
// the convs writing their channel slices through cuDNN plans with a strided output; a neck-style
// concat of an upsample and a conv output also read elsewhere keeps copying only the latter.
GraphSpec c3_and_neck_spec(std::mt19937& rng) {
  GraphSpec spec;
  spec.opset = 12;
  spec.inputs = {{"x", {2, 16, 20, 20}}};
  add_conv(spec, rng, "x", "a", 16, 32, 3, 1, 1, true, 1, "silu");
  add_conv(spec, rng, "a", "m", 32, 32, 1, 1, 0, true, 1, "silu");
  add_conv(spec, rng, "m", "b", 32, 32, 3, 1, 1, true, 1, "silu", "a");  // bottleneck with its residual
  add_conv(spec, rng, "x", "c", 16, 48, 1, 1, 0, true, 1, "silu");
  spec.nodes.push_back(make_node("Concat", {"b", "c"}, {"cat"}, {{"axis", int64_t{1}}}));
  add_conv(spec, rng, "cat", "y", 80, 16, 1, 1, 0, true, 1, "silu");
  add_conv(spec, rng, "x", "g", 16, 32, 3, 2, 1, true, 1, "silu");  // 10x10
  spec.constants["scales"] = floats({4}, {1, 1, 2, 2});
  spec.nodes.push_back(make_node("Resize", {"g", "", "scales"}, {"up"},
                                 {{"mode", std::string("nearest")},
                                  {"coordinate_transformation_mode", std::string("asymmetric")},
                                  {"nearest_mode", std::string("floor")}}));
  add_conv(spec, rng, "x", "d", 16, 16, 1, 1, 0, true, 1, "silu");
  add_conv(spec, rng, "d", "e", 16, 16, 3, 1, 1, true, 1, "silu");  // a second reader of d
  spec.nodes.push_back(make_node("Concat", {"up", "d"}, {"cat2"}, {{"axis", int64_t{1}}}));
  add_conv(spec, rng, "cat2", "z", 48, 16, 1, 1, 0, true, 1, "silu");
  spec.outputs = {"y", "z", "e"};
  return spec;
}

TEST(CudaKernels, Fp16ConcatWrittenInPlace) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 33);
  const GraphSpec spec = c3_and_neck_spec(rng);
  auto sg = specialize_spec(spec);
  ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
  std::map<std::string, Tensor> inputs{{"x", random_tensor({2, 16, 20, 20}, rng, -2.f, 2.f)}}, ref, got, copied;
  ASSERT_NO_FATAL_FAILURE(cpu_reference(*sg, inputs, ref));
  CudaBuildOptions opt = fp16_nhwc();
  auto gpu = CudaExecutor::build(*sg, opt);
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  const std::string summary = (*gpu)->summary();
  EXPECT_EQ(count_in(summary, "Concat node"), 1u) << summary;    // cat is gone, cat2 stays for d
  EXPECT_EQ(count_in(summary, "(into concat)"), 3u) << summary;  // b, c and the upsample
  EXPECT_NE(summary.find("1 of 2 inputs in place"), std::string::npos) << summary;
  EXPECT_NE(summary.find(" pitched"), std::string::npos) << summary;
  ASSERT_TRUE(run_gpu_poisoned(**gpu, inputs, got).is_ok());
  opt.concat_in_place = false;
  auto plain = CudaExecutor::build(*sg, opt);
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
  EXPECT_EQ((*plain)->num_steps(), (*gpu)->num_steps() + 1) << (*plain)->summary();
  ASSERT_TRUE(run_gpu_poisoned(**plain, inputs, copied).is_ok());
  for (const char* name : {"y", "z", "e"}) {
    SCOPED_TRACE(name);
    Diff d = compare(got.at(name), ref.at(name));
    EXPECT_EQ(d.nan_count, 0) << summary;
    EXPECT_LE(d.rel(), 1e-2) << "max abs err " << d.max_abs_err << " of " << d.max_abs_ref << "\n" << summary;
    EXPECT_LE(compare(got.at(name), copied.at(name)).rel(), 1e-2);
  }
}

// Concurrent branches: steps whose inputs were ready early (c, d, g read x) run on the side
// stream; with the same tactics the result is bit-identical to one stream, eagerly and replayed
// from a CUDA graph capture (the side stream joins the capture through the fork events).
TEST(CudaKernels, ConcurrentBranchesMatchOneStream) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 34);
  const GraphSpec spec = c3_and_neck_spec(rng);
  auto sg = specialize_spec(spec);
  ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
  std::map<std::string, Tensor> inputs{{"x", random_tensor({2, 16, 20, 20}, rng, -2.f, 2.f)}}, got, serial;
  CudaBuildOptions opt;
  opt.precision = CudaPrecision::kFp16;
  auto gpu = CudaExecutor::build(*sg, opt);
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  const std::string summary = (*gpu)->summary();
  EXPECT_NE(summary.find("[side stream]"), std::string::npos) << summary;
  ASSERT_TRUE(run_gpu_poisoned(**gpu, inputs, got).is_ok());
  opt.concurrent_branches = false;
  opt.tactics = (*gpu)->tactics();
  auto one = CudaExecutor::build(*sg, opt);
  ASSERT_TRUE(one.is_ok()) << one.status().to_string();
  EXPECT_EQ((*one)->summary().find("[side stream]"), std::string::npos);
  ASSERT_TRUE(run_gpu_poisoned(**one, inputs, serial).is_ok());
  for (const char* name : {"y", "z", "e"}) EXPECT_EQ(compare(got.at(name), serial.at(name)).max_abs_err, 0.0) << name;

  // Captured: the same bytes as the eager run.
  auto& ex = **gpu;
  const Tensor& x = inputs.at("x");
  auto in = cuda::DeviceBuffer::allocate(x.nbytes());
  ASSERT_TRUE(in.is_ok());
  ASSERT_TRUE(in->upload(x.raw(), x.nbytes()).is_ok());
  std::vector<cuda::DeviceBuffer> outs;
  std::vector<void*> out_ptrs;
  for (const auto& b : ex.outputs()) {
    auto buf = cuda::DeviceBuffer::allocate(b.nbytes());
    ASSERT_TRUE(buf.is_ok());
    ASSERT_EQ(cudaMemset(buf->get(), 0xFF, b.nbytes()), cudaSuccess);
    out_ptrs.push_back(buf->get());
    outs.push_back(std::move(buf).value());
  }
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  auto stream = cuda::make_stream();
  ASSERT_TRUE(stream.is_ok());
  ASSERT_NO_FATAL_FAILURE(run_captured(ex, {in->get()}, out_ptrs, stream->get()));
  for (size_t k = 0; k < ex.outputs().size(); ++k) {
    const auto& b = ex.outputs()[k];
    Tensor t = Tensor::uninitialized(b.dtype, b.shape);
    ASSERT_EQ(cudaMemcpy(t.raw(), out_ptrs[k], b.nbytes(), cudaMemcpyDeviceToHost), cudaSuccess);
    EXPECT_EQ(compare(t, got.at(b.name)).max_abs_err, 0.0) << b.name;
    EXPECT_EQ(compare(t, got.at(b.name)).nan_count, 0) << b.name;
  }
}

// Programmatic dependent launch (sm_90+) on an FP16 engine with concurrent branches (side-stream
// steps joined by events, cuDNN convs between our kernels): the same bytes as plain launches.
TEST(CudaKernels, ProgrammaticLaunchMatchesPlainLaunch) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 35);
  const GraphSpec spec = c3_and_neck_spec(rng);
  auto sg = specialize_spec(spec);
  ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
  std::map<std::string, Tensor> inputs{{"x", random_tensor({2, 16, 20, 20}, rng, -2.f, 2.f)}};
  CudaBuildOptions opt;
  opt.precision = CudaPrecision::kFp16;
  auto gpu = CudaExecutor::build(*sg, opt);
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  EXPECT_NE((*gpu)->summary().find("[side stream]"), std::string::npos) << (*gpu)->summary();
  if (!expect_programmatic_launch_matches_plain(**gpu, inputs)) GTEST_SKIP() << "no programmatic launch before sm_90";
}

TEST(CudaKernels, MaxPoolAfterConv) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 2);
  GraphSpec spec;
  spec.inputs = {{"x", {1, 16, 20, 20}}};
  add_conv(spec, rng, "x", "c", 16, 16, 1, 1, 0, true, 1, "silu");
  spec.nodes.push_back(make_node("MaxPool", {"c"}, {"p1"},
                                 {{"kernel_shape", std::vector<int64_t>{5, 5}}, {"strides", std::vector<int64_t>{1, 1}},
                                  {"pads", std::vector<int64_t>{2, 2, 2, 2}}}));
  spec.nodes.push_back(make_node("MaxPool", {"p1"}, {"p2"},
                                 {{"kernel_shape", std::vector<int64_t>{3, 3}}, {"strides", std::vector<int64_t>{2, 2}},
                                  {"pads", std::vector<int64_t>{1, 1, 1, 1}}, {"ceil_mode", int64_t{1}}}));
  spec.outputs = {"p1", "p2"};
  check(spec);
}

TEST(CudaKernels, MaxPoolPlain) {
  QYOLO_REQUIRE_GPU();
  GraphSpec spec;
  spec.inputs = {{"x", {2, 3, 9, 11}}};
  spec.nodes.push_back(make_node("MaxPool", {"x"}, {"y"},
                                 {{"kernel_shape", std::vector<int64_t>{2, 2}}, {"strides", std::vector<int64_t>{2, 2}}}));
  spec.outputs = {"y"};
  check(spec);
}

TEST(CudaKernels, ResizeNearest) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 3);
  GraphSpec spec;
  spec.opset = 12;
  spec.inputs = {{"x", {1, 16, 10, 12}}};
  add_conv(spec, rng, "x", "c", 16, 16, 1, 1, 0, true, 1, "silu");
  spec.constants["scales"] = floats({4}, {1, 1, 2, 2});
  spec.constants["sizes"] = ints({1, 16, 15, 30});
  spec.nodes.push_back(make_node("Resize", {"c", "", "scales"}, {"up"},
                                 {{"mode", std::string("nearest")},
                                  {"coordinate_transformation_mode", std::string("asymmetric")},
                                  {"nearest_mode", std::string("floor")}}));
  spec.nodes.push_back(make_node("Resize", {"x", "", "", "sizes"}, {"up2"},
                                 {{"mode", std::string("nearest")},
                                  {"coordinate_transformation_mode", std::string("half_pixel")},
                                  {"nearest_mode", std::string("round_prefer_floor")}}));
  spec.outputs = {"up", "up2"};
  check(spec);
}

TEST(CudaKernels, ConcatMixedLayouts) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 4);
  GraphSpec spec;
  spec.inputs = {{"x", {2, 8, 6, 7}}};
  add_conv(spec, rng, "x", "a", 8, 16, 3, 1, 1, true, 1, "silu");
  add_conv(spec, rng, "x", "b", 8, 8, 1, 1, 0, true, 1, "silu");
  spec.nodes.push_back(make_node("Concat", {"a", "b", "x"}, {"cat"}, {{"axis", int64_t{1}}}));
  add_conv(spec, rng, "cat", "y", 32, 8, 1, 1, 0, true, 1, "relu");
  spec.nodes.push_back(make_node("Concat", {"x", "y"}, {"cat2"}, {{"axis", int64_t{-1}}}));
  // Wide contiguous rows (the detect head's final concat): the 2-D memcpy path.
  spec.inputs.push_back({"p", {2, 300, 85}});
  spec.inputs.push_back({"q", {2, 100, 85}});
  spec.nodes.push_back(make_node("Concat", {"p", "q", "p"}, {"cat3"}, {{"axis", int64_t{1}}}));
  spec.outputs = {"cat", "cat2", "cat3"};
  check(spec);
}

// The YOLOv5 v7.0 Detect decode for one level, as the TorchScript exporter writes it.
TEST(CudaKernels, DetectHead) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 5);
  GraphSpec spec;
  const int64_t n = 2, h = 8, w = 8, no = 85;
  spec.inputs = {{"x", {n, 32, h, w}}};
  add_conv(spec, rng, "x", "c", 32, 3 * no, 1, 1, 0, true);
  spec.constants["shape5"] = ints({n, 3, no, h, w});
  spec.constants["split"] = ints({2, 2, 81});
  spec.constants["two"] = floats({}, {2.f});
  spec.constants["half"] = floats({}, {0.5f});
  spec.constants["stride"] = floats({}, {8.f});
  spec.constants["grid"] = random_tensor({1, 3, h, w, 2}, rng, -0.5f, 7.5f);
  spec.constants["anchor"] = random_tensor({1, 3, h, w, 2}, rng, 10.f, 100.f);
  spec.constants["shape3"] = ints({n, -1, no});
  spec.nodes.push_back(make_node("Reshape", {"c", "shape5"}, {"r"}));
  spec.nodes.push_back(make_node("Transpose", {"r"}, {"t"}, {{"perm", std::vector<int64_t>{0, 1, 3, 4, 2}}}));
  spec.nodes.push_back(make_node("Sigmoid", {"t"}, {"s"}));
  spec.nodes.push_back(make_node("Split", {"s", "split"}, {"xy", "wh", "conf"}, {{"axis", int64_t{4}}}));
  spec.nodes.push_back(make_node("Mul", {"xy", "two"}, {"xy2"}));
  spec.nodes.push_back(make_node("Sub", {"xy2", "half"}, {"xy3"}));
  spec.nodes.push_back(make_node("Add", {"xy3", "grid"}, {"xy4"}));
  spec.nodes.push_back(make_node("Mul", {"xy4", "stride"}, {"xy5"}));
  spec.nodes.push_back(make_node("Mul", {"wh", "two"}, {"wh2"}));
  spec.nodes.push_back(make_node("Pow", {"wh2", "two"}, {"wh3"}));
  spec.nodes.push_back(make_node("Mul", {"wh3", "anchor"}, {"wh4"}));
  spec.nodes.push_back(make_node("Concat", {"xy5", "wh4", "conf"}, {"cat"}, {{"axis", int64_t{4}}}));
  spec.nodes.push_back(make_node("Reshape", {"cat", "shape3"}, {"out"}));
  spec.outputs = {"out"};
  check(spec);
}

TEST(CudaKernels, UnaryFamily) {
  QYOLO_REQUIRE_GPU();
  GraphSpec spec;
  spec.inputs = {{"x", {2, 3, 17, 5}}};
  const char* ops[] = {"Sigmoid", "Relu", "HardSigmoid", "HardSwish", "Tanh", "Exp", "Abs", "Neg", "Softplus", "Elu"};
  for (const char* op : ops) {
    spec.nodes.push_back(make_node(op, {"x"}, {std::string("y_") + op}));
    spec.outputs.push_back(std::string("y_") + op);
  }
  spec.nodes.push_back(make_node("LeakyRelu", {"x"}, {"y_leaky"}, {{"alpha", 0.2f}}));
  spec.nodes.push_back(make_node("Abs", {"x"}, {"ax"}));
  spec.nodes.push_back(make_node("Sqrt", {"ax"}, {"y_sqrt"}));
  spec.nodes.push_back(make_node("Exp", {"x"}, {"ex"}));
  spec.nodes.push_back(make_node("Log", {"ex"}, {"y_log"}));
  spec.outputs.insert(spec.outputs.end(), {"y_leaky", "y_sqrt", "y_log"});
  check(spec);
}

TEST(CudaKernels, BinaryBroadcast) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 6);
  GraphSpec spec;
  spec.inputs = {{"a", {2, 3, 4, 5}}, {"b", {3, 1, 5}}, {"c", {2, 3, 4, 5}}};
  spec.constants["k"] = random_tensor({1, 3, 1, 1}, rng, 0.5f, 1.5f);
  spec.constants["s"] = floats({}, {0.75f});
  spec.constants["two"] = floats({1}, {2.f});
  spec.nodes.push_back(make_node("Add", {"a", "b"}, {"add"}));
  spec.nodes.push_back(make_node("Mul", {"a", "k"}, {"mul"}));
  spec.nodes.push_back(make_node("Sub", {"s", "a"}, {"sub"}));
  spec.nodes.push_back(make_node("Div", {"a", "k"}, {"div"}));
  spec.nodes.push_back(make_node("Pow", {"a", "two"}, {"pow"}));
  spec.nodes.push_back(make_node("Max", {"a", "b", "c"}, {"max"}));
  spec.nodes.push_back(make_node("Min", {"c", "a"}, {"min"}));
  spec.outputs = {"add", "mul", "sub", "div", "pow", "max", "min"};
  check(spec);
}

TEST(CudaKernels, BinaryOnNhwcValues) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 7);
  GraphSpec spec;
  spec.inputs = {{"x", {2, 8, 5, 6}}, {"p", {2, 8, 5, 6}}};
  add_conv(spec, rng, "x", "c", 8, 8, 3, 1, 1, true);
  spec.constants["k"] = random_tensor({1, 8, 1, 1}, rng, 0.5f, 1.5f);
  spec.nodes.push_back(make_node("Sigmoid", {"c"}, {"sg"}));
  spec.nodes.push_back(make_node("Mul", {"c", "sg"}, {"silu"}));     // NHWC * NHWC (flat)
  spec.nodes.push_back(make_node("Mul", {"silu", "k"}, {"scaled"}));  // NHWC * [1,C,1,1]
  spec.nodes.push_back(make_node("Add", {"scaled", "p"}, {"sum"}));   // NHWC + plain
  spec.outputs = {"sum"};
  check(spec);
}

TEST(CudaKernels, SliceSplitTranspose) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 8);
  GraphSpec spec;
  spec.inputs = {{"x", {2, 6, 7, 9}}};
  add_conv(spec, rng, "x", "c", 6, 12, 1, 1, 0, true);
  spec.constants["st"] = ints({1, 2});
  spec.constants["en"] = ints({9, 100});
  spec.constants["ax"] = ints({1, 3});
  spec.constants["sp"] = ints({2, 3});
  spec.constants["st2"] = ints({-1});
  spec.constants["en2"] = ints({-100});
  spec.constants["ax2"] = ints({2});
  spec.constants["sp2"] = ints({-2});
  spec.constants["parts"] = ints({4, 8});
  spec.nodes.push_back(make_node("Slice", {"c", "st", "en", "ax", "sp"}, {"sl"}));
  spec.nodes.push_back(make_node("Slice", {"x", "st2", "en2", "ax2", "sp2"}, {"sl2"}));
  spec.nodes.push_back(make_node("Split", {"c", "parts"}, {"s0", "s1"}, {{"axis", int64_t{1}}}));
  spec.nodes.push_back(make_node("Transpose", {"c"}, {"tr"}, {{"perm", std::vector<int64_t>{0, 2, 3, 1}}}));
  spec.nodes.push_back(make_node("Flatten", {"tr"}, {"fl"}, {{"axis", int64_t{2}}}));
  // Views of an NHWC value: not viewable (copied to plain), channel split (strided view) read by
  // a compute op, identity (NHWC view) feeding a conv.
  spec.constants["split_c"] = ints({2, 3, 4, 7, 9});
  spec.nodes.push_back(make_node("Flatten", {"c"}, {"flc"}, {{"axis", int64_t{1}}}));
  spec.nodes.push_back(make_node("Reshape", {"c", "split_c"}, {"rs"}));
  spec.nodes.push_back(make_node("Sigmoid", {"rs"}, {"rs_sig"}));
  spec.nodes.push_back(make_node("Transpose", {"rs"}, {"rs_t"}, {{"perm", std::vector<int64_t>{0, 1, 3, 4, 2}}}));
  spec.nodes.push_back(make_node("Identity", {"c"}, {"ci"}));
  add_conv(spec, rng, "ci", "c2", 12, 8, 3, 1, 1, true, 1, "relu");
  spec.outputs = {"sl", "sl2", "s0", "s1", "fl", "flc", "rs_sig", "rs_t", "c2"};
  check(spec);
}

// An op the CUDA backend has no kernel for (Tile; Softmax was one until issue 16) is refused by
// name at build, with the list of what it supports.
TEST(CudaKernels, UnsupportedOpIsAClearError) {
  QYOLO_REQUIRE_GPU();
  GraphSpec spec;
  spec.inputs = {{"x", {1, 4}}};
  spec.constants["repeats"] = ints({2, 1});
  spec.nodes.push_back(make_node("Tile", {"x", "repeats"}, {"y"}));
  spec.outputs = {"y"};
  auto sg = specialize_spec(spec);
  ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
  EXPECT_FALSE(cuda_supports(sg->graph.nodes[0]));
  auto gpu = CudaExecutor::build(*sg);
  ASSERT_FALSE(gpu.is_ok());
  EXPECT_EQ(gpu.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(gpu.status().message().find("Tile"), std::string::npos) << gpu.status().to_string();
  EXPECT_NE(gpu.status().message().find("Softmax"), std::string::npos) << "supported list: " << gpu.status().to_string();
}

TEST(CudaKernels, GraphCaptureReplaysTheSameResult) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 9);
  GraphSpec spec;
  spec.inputs = {{"x", {1, 8, 16, 16}}};
  add_conv(spec, rng, "x", "a", 8, 16, 3, 2, 1, true, 1, "silu");
  add_conv(spec, rng, "a", "b", 16, 16, 3, 1, 1, true, 1, "silu", "a");
  spec.outputs = {"b"};
  auto sg = specialize_spec(spec);
  ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
  CudaBuildOptions opt;
  opt.precision = CudaPrecision::kFp16;
  auto gpu = CudaExecutor::build(*sg, opt);
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  auto& ex = **gpu;
  Tensor x = random_tensor({1, 8, 16, 16}, rng);
  auto in = cuda::DeviceBuffer::allocate(x.nbytes());
  auto out = cuda::DeviceBuffer::allocate(ex.outputs()[0].nbytes());
  ASSERT_TRUE(in.is_ok() && out.is_ok());
  ASSERT_TRUE(in->upload(x.raw(), x.nbytes()).is_ok());
  auto stream = cuda::make_stream();
  ASSERT_TRUE(stream.is_ok());
  cudaStream_t s = stream->get();
  ASSERT_TRUE(ex.enqueue({in->get()}, {out->get()}, s).is_ok());
  std::vector<float> eager(static_cast<size_t>(shape_numel(ex.outputs()[0].shape)));
  ASSERT_EQ(cudaMemcpyAsync(eager.data(), out->get(), eager.size() * 4, cudaMemcpyDeviceToHost, s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  ASSERT_EQ(cudaMemset(out->get(), 0xFF, eager.size() * 4), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ASSERT_NO_FATAL_FAILURE(run_captured(ex, {in->get()}, {out->get()}, s));
  std::vector<float> replay(eager.size());
  ASSERT_EQ(cudaMemcpyAsync(replay.data(), out->get(), replay.size() * 4, cudaMemcpyDeviceToHost, s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(0, std::memcmp(eager.data(), replay.data(), eager.size() * 4));
}

}  // namespace
