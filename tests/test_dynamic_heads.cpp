// Dynamic H/W for multi-output models (issue 16, item 5): a RetinaNet-style synthetic detector
// (tests/head_models.h: dynamic N/H/W, 10 outputs at strides 8..128 whose H/W follow the input)
// built with an explicit profile, run at several shapes inside it from one context, against a
// plain-loop reference interpreter of the same ONNX graph; shapes outside the profile; the
// engine file round trip; calibration at a profile shape and detect/eval through the CLI.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "cli_runner.h"
#include "head_models.h"
#include "ir/graph.h"
#include "onnx/onnx_import.h"
#include "qyolo/qyolo.h"
#include "runtime/detector.h"
#include "test_support.h"
#include "yolo/postprocess.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::run_cli;

namespace {

constexpr int kClasses = 3, kAnchors = 2;

// The reference: the imported graph evaluated node by node with plain loops. The synthetic
// model holds only Conv (no padding, group 1) and Identity, so that is all it needs.
std::map<std::string, Tensor> reference_outputs(const Graph& g, const Tensor& input) {
  std::map<std::string, Tensor> v{{g.inputs[0].name, input}};
  for (const Node& n : g.nodes) {
    if (n.op_type == "Identity") {
      v[n.outputs[0]] = v.at(n.inputs[0]);
      continue;
    }
    EXPECT_EQ(n.op_type, "Conv") << "the reference only knows Conv and Identity";
    const Tensor& x = v.at(n.inputs[0]);
    const Tensor& w = g.initializers.at(n.inputs[1]);
    const Tensor& b = g.initializers.at(n.inputs[2]);
    const std::vector<int64_t> strides = n.attr_ints("strides", std::vector<int64_t>{1, 1}).value();
    const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
    const int64_t O = w.dim(0), KH = w.dim(2), KW = w.dim(3);
    const int64_t OH = (H - KH) / strides[0] + 1, OW = (W - KW) / strides[1] + 1;
    Tensor y(DataType::kFloat32, {N, O, OH, OW});
    for (int64_t nn = 0; nn < N; ++nn)
      for (int64_t o = 0; o < O; ++o)
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t ox = 0; ox < OW; ++ox) {
            double acc = b.data<float>()[o];
            for (int64_t c = 0; c < C; ++c)
              for (int64_t ky = 0; ky < KH; ++ky)
                for (int64_t kx = 0; kx < KW; ++kx)
                  acc += static_cast<double>(x.data<float>()[((nn * C + c) * H + oy * strides[0] + ky) * W +
                                                             ox * strides[1] + kx]) *
                         w.data<float>()[((o * C + c) * KH + ky) * KW + kx];
            y.data<float>()[((nn * O + o) * OH + oy) * OW + ox] = static_cast<float>(acc);
          }
    v[n.outputs[0]] = y;
  }
  return v;
}

