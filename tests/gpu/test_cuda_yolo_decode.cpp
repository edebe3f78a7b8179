// QyoloYoloDecode on the GPU against the CPU kernel (and the unfused CPU graph), on random input:
// X as the head conv writes it (fp32 or fp16, NHWC or NCHW, with and without the fp32 tail) and
// straight from a graph input (fp32 plain); odd widths exercise the tiled kernel's edges.
#include <gtest/gtest.h>

#include "gpu_test_support.h"
#include "ir/ops/yolo_decode.h"
#include "passes/passes.h"

using namespace qyolo;
using namespace qyolo::gputest;

namespace {

// The YOLOv5 export's decode tail for one level on value `x` [n, a*c, h, w] -> output "out".
void add_tail(GraphSpec& spec, std::mt19937& rng, const std::string& x, int64_t n, int64_t a, int64_t c, int64_t h,
              int64_t w, float stride) {
  spec.constants["shape5"] = ints({n, a, c, h, w});
  spec.constants["split"] = ints({2, 2, c - 4});
  spec.constants["two"] = floats({}, {2.f});
  spec.constants["stride"] = floats({}, {stride});
  spec.constants["grid"] = random_tensor({1, a, h, w, 2}, rng, -0.5f, static_cast<float>(w));
  spec.constants["anchor"] = random_tensor({1, a, h, w, 2}, rng, 10.f, 300.f);
  spec.constants["shape3"] = ints({n, -1, c});
  spec.nodes.push_back(make_node("Reshape", {x, "shape5"}, {"r"}));
  spec.nodes.push_back(make_node("Transpose", {"r"}, {"t"}, {{"perm", std::vector<int64_t>{0, 1, 3, 4, 2}}}));
  spec.nodes.push_back(make_node("Sigmoid", {"t"}, {"s"}));
  spec.nodes.push_back(make_node("Split", {"s", "split"}, {"xy", "wh", "conf"}, {{"axis", int64_t{4}}}));
  spec.nodes.push_back(make_node("Mul", {"xy", "two"}, {"xy2"}));
  spec.nodes.push_back(make_node("Add", {"xy2", "grid"}, {"xy3"}));
  spec.nodes.push_back(make_node("Mul", {"xy3", "stride"}, {"xy4"}));
  spec.nodes.push_back(make_node("Mul", {"wh", "two"}, {"wh2"}));
  spec.nodes.push_back(make_node("Pow", {"wh2", "two"}, {"wh3"}));
  spec.nodes.push_back(make_node("Mul", {"wh3", "anchor"}, {"wh4"}));
  spec.nodes.push_back(make_node("Concat", {"xy4", "wh4", "conf"}, {"cat"}, {{"axis", int64_t{4}}}));
  spec.nodes.push_back(make_node("Reshape", {"cat", "shape3"}, {"out"}));
  spec.outputs = {"out"};
}

// Adds a 1x1 Conv (the detect head's) x [n, cin, h, w] -> "head" [n, cout, h, w].
void add_head_conv(GraphSpec& spec, std::mt19937& rng, int64_t cin, int64_t cout) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(cin));
  spec.constants["head_w"] = random_tensor({cout, cin, 1, 1}, rng, -3 * scale, 3 * scale);
  spec.constants["head_b"] = random_tensor({cout}, rng, -1.f, 1.f);
  spec.nodes.push_back(make_node("Conv", {"x", "head_w", "head_b"}, {"head"},
                                 {{"kernel_shape", std::vector<int64_t>{1, 1}},
                                  {"strides", std::vector<int64_t>{1, 1}},
                                  {"pads", std::vector<int64_t>{0, 0, 0, 0}}}));
}

Result<SpecializedGraph> fused_graph(const GraphSpec& spec, bool fuse) {
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, specialize_spec(spec));
  PassOptions opt;
  opt.fuse_yolo_decode = fuse;
  QYOLO_RETURN_IF_ERROR(run_default_passes(sg, opt));
  return sg;
}

