// Per-tensor scale choice (src/quant/scale_choice.h): the conv-output error against hand-computed
// values, and the choice on a small model where one candidate clips the activations.
#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

#include "onnx_builder.h"
#include "passes/specialize.h"
#include "quant/scale_choice.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::OnnxBuilder;

TEST(ConvError, OneByOneConvHandComputed) {
  // y = 1.0 * x with x = 0.3: scale 0.1 rounds x to 3 steps (0.3, error ~0); scale 1.0 rounds it to
  // 0 (error 0.3^2 = 0.09). The weight 1.0 is exact in int8 (127 steps of 1/127).
  Node conv;
  conv.op_type = "Conv";
  conv.name = "c";
  conv.inputs = {"x", "w"};
  conv.outputs = {"y"};
  Tensor x(DataType::kFloat32, {1, 1, 1, 1}), w(DataType::kFloat32, {1, 1, 1, 1});
  x.data<float>()[0] = 0.3f;
  w.data<float>()[0] = 1.0f;
  ScaleChoiceOptions o;
  o.positions_per_conv = 1;
  std::vector<double> err;
  double ref = 0;
  ASSERT_TRUE(accumulate_conv_error(conv, x, w, nullptr, {0.1f, 1.0f}, o, 1, err, ref).is_ok());
  ASSERT_EQ(err.size(), 2u);
  EXPECT_NEAR(ref, 0.09, 1e-6);
  EXPECT_NEAR(err[0], 0.0, 1e-10);
  EXPECT_NEAR(err[1], 0.09, 1e-6);
}

TEST(ConvError, BiasAndReluApplyBeforeTheError) {
  // y = relu(2x - 1) with x = 0.2: reference relu(-0.6) = 0; with scale 1.0, x -> 0, relu(-1) = 0:
  // no error although the input lost everything (the activation hides it).
  Node conv;
  conv.op_type = "Conv";
  conv.name = "c";
  conv.inputs = {"x", "w", "b"};
  conv.outputs = {"y"};
  conv.attrs["qyolo_activation"] = std::string("relu");
  Tensor x(DataType::kFloat32, {1, 1, 1, 1}), w(DataType::kFloat32, {1, 1, 1, 1}), b(DataType::kFloat32, {1});
  x.data<float>()[0] = 0.2f;
  w.data<float>()[0] = 2.0f;
  b.data<float>()[0] = -1.0f;
  ScaleChoiceOptions o;
  o.positions_per_conv = 1;
  std::vector<double> err;
  double ref = 0;
  ASSERT_TRUE(accumulate_conv_error(conv, x, w, &b, {1.0f}, o, 1, err, ref).is_ok());
  EXPECT_EQ(ref, 0.0);
  EXPECT_EQ(err[0], 0.0);
}

// x [1,4,8,8] uniform in [-1, 1] -> 3x3 conv. Candidate "clip" thresholds x at 0.05, "full" at 1.0:
// the choice must take "full"; a tensor no conv reads keeps the first candidate's scale.
TEST(ScaleChoice, PicksTheCandidateThatDoesNotClip) {
  const fs::path dir = fs::temp_directory_path() / ("qyolo_sc_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  OnnxBuilder b;
  b.input("x", {1, 4, 8, 8});
  b.output("y", {1, 4, 8, 8});
  std::vector<float> wv(4 * 4 * 9);
  for (auto& v : wv) v = u(rng);
  b.initializer("w", {4, 4, 3, 3}, wv);
  auto* n = b.node("Conv", {"x", "w"}, {"y"}, "conv");
  OnnxBuilder::attr_ints(n, "pads", {1, 1, 1, 1});
  const std::string model = (dir / "conv.onnx").string();
  {
    std::ofstream f(model, std::ios::binary);
    f << b.bytes();
  }
  auto fp32 = Engine::build(model, {});
  ASSERT_TRUE(fp32.is_ok()) << fp32.status().to_string();
  Tensor img(DataType::kFloat32, {1, 4, 8, 8});
  for (int64_t j = 0; j < img.numel(); ++j) img.data<float>()[j] = u(rng);
  CalibrationTable clip, full;
  clip.algorithm = "Clip";
  full.algorithm = "Full";
  clip.scales = {{"x", 0.05f / 127}, {"y", 0.5f}};
  full.scales = {{"x", 1.0f / 127}, {"y", 0.25f}};
  ScaleChoiceReport rep;
  auto t = choose_scales_per_tensor(**fp32, {img}, {clip, full}, {}, &rep);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->scales.at("x"), 1.0f / 127);
  EXPECT_EQ(t->scales.at("y"), 0.5f);  // read by no conv: the first candidate's
  EXPECT_EQ(rep.tensors_judged, 1);
  EXPECT_EQ(rep.chosen["Full"], 1);
  fs::remove_all(dir);
}
