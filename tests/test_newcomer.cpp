// A new user's first runs (issue 18): the image size comes from the model, absurd sizes are a clear
// error, set-up is timed apart from the network, and an output that is not a decoded detection
// head is refused instead of turned into nonsense boxes. Small models built here, real CLI.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "onnx_builder.h"
#include "qyolo/qyolo.h"
#include "test_support.h"

namespace fs = std::filesystem;
using qyolo::testing::OnnxBuilder;
using qyolo::testing::run_cli;

namespace {

// A one-conv "detector": a stride-32 patchify conv to 85 channels, then either a sigmoid (decoded
// scores in [0, 1], as ultralytics exports end; box channels scaled to pixels) or nothing (raw logits, like a YOLOX export without
// its decode), reshaped to [N, cells, 85]. H and W: fixed sizes or -1 for dynamic dims.
std::string tiny_head_model(int64_t h, int64_t w, bool sigmoid, const std::string& imgsz_metadata = "") {
  OnnxBuilder b(13);
  b.input("images", {h < 0 ? -1 : 1, 3, h, w});
  b.output("output0");
  std::vector<float> weight(85 * 3 * 32 * 32);
  for (size_t i = 0; i < weight.size(); ++i) weight[i] = 0.002f * static_cast<float>(static_cast<int>(i % 7) - 3);
  b.initializer("W", {85, 3, 32, 32}, weight);
  std::vector<float> bias(85, sigmoid ? 0.f : -6.f);  // raw objectness/class logits sit far below 0
  b.initializer("B", {85}, bias);
  auto* conv = b.node("Conv", {"images", "W", "B"}, {"conv"}, "/head/conv");
  OnnxBuilder::attr_ints(conv, "kernel_shape", {32, 32});
  OnnxBuilder::attr_ints(conv, "strides", {32, 32});
  std::string last = "conv";
  if (sigmoid) {
    b.node("Sigmoid", {"conv"}, {"sig"}, "/head/sigmoid");
    // Decoded boxes are in input pixels (the head check looks for centres spread over the image).
    std::vector<float> scale(85, 1.f);
    for (int c = 0; c < 4; ++c) scale[c] = 320.f;
    b.initializer("box_scale", {1, 85, 1, 1}, scale);
    b.node("Mul", {"sig", "box_scale"}, {"scaled"}, "/head/scale");
    last = "scaled";
  }
  auto* shape = b.model().mutable_graph()->add_initializer();
  shape->set_name("shape");
  shape->set_data_type(onnx::TensorProto::INT64);
  shape->add_dims(3);
  for (int64_t d : {0, 85, -1}) shape->add_int64_data(d);
  b.node("Reshape", {last, "shape"}, {"flat"}, "/head/reshape");
  auto* t = b.node("Transpose", {"flat"}, {"output0"}, "/head/transpose");
  OnnxBuilder::attr_ints(t, "perm", {0, 2, 1});
  auto* stride = b.model().add_metadata_props();
  stride->set_key("stride");
  stride->set_value("32");
  if (!imgsz_metadata.empty()) {
    auto* m = b.model().add_metadata_props();
    m->set_key("imgsz");
    m->set_value(imgsz_metadata);
  }
  return b.bytes();
}

class Newcomer : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qyolo_newcomer_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    qyolo::Image img(200, 150, 90);
    for (int y = 40; y < 110; ++y)
      for (int x = 50; x < 150; ++x) img.pixel(x, y)[1] = 220;
    ASSERT_TRUE(qyolo::save_jpeg((dir_ / "img.jpg").string(), img).is_ok());
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) {
    std::ofstream f(dir_ / name, std::ios::binary);
    f << bytes;
    return (dir_ / name).string();
  }
  std::string image() const { return (dir_ / "img.jpg").string(); }
  fs::path dir_;
};