void check(const GraphSpec& spec, const Shape& x_shape) {
  SCOPED_TRACE("seed " + std::to_string(test_seed()) + " (QYOLO_TEST_SEED to repeat)");
  auto sg = fused_graph(spec, true);
  ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
  int decodes = 0;
  for (const auto& n : sg->graph.nodes) decodes += n.op_type == kYoloDecodeOp;
  ASSERT_EQ(decodes, 1);
  auto unfused = fused_graph(spec, false);
  ASSERT_TRUE(unfused.is_ok()) << unfused.status().to_string();

  std::mt19937 rng(test_seed());
  std::map<std::string, Tensor> inputs, ref, ref_unfused;
  inputs["x"] = random_tensor(x_shape, rng, -2.f, 2.f);
  auto cpu = CpuExecutor::build(*sg);
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  Status st = (*cpu)->run(inputs, ref);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  auto cpu_unfused = CpuExecutor::build(*unfused);
  ASSERT_TRUE(cpu_unfused.is_ok()) << cpu_unfused.status().to_string();
  st = (*cpu_unfused)->run(inputs, ref_unfused);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_LE(compare(ref.at("out"), ref_unfused.at("out")).rel(), 1e-6);

  for (const PrecisionConfig& c : kPrecisionConfigs) {
    SCOPED_TRACE(c.name);
    const CudaBuildOptions opt = c.options();
    auto gpu = CudaExecutor::build(*sg, opt);
    ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
    std::map<std::string, Tensor> got;
    st = run_gpu_poisoned(**gpu, inputs, got);
    ASSERT_TRUE(st.is_ok()) << st.to_string() << "\n" << (*gpu)->summary();
    ASSERT_TRUE(got.count("out"));
    EXPECT_EQ(got["out"].shape(), ref["out"].shape());
    Diff d = compare(got["out"], ref["out"]);
    EXPECT_EQ(d.nan_count, 0) << "unwritten or NaN elements\n" << (*gpu)->summary();
    EXPECT_LE(d.rel(), c.tol) << "max abs err " << d.max_abs_err << ", max abs " << d.max_abs_ref << "\n"
                              << (*gpu)->summary();
    // The unfused GPU graph agrees too (same build options).
    auto gpu_unfused = CudaExecutor::build(*unfused, opt);
    ASSERT_TRUE(gpu_unfused.is_ok()) << gpu_unfused.status().to_string();
    std::map<std::string, Tensor> got_unfused;
    st = run_gpu_poisoned(**gpu_unfused, inputs, got_unfused);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    EXPECT_LE(compare(got["out"], got_unfused.at("out")).rel(), c.tol);
  }
}

TEST(CudaYoloDecode, AfterHeadConv) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 21);
  const int64_t n = 2, a = 3, c = 85, h = 9, w = 37, cin = 16;
  GraphSpec spec;
  spec.inputs = {{"x", {n, cin, h, w}}};
  add_head_conv(spec, rng, cin, a * c);
  add_tail(spec, rng, "head", n, a, c, h, w, 16.f);
  check(spec, {n, cin, h, w});
}

TEST(CudaYoloDecode, FewClassesAfterHeadConv) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 22);
  const int64_t n = 3, a = 3, c = 6, h = 20, w = 20, cin = 8;
  GraphSpec spec;
  spec.inputs = {{"x", {n, cin, h, w}}};
  add_head_conv(spec, rng, cin, a * c);
  add_tail(spec, rng, "head", n, a, c, h, w, 32.f);
  check(spec, {n, cin, h, w});
}

