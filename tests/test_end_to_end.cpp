// End to end against the PyTorch references in ../shared/reference: raw output0 for bus_input.npy
// (static and dynamic exports) and detections after NMS on bus.jpg / zidane.jpg.
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ir/npy.h"
#include "runtime/detector.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::shared_dir;

namespace {

struct ErrorStats {
  double max_abs_err = 0, max_abs_ref = 0;
};

ErrorStats compare(const Tensor& ref, const Tensor& out) {
  ErrorStats s;
  const float* r = ref.data<float>();
  const float* o = out.data<float>();
  for (int64_t i = 0; i < ref.numel(); ++i) {
    s.max_abs_err = std::max(s.max_abs_err, static_cast<double>(std::fabs(r[i] - o[i])));
    s.max_abs_ref = std::max(s.max_abs_ref, static_cast<double>(std::fabs(r[i])));
  }
  return s;
}

class ReferenceOutput : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(ReferenceOutput, MatchesPyTorch) {
  auto [model_file, ref_file] = GetParam();
  QYOLO_REQUIRE_SHARED("models/" + model_file);
  QYOLO_REQUIRE_SHARED("reference/" + ref_file);
  auto input = read_npy((shared_dir() / "reference/bus_input.npy").string());
  ASSERT_TRUE(input.is_ok()) << input.status().to_string();
  auto ref = read_npy((shared_dir() / "reference" / ref_file).string());
  ASSERT_TRUE(ref.is_ok()) << ref.status().to_string();
  auto engine = Engine::build((shared_dir() / "models" / model_file).string(), {});
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  auto ctx = (*engine)->create_context();
  ASSERT_TRUE(ctx.is_ok());
  Tensor out;
  Status st = (*ctx)->run(*input, out);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  ASSERT_EQ(out.shape(), ref->shape());
  ErrorStats s = compare(*ref, out);
  std::printf("%s: max abs err %.3g, max abs ref %.3g, ratio %.3g\n", model_file.c_str(), s.max_abs_err,
              s.max_abs_ref, s.max_abs_err / s.max_abs_ref);
  EXPECT_LT(s.max_abs_err / s.max_abs_ref, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Shared, ReferenceOutput,
                         ::testing::Values(std::pair{"yolov5n.onnx", "bus_yolov5n_output0.npy"},
                                           std::pair{"yolov5n-dynamic.onnx", "bus_yolov5n_output0.npy"},
                                           std::pair{"yolov5s.onnx", "bus_yolov5s_output0.npy"},
                                           std::pair{"yolov5s-dynamic.onnx", "bus_yolov5s_output0.npy"}),
                         [](const auto& info) {
                           std::string n = info.param.first.substr(0, info.param.first.size() - 5);
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

double iou(const float a[4], const float b[4]) {
  float ix = std::max(0.f, std::min(a[2], b[2]) - std::max(a[0], b[0]));
  float iy = std::max(0.f, std::min(a[3], b[3]) - std::max(a[1], b[1]));
  float inter = ix * iy;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

class ReferenceDetections : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceDetections, MatchPyTorchWithin2px) {
  const std::string model = GetParam();
  QYOLO_REQUIRE_SHARED("models/" + model + ".onnx");
  QYOLO_REQUIRE_SHARED("reference/detections_conf025_iou045.json");
  std::ifstream f(shared_dir() / "reference/detections_conf025_iou045.json");
  auto ref = nlohmann::json::parse(f);
  auto engine = Engine::build((shared_dir() / "models" / (model + ".onnx")).string(), {});
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  DetectOptions opt;  // conf 0.25, iou 0.45, 640
  auto det = Detector::create(*engine, opt);
  ASSERT_TRUE(det.is_ok());
  for (const std::string image : {"bus.jpg", "zidane.jpg"}) {
    auto img = load_image((shared_dir() / "data/samples" / image).string());
    ASSERT_TRUE(img.is_ok()) << img.status().to_string();
    auto dets = (*det)->detect({&*img});
    ASSERT_TRUE(dets.is_ok()) << dets.status().to_string();
    const auto& expected = ref[model][image];
    ASSERT_EQ((*dets)[0].size(), expected.size()) << model << " " << image;
    for (size_t i = 0; i < expected.size(); ++i) {
      const auto& e = expected[i];
      const Detection& d = (*dets)[0][i];
      EXPECT_EQ(d.class_id, e["class_id"].get<int>()) << image << " #" << i;
      float eb[4], db[4] = {d.x1, d.y1, d.x2, d.y2};
      for (int k = 0; k < 4; ++k) {
        eb[k] = e["box_xyxy"][k].get<float>();
        EXPECT_NEAR(db[k], eb[k], 2.0) << model << " " << image << " det " << i << " coord " << k;
      }
      EXPECT_NEAR(d.score, e["score"].get<float>(), 0.01) << image << " #" << i;
      EXPECT_GT(iou(db, eb), 0.95);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shared, ReferenceDetections, ::testing::Values("yolov5n", "yolov5s"));

// Dynamic export at a non-square, batched shape: every image in the batch matches batch-1 output.
TEST(DynamicShapes, BatchOfTwoRectangularMatchesSingleRuns) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-dynamic.onnx");
  auto engine = Engine::build((shared_dir() / "models/yolov5n-dynamic.onnx").string(), {});
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  auto ctx = (*engine)->create_context();
  ASSERT_TRUE(ctx.is_ok());
  Tensor batch(DataType::kFloat32, {2, 3, 256, 320});
  for (int64_t i = 0; i < batch.numel(); ++i) batch.data<float>()[i] = static_cast<float>((i * 7919) % 1000) / 1000.f;
  Tensor out2;
  ASSERT_TRUE((*ctx)->run(batch, out2).is_ok());
  // 3 anchors x (32*40 + 16*20 + 8*10) cells
  ASSERT_EQ(out2.shape(), (Shape{2, 3 * (32 * 40 + 16 * 20 + 8 * 10), 85}));
  for (int b = 0; b < 2; ++b) {
    Tensor one(DataType::kFloat32, {1, 3, 256, 320});
    std::copy_n(batch.data<float>() + b * one.numel(), one.numel(), one.data<float>());
    Tensor out1;
    ASSERT_TRUE((*ctx)->run(one, out1).is_ok());
    const int64_t n = out1.numel();
    for (int64_t i = 0; i < n; ++i)
      ASSERT_NEAR(out1.data<float>()[i], out2.data<float>()[b * n + i], 1e-3f + 1e-4f * std::fabs(out1.data<float>()[i]));
  }
}

}  // namespace