Tensor random_input(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(0.f, 1.f);
  Tensor t(DataType::kFloat32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

ShapeProfile test_profile() {
  return {{1, 3, 128, 128}, {2, 3, 256, 384}, {3, 3, 512, 512}};
}

class DynamicHeads : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qyolo_dyn_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_ / "images");
    bytes_ = qyolo::testing::retinanet_model(-1, -1, kClasses, kAnchors);
    model_ = (dir_ / "retina.onnx").string();
    std::ofstream(model_, std::ios::binary) << bytes_;
    auto g = import_onnx_bytes(bytes_, "retina.onnx", dir_.string());
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    graph_ = std::move(g).value();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Every output of `outs` (in the engine's output order) against the reference at `input`'s
  // shape: H/W of the level at stride s is the input's, floored by each stride-2 conv.
  void expect_matches_reference(const std::vector<std::string>& names, const std::vector<Tensor>& outs,
                                const Tensor& input, float tol) {
    const auto ref = reference_outputs(graph_, input);
    ASSERT_EQ(outs.size(), 10u);
    for (size_t i = 0; i < outs.size(); ++i) {
      SCOPED_TRACE("output " + names[i] + " at input " + shape_str(input.shape()));
      const Tensor& want = ref.at(names[i]);
      ASSERT_EQ(outs[i].shape(), want.shape());
      int64_t h = input.dim(2), w = input.dim(3);
      for (int s = 2; s <= (8 << (i / 2)); s *= 2) h /= 2, w /= 2;
      EXPECT_EQ(outs[i].dim(2), h);
      EXPECT_EQ(outs[i].dim(3), w);
      double worst = 0;
      for (int64_t k = 0; k < want.numel(); ++k)
        worst =
            std::max(worst, static_cast<double>(std::fabs(outs[i].data<float>()[k] - want.data<float>()[k])));
      EXPECT_LE(worst, tol);
    }
  }

  fs::path dir_;
  std::string bytes_, model_;
  Graph graph_;
};

// One context, one outputs vector reused, at shapes inside the profile in any order (N, H and W
// all change; 200x328 is not a multiple of the largest stride, so every level floors).
TEST_F(DynamicHeads, OutputsFollowTheInputShapeInsideTheProfile) {
  BuildOptions o;
  o.profile = test_profile();
  auto engine = Engine::build(model_, o);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  const auto& names = (*engine)->info().output_names;
  ASSERT_EQ(names.size(), 10u);
  EXPECT_EQ(names[0], "cls8");
  EXPECT_EQ(names[9], "box128");
  auto ctx = (*engine)->create_context();
  ASSERT_TRUE(ctx.is_ok());
  std::vector<Tensor> outs;
  uint32_t seed = 1;
  for (const Shape& s : std::vector<Shape>{
           {2, 3, 256, 384}, {1, 3, 128, 256}, {3, 3, 512, 512}, {1, 3, 200, 328}, {2, 3, 256, 384}}) {
    const Tensor input = random_input(s, seed++);
    ASSERT_TRUE((*ctx)->set_input_shape(s).is_ok());
    auto bindings = (*ctx)->bindings();
    ASSERT_TRUE(bindings.is_ok()) << bindings.status().to_string();
    ASSERT_EQ(bindings->size(), 11u);
    ASSERT_TRUE((*ctx)->run(input, outs).is_ok());
    // bindings() describes the outputs that run() writes.
    for (size_t i = 0; i < outs.size(); ++i) EXPECT_EQ((*bindings)[i + 1].shape, outs[i].shape()) << names[i];
    expect_matches_reference(names, outs, input, 1e-4f);
  }
}

// Outside the profile: an error that names the input, the shape and the profile, from
// set_input_shape(), run() and the detector's image size.
TEST_F(DynamicHeads, ShapesOutsideTheProfileAreClearErrors) {
  BuildOptions o;
  o.profile = test_profile();
  auto engine = Engine::build(model_, o);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  auto ctx = (*engine)->create_context();
  ASSERT_TRUE(ctx.is_ok());
  for (const Shape& s : std::vector<Shape>{{1, 3, 640, 640}, {4, 3, 256, 256}, {1, 3, 64, 256}}) {
    const Status st = (*ctx)->set_input_shape(s);
    ASSERT_FALSE(st.is_ok());
    for (const std::string& part : std::vector<std::string>{"'images'", shape_str(s), "min 1x3x128x128",
                                                            "opt 2x3x256x384", "max 3x3x512x512"})
      EXPECT_NE(st.message().find(part), std::string::npos) << part << " not in: " << st.message();
    std::vector<Tensor> outs;
    const Status run = (*ctx)->run(random_input(s, 3), outs);
    ASSERT_FALSE(run.is_ok());
    for (const std::string& part : std::vector<std::string>{"'images'", shape_str(s), "max 3x3x512x512"})
      EXPECT_NE(run.message().find(part), std::string::npos) << part << " not in: " << run.message();
  }
  DetectOptions d;
  d.input_h = d.input_w = 640;
  auto det = Detector::create(*engine, d);
  ASSERT_FALSE(det.is_ok());
  EXPECT_NE(det.status().message().find("640x640"), std::string::npos) << det.status().message();
  EXPECT_NE(det.status().message().find("H 128..512"), std::string::npos) << det.status().message();
  // A profile that does not fit the model's rank or order is refused at build.
  o.profile = ShapeProfile{{1, 3, 512, 512}, {1, 3, 256, 256}, {1, 3, 512, 512}};
  auto bad = Engine::build(model_, o);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("min <= opt <= max"), std::string::npos) << bad.status().message();
}

// The command-line path: calibrate at the profile's opt shape, build an INT8 engine file with the
// profile, detect through the head description at two sizes inside it (the loaded engine's
// detections equal the library's on the same engine), a size outside it, and eval.
TEST_F(DynamicHeads, CalibrateBuildDetectEvalThroughTheCli) {
  for (int k = 0; k < 4; ++k) {
    Image img(300 + 40 * k, 200 + 30 * k, 0);
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < img.width; ++x) {
        uint8_t* p = img.pixel(x, y);
        p[0] = static_cast<uint8_t>((x * 255) / img.width);
        p[1] = static_cast<uint8_t>(((x / (16 + 8 * k)) + (y / 24)) % 2 ? 220 : 30);
        p[2] = static_cast<uint8_t>((y * 3 + k * 50) & 255);
      }
    ASSERT_TRUE(save_jpeg((dir_ / "images" / ("img" + std::to_string(k) + ".jpg")).string(), img).is_ok());
  }
  const std::string head = (dir_ / "retina.json").string();
  std::ofstream(head) << qyolo::testing::retina_head_json(kClasses, kAnchors);
  const std::string profile =
      " --min-shapes images:1x3x128x128 --opt-shapes images:2x3x256x384 --max-shapes images:3x3x512x512";
  const std::string cache = (dir_ / "retina.cache").string();
  auto cal = run_cli("calibrate --model " + model_ + profile + " --calib " + (dir_ / "images").string() +
                     " --num 4 --algo minmax --cache " + cache);
  ASSERT_EQ(cal.exit_code, 0) << cal.output;
  std::printf("%s", cal.output.c_str());
  EXPECT_NE(cal.output.find("at 2x3x256x384"), std::string::npos) << cal.output;
  const std::string engine_file = (dir_ / "retina.qengine").string();
  auto build =
      run_cli("build --model " + model_ + profile + " --int8 --cache " + cache + " --out " + engine_file);
  ASSERT_EQ(build.exit_code, 0) << build.output;
  std::printf("%s", build.output.c_str());
}

}  // namespace