// An INT8 head conv applies the decode in its epilogue (no decode step): bit for bit the unfused
// GPU result (the decode reads the same fp32 conv output either way), and close to the CPU INT8
// graph. 85 channels take the elementwise epilogue anyway; 8 (K = 24) would otherwise vectorise.
// With half between layers a 255-channel head instead writes half padded to 256 channels (so
// cuDNN's INT8 engines can run it) and the decode is its own step: close to the fused result.
TEST(CudaYoloDecode, Int8HeadConvFusesTheDecode) {
  QYOLO_REQUIRE_GPU();
  cudaDeviceProp prop{};
  ASSERT_EQ(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
  if (prop.major < 8) GTEST_SKIP() << "INT8 tensor-core convolution needs sm_80+";
  for (int64_t c : {int64_t{85}, int64_t{8}}) {
    SCOPED_TRACE("channels " + std::to_string(c));
    std::mt19937 rng(test_seed() + 24);
    const int64_t n = 2, a = 3, h = 12, w = 20, cin = 32;
    GraphSpec spec;
    spec.inputs = {{"x", {n, cin, h, w}}};
    add_head_conv(spec, rng, cin, a * c);
    spec.nodes.back().attrs["qyolo_input_scale"] = AttrValue(2.0f / 127.0f);
    add_tail(spec, rng, "head", n, a, c, h, w, 16.f);
    auto sg = fused_graph(spec, true);
    ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
    std::map<std::string, Tensor> inputs{{"x", random_tensor({n, cin, h, w}, rng, -2.f, 2.f)}}, ref;
    ASSERT_NO_FATAL_FAILURE(cpu_reference(*sg, inputs, ref));
    for (bool fp16 : {false, true}) {
      SCOPED_TRACE(fp16 ? "int8 + fp16" : "int8");
      CudaBuildOptions opt = all_int8_options(fp16);
      opt.fp16_pad_channels = false;  // a padded head does not fuse (below)
      auto fused = CudaExecutor::build(*sg, opt);
      ASSERT_TRUE(fused.is_ok()) << fused.status().to_string();
      const std::string summary = (*fused)->summary();
      EXPECT_NE(summary.find("+decode"), std::string::npos) << summary;
      EXPECT_EQ(summary.find("QyoloYoloDecode node"), std::string::npos) << summary;
      opt.fuse_head_decode = false;
      opt.tactics = (*fused)->tactics();
      auto separate = CudaExecutor::build(*sg, opt);
      ASSERT_TRUE(separate.is_ok()) << separate.status().to_string();
      EXPECT_EQ((*separate)->num_steps(), (*fused)->num_steps() + 1);
      std::map<std::string, Tensor> got, got_separate;
      ASSERT_TRUE(run_gpu_poisoned(**fused, inputs, got).is_ok());
      ASSERT_TRUE(run_gpu_poisoned(**separate, inputs, got_separate).is_ok());
      Diff same = compare(got.at("out"), got_separate.at("out"));
      EXPECT_EQ(same.nan_count, 0);
      EXPECT_EQ(same.max_abs_err, 0.0) << summary;
      Diff d = compare(got.at("out"), ref.at("out"));
      EXPECT_LE(d.rel(), 2e-2) << "max abs err " << d.max_abs_err << " of " << d.max_abs_ref << "\n" << summary;
      if (!fp16 || (a * c) % 8 == 0) continue;
      for (int cudnn : {0, 2}) {
        SCOPED_TRACE(cudnn ? "padded head, cuDNN INT8" : "padded head, our kernel");
        CudaBuildOptions po = all_int8_options(true);
        po.cudnn_int8 = cudnn;
        auto padded = CudaExecutor::build(*sg, po);
        ASSERT_TRUE(padded.is_ok()) << padded.status().to_string();
        const std::string ps = (*padded)->summary();
        EXPECT_EQ(ps.find("+decode"), std::string::npos) << ps;
        EXPECT_NE(ps.find("QyoloYoloDecode node"), std::string::npos) << ps;
        EXPECT_NE(ps.find("float16 nhwc 2x256x12x20"), std::string::npos) << ps;
        std::map<std::string, Tensor> got_padded;
        ASSERT_TRUE(run_gpu_poisoned(**padded, inputs, got_padded).is_ok());
        Diff dp = compare(got_padded.at("out"), ref.at("out"));
        EXPECT_EQ(dp.nan_count, 0) << ps;
        EXPECT_LE(dp.rel(), 2e-2) << "max abs err " << dp.max_abs_err << " of " << dp.max_abs_ref << "\n" << ps;
        // Only the half rounding of the head's logits separates it from the fused fp32 result.
        EXPECT_LE(compare(got_padded.at("out"), got.at("out")).rel(), 1e-2) << ps;
      }
    }
  }
}

TEST(CudaYoloDecode, StraightFromInput) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 23);
  const int64_t n = 1, a = 3, c = 85, h = 80, w = 80;
  GraphSpec spec;
  spec.inputs = {{"x", {n, a * c, h, w}}};
  add_tail(spec, rng, "x", n, a, c, h, w, 8.f);
  check(spec, {n, a * c, h, w});
}

}  // namespace
