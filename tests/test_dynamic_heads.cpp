// Dynamic H/W for multi-output models (issue 16, item 5): a RetinaNet-style synthetic detector
// (tests/head_models.h: dynamic N/H/W, 10 outputs at strides 8..128 whose H/W follow the input)
// built with an explicit profile, run at several shapes inside it from one context, against a
// plain-loop reference interpreter of the same ONNX graph; shapes outside the profile; the
// engine file round trip; calibration at a profile shape and detect/eval through the CLI.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "backends/cpu/conv2d_int8.h"
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

  // Images with structure at several scales (every level's features vary), in dir_/images.
  std::vector<Image> write_images() {
    std::vector<Image> images;
    for (int k = 0; k < 4; ++k) {
      const Image img = qyolo::testing::multiscale_test_image(k);
      EXPECT_TRUE(save_jpeg((dir_ / "images" / ("img" + std::to_string(k) + ".jpg")).string(), img).is_ok());
      images.push_back(img);
    }
    return images;
  }
  // `qyolo calibrate` at the profile's opt shape (--opt-shapes gives the batch and H/W).
  std::string calibrate() {
    const std::string cache = (dir_ / "retina.cache").string();
    auto cal = run_cli("calibrate --model " + model_ + kProfileArgs + " --calib " +
                       (dir_ / "images").string() + " --num 4 --algo minmax --cache " + cache);
    EXPECT_EQ(cal.exit_code, 0) << cal.output;
    EXPECT_NE(cal.output.find("4 images at 2x3x256x384"), std::string::npos) << cal.output;
    return cache;
  }

  static constexpr const char* kProfileArgs =
      " --min-shapes images:1x3x128x128 --opt-shapes images:2x3x256x384 --max-shapes images:3x3x512x512";
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

// INT8 at a profile: the engine file keeps the profile and the plan; the loaded engine gives the
// built engine's outputs bit for bit at every shape, close to the FP32 reference; its Detector
// decodes each output at its runtime H/W (the reference decode + NMS of its own raw outputs).
TEST_F(DynamicHeads, Int8EngineFileRoundTripAtSeveralShapes) {
  const std::vector<Image> images = write_images();
  BuildOptions o;
  o.profile = test_profile();
  o.precision = Precision::kInt8;
  o.calibration_file = calibrate();
  auto built = Engine::build(model_, o);
  ASSERT_TRUE(built.is_ok()) << built.status().to_string();
  const std::string file = (dir_ / "retina.qengine").string();
  ASSERT_TRUE((*built)->save(file).is_ok());
  auto loaded = Engine::load(file);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ((*loaded)->profile().min, test_profile().min);
  EXPECT_EQ((*loaded)->profile().opt, test_profile().opt);
  EXPECT_EQ((*loaded)->profile().max, test_profile().max);
  EXPECT_EQ((*loaded)->info().output_names, (*built)->info().output_names);
  auto a = (*built)->create_context();
  auto b = (*loaded)->create_context();
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  const auto& names = (*loaded)->info().output_names;
  uint32_t seed = 11;
  for (const Shape& s : std::vector<Shape>{{2, 3, 256, 384}, {1, 3, 128, 512}, {3, 3, 512, 256}}) {
    SCOPED_TRACE(shape_str(s));
    const Tensor input = random_input(s, seed++);
    std::vector<Tensor> got_a, got_b;
    ASSERT_TRUE((*a)->run(input, got_a).is_ok());
    ASSERT_TRUE((*b)->run(input, got_b).is_ok());
    ASSERT_EQ(got_a.size(), got_b.size());
    for (size_t i = 0; i < got_a.size(); ++i) {
      ASSERT_EQ(got_a[i].shape(), got_b[i].shape());
      EXPECT_EQ(std::memcmp(got_a[i].data<float>(), got_b[i].data<float>(), got_a[i].nbytes()), 0)
          << names[i];
    }
    // INT8 against the FP32 reference: within a few percent of each output's range.
    const auto ref = reference_outputs(graph_, input);
    for (size_t i = 0; i < got_b.size(); ++i) {
      const Tensor& want = ref.at(names[i]);
      ASSERT_EQ(got_b[i].shape(), want.shape()) << names[i];
      double err = 0, range = 0;
      for (int64_t k = 0; k < want.numel(); ++k) {
        err =
            std::max(err, static_cast<double>(std::fabs(got_b[i].data<float>()[k] - want.data<float>()[k])));
        range = std::max(range, static_cast<double>(std::fabs(want.data<float>()[k])));
      }
      std::printf("  %s %s: INT8 max abs err %.4f of range %.3f\n", shape_str(s).c_str(), names[i].c_str(),
                  err, range);
      // Where the CPU halves the int8 weights (no VNNI: cpu::int8_conv_weight_adjust) their step
      // doubles, and so may this bound (seen on an AVX2 EPYC: 5.8% of the range).
      const double bound = cpu::int8_conv_weight_adjust() == 1.f ? 0.05 : 0.10;
      EXPECT_LE(err, bound * range) << names[i];
    }
  }
  // Detect through the head description on the loaded engine at two sizes inside the profile.
  const std::string head = (dir_ / "retina.json").string();
  std::ofstream(head) << qyolo::testing::retina_head_json(kClasses, kAnchors);
  std::vector<const Image*> batch;
  for (const auto& im : images) batch.push_back(&im);
  size_t total = 0;
  for (auto [h, w] : {std::pair{256, 384}, {512, 128}}) {
    SCOPED_TRACE(std::to_string(h) + "x" + std::to_string(w));
    DetectOptions opt;
    opt.input_h = h, opt.input_w = w;
    opt.head = head;
    opt.nms.conf = 0.3f;
    opt.nms.iou = 0.5f;
    auto det = Detector::create(*loaded, opt);
    ASSERT_TRUE(det.is_ok()) << det.status().to_string();
    batch.resize(static_cast<size_t>(h == 256 ? 3 : 1));  // the batch changes too (max 3)
    auto got = (*det)->detect(batch);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    EXPECT_NE((*det)->head_description().find("5 levels"), std::string::npos) << (*det)->head_description();
    std::vector<LetterboxInfo> infos;
    const Tensor input = Detector::preprocess(batch, h, w, &infos);
    std::vector<Tensor> outs;
    ASSERT_TRUE((*b)->run(input, outs).is_ok());
    auto want =
        postprocess(qyolo::testing::ref_retina_decoded(outs, kClasses, kAnchors), HeadKind::kYoloV8, opt.nms);
    ASSERT_TRUE(want.is_ok()) << want.status().to_string();
    for (size_t i = 0; i < batch.size(); ++i) {
      auto& wd = want->at(i);
      unletterbox(wd, infos[i].scale, infos[i].pad_x, infos[i].pad_y, infos[i].src_w, infos[i].src_h);
      const auto& gd = got->at(i);
      ASSERT_EQ(gd.size(), wd.size()) << "image " << i;
      for (size_t k = 0; k < gd.size(); ++k) {
        EXPECT_EQ(gd[k].class_id, wd[k].class_id);
        EXPECT_NEAR(gd[k].score, wd[k].score, 1e-5);
        EXPECT_NEAR(gd[k].x1, wd[k].x1, 1e-3f * std::max(1.f, std::fabs(wd[k].x1)));
        EXPECT_NEAR(gd[k].y2, wd[k].y2, 1e-3f * std::max(1.f, std::fabs(wd[k].y2)));
      }
      total += gd.size();
    }
  }
  std::printf("  %zu detections compared\n", total);
  EXPECT_GE(total, 2u) << "too few detections to compare";
}