// Point 3: a static 352x352 model detects at 352 without --imgsz (it used to letterbox to 640 and
// fail with "outside the engine's profile").
TEST_F(Newcomer, StaticModelSizeIsTheDefaultImageSize) {
  std::string model = write("static352.onnx", tiny_head_model(352, 352, /*sigmoid=*/true));
  auto r = run_cli("detect --model " + model + " --source " + image() + " --out " + (dir_ / "out").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream f(dir_ / "out" / "detections.json");
  auto doc = nlohmann::json::parse(f);
  EXPECT_EQ(doc["imgsz"], nlohmann::json({352, 352}));
  // --imgsz still overrides, and a size the static model cannot take is a clear error.
  auto other = run_cli("detect --model " + model + " --imgsz 640 --source " + image() + " --out " +
                       (dir_ / "out2").string());
  EXPECT_EQ(other.exit_code, 1) << other.output;
  EXPECT_NE(other.output.find("640x640"), std::string::npos) << other.output;
  EXPECT_NE(other.output.find("352"), std::string::npos) << other.output;
}

// Point 3: a dynamic model takes ultralytics' imgsz metadata ("[320, 320]"), non-square too.
TEST_F(Newcomer, DynamicModelTakesImgszMetadata) {
  std::string model = write("dyn.onnx", tiny_head_model(-1, -1, /*sigmoid=*/true, "[320, 384]"));
  auto engine = qyolo::Engine::build(model, {});
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  auto det = qyolo::Detector::create(*engine, {});
  ASSERT_TRUE(det.is_ok()) << det.status().to_string();
  EXPECT_EQ((*det)->options().input_h, 320);
  EXPECT_EQ((*det)->options().input_w, 384);
  auto r = run_cli("detect --model " + model + " --source " + image() + " --out " + (dir_ / "out").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream f(dir_ / "out" / "detections.json");
  EXPECT_EQ(nlohmann::json::parse(f)["imgsz"], nlohmann::json({320, 384}));
}

// Point 4: --imgsz 100000 used to abort with std::bad_alloc (exit 134).
TEST_F(Newcomer, AbsurdImageSizeIsAClearError) {
  std::string model = write("dyn.onnx", tiny_head_model(-1, -1, /*sigmoid=*/true));
  const fs::path out = dir_ / "out";
  auto r = run_cli("detect --model " + model + " --imgsz 100000 --source " + image() + " --out " + out.string());
  EXPECT_FALSE(r.signalled) << r.output;
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("100000x100000"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out)) << "nothing may be written for a refused run";
  auto neg = run_cli("detect --model " + model + " --imgsz=-64 --source " + image() + " --out " + out.string());
  EXPECT_EQ(neg.exit_code, 1) << neg.output;
  EXPECT_NE(neg.output.find("-64"), std::string::npos) << neg.output;
}

// Point 5: the one-time set-up is reported once and kept out of the per-image network time.
TEST_F(Newcomer, SetUpIsTimedApartFromTheNetwork) {
  std::string model = write("static.onnx", tiny_head_model(320, 320, /*sigmoid=*/true));
  auto engine = qyolo::Engine::build(model, {});
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  auto det = qyolo::Detector::create(*engine, {});
  ASSERT_TRUE(det.is_ok()) << det.status().to_string();
  auto img = qyolo::load_image(image());
  ASSERT_TRUE(img.is_ok());
  // Without prepare(), the first call does the set-up and says so in last_setup_s.
  ASSERT_TRUE((*det)->detect({&*img}).is_ok());
  const double first_setup = (*det)->last_setup_s;
  EXPECT_GT(first_setup, 0.0);
  // Later calls of the same size build nothing: their set-up is a shape lookup.
  ASSERT_TRUE((*det)->detect({&*img}).is_ok());
  EXPECT_LT((*det)->last_setup_s, 0.1 * first_setup);
  auto r = run_cli("detect --model " + model + " --source " + image() + " --out " + (dir_ / "out").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("set-up"), std::string::npos) << r.output;
}

// Point 6: raw logits (no sigmoid, as a YOLOX export without its decode) are refused with a message
// that says what the output holds; nothing is written.
TEST_F(Newcomer, RawHeadOutputIsRefused) {
  std::string model = write("raw.onnx", tiny_head_model(320, 320, /*sigmoid=*/false));
  const fs::path out = dir_ / "out";
  auto r = run_cli("detect --model " + model + " --source " + image() + " --out " + out.string());
  EXPECT_FALSE(r.signalled) << r.output;
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("output0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("outside [0, 1]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("raw logits"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out / "detections.json"));
  // The library refuses it too, on the first detect() (no prepare() needed).
  auto engine = qyolo::Engine::build(model, {});
  ASSERT_TRUE(engine.is_ok());
  auto det = qyolo::Detector::create(*engine, {});
  ASSERT_TRUE(det.is_ok());
  auto img = qyolo::load_image(image());
  auto dets = (*det)->detect({&*img});
  EXPECT_FALSE(dets.is_ok());
  // eval refuses it the same way.
  QYOLO_REQUIRE_SHARED("data/val500/instances.json");
  auto e = run_cli("eval --model " + model + " --data " + (qyolo::testing::shared_dir() / "data/val500").string() +
                   " --limit 2 -q");
  EXPECT_EQ(e.exit_code, 1) << e.output;
  EXPECT_NE(e.output.find("raw logits"), std::string::npos) << e.output;
}

}  // namespace