// The command-line path: calibrate at the profile's opt shape, build an INT8 engine file with the
// profile, detect and eval through the head description at sizes inside it; a size outside it is
// an error naming the size and the profile.
TEST_F(DynamicHeads, CalibrateBuildDetectEvalThroughTheCli) {
  write_images();
  const std::string head = (dir_ / "retina.json").string();
  std::ofstream(head) << qyolo::testing::retina_head_json(kClasses, kAnchors);
  const std::string cache = calibrate();
  const std::string engine = (dir_ / "retina.qengine").string();
  auto build =
      run_cli("build --model " + model_ + kProfileArgs + " --int8 --cache " + cache + " --out " + engine);
  ASSERT_EQ(build.exit_code, 0) << build.output;
  EXPECT_NE(build.output.find("at 2x3x256x384"), std::string::npos) << build.output;
  const std::string images = (dir_ / "images").string();
  for (const std::string size : {"256 384", "512 128"}) {
    const fs::path out = dir_ / ("out" + std::to_string(size.size()) + size.substr(0, 3));
    auto det = run_cli("detect --engine " + engine + " --head " + head + " --imgsz " + size +
                       " --conf 0.3 --no-images --source " + images + " --out " + out.string());
    ASSERT_EQ(det.exit_code, 0) << det.output;
    std::ifstream f(out / "detections.json");
    auto doc = nlohmann::json::parse(f);
    EXPECT_EQ(doc["precision"], "int8");
    size_t dets = 0;
    for (const auto& r : doc["results"]) dets += r["detections"].size();
    EXPECT_GT(dets, 0u) << size;
  }
  auto outside = run_cli("detect --engine " + engine + " --head " + head + " --imgsz 640 --source " + images +
                         " --out " + (dir_ / "o640").string());
  EXPECT_EQ(outside.exit_code, 1) << outside.output;
  EXPECT_NE(outside.output.find("640x640 (HxW) is outside the engine's profile: H 128..512, W 128..512"),
            std::string::npos)
      << outside.output;
  // eval against the FP32 model's own detections (--labels-from): the FP32 model built with the
  // profile scores exactly as the same model with the default profile; the INT8 engine file is
  // scored against them. (Agreement is not 1.0 even for FP32: the proxy scores every detection.)
  const std::string labels = " --data " + dir_.string() + " --labels-from " + model_ + " --labels-conf 0.95";
  auto fp32 =
      run_cli("eval --model " + model_ + kProfileArgs + " --head " + head + " --imgsz 256 384" + labels);
  ASSERT_EQ(fp32.exit_code, 0) << fp32.output;
  auto fp32_default = run_cli("eval --model " + model_ + " --head " + head + " --imgsz 256 384" + labels);
  ASSERT_EQ(fp32_default.exit_code, 0) << fp32_default.output;
  const auto map_line = [](const std::string& out) {
    const size_t at = out.find("mAP50-95 ");
    return at == std::string::npos ? std::string("no mAP line") : out.substr(at, out.find('\n', at) - at);
  };
  EXPECT_EQ(map_line(fp32.output), map_line(fp32_default.output));
  std::printf("FP32 %s\n", map_line(fp32.output).c_str());
  auto int8 = run_cli("eval --engine " + engine + " --head " + head + " --imgsz 256 384" + labels);
  ASSERT_EQ(int8.exit_code, 0) << int8.output;
  std::printf("INT8 %s\n", map_line(int8.output).c_str());
  // Without --imgsz both the labels and the engine run at the engine file's own size (256x384),
  // not the labels model's default (640).
  auto own = run_cli("eval --engine " + engine + " --head " + head + labels);
  ASSERT_EQ(own.exit_code, 0) << own.output;
  EXPECT_EQ(map_line(own.output), map_line(int8.output));
}

}  // namespace
