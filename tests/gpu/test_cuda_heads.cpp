// Raw and multi-output detection heads on cuda engines (issue 16): the GPU pipeline's head decode
// (src/backends/cuda/postprocess.cu, the per-point code of src/yolo/head_decode.h) + NMS against
// the CPU decode + NMS of the same cuda engine's outputs, for the synthetic heads of
// tests/head_models.h (YOLOv8 DFL levels, split box/class outputs, YOLOv5 raw levels, YOLOX rows,
// RetinaNet's 10 outputs at two dynamic sizes), FP32 and FP16 engines, and the decoded tensor
// itself against the CPU decode. No shared files needed.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "gpu_test_support.h"
#include "head_models.h"
#include "runtime/detector.h"
#include "runtime/engine_impl.h"
#include "runtime/gpu_pipeline.h"
#include "yolo/head.h"

namespace fs = std::filesystem;
using namespace qyolo;
using namespace qyolo::gputest;

namespace {

class CudaHeads : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qyolo_cuda_heads_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    for (int k = 0; k < 3; ++k) {
      Image img(300 + 40 * k, 200 + 30 * k, 0);
      for (int y = 0; y < img.height; ++y)
        for (int x = 0; x < img.width; ++x) {
          uint8_t* p = img.pixel(x, y);
          p[0] = static_cast<uint8_t>((x * 255) / img.width);
          p[1] = static_cast<uint8_t>(((x / (16 + 8 * k)) + (y / 24)) % 2 ? 220 : 30);
          p[2] = static_cast<uint8_t>((y * 3 + k * 50) & 255);
        }
      images_.push_back(img);
    }
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) {
    std::ofstream f(dir_ / name, std::ios::binary);
    f << bytes;
    return (dir_ / name).string();
  }

  // One cuda engine; the Detector with GPU pre/post vs the Detector with CPU pre/post (the same
  // network outputs, decoded and NMSed on the host).
  void compare(const std::string& model, const std::string& head, int h, int w, Precision precision) {
    SCOPED_TRACE(model + " --head " + head + " " + std::to_string(h) + "x" + std::to_string(w) + " " +
                 precision_name(precision));
    BuildOptions bo;
    bo.device = Device::kCuda;
    bo.precision = precision;
    auto engine = Engine::build(model, bo);
    ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
    std::vector<const Image*> batch;
    for (const auto& im : images_) batch.push_back(&im);
    std::vector<std::vector<Detection>> results[2];
    std::string described[2];
    for (int gpu = 0; gpu < 2; ++gpu) {
      DetectOptions opt;
      opt.input_h = h, opt.input_w = w;
      opt.head = head;
      opt.nms.conf = 0.25f;
      opt.nms.iou = 0.5f;
      opt.gpu_prepost = gpu == 1;
      auto det = Detector::create(*engine, opt);
      ASSERT_TRUE(det.is_ok()) << det.status().to_string();
      EXPECT_EQ((*det)->prepost_device(), gpu ? Device::kCuda : Device::kCpu);
      auto r = (*det)->detect(batch);
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      // Twice: the second run reuses every buffer and must agree.
      auto again = (*det)->detect(batch);
      ASSERT_TRUE(again.is_ok()) << again.status().to_string();
      ASSERT_EQ(again->size(), r->size());
      for (size_t i = 0; i < r->size(); ++i) EXPECT_EQ((*again)[i].size(), (*r)[i].size());
      results[gpu] = std::move(r).value();
      described[gpu] = (*det)->head_description();
    }
    EXPECT_EQ(described[0], described[1]);
    std::printf("  %s\n", described[1].c_str());
    size_t total = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      const auto& c = results[0][i];
      const auto& g = results[1][i];
      ASSERT_EQ(g.size(), c.size()) << "image " << i;
      for (size_t k = 0; k < g.size(); ++k) {
        EXPECT_EQ(g[k].class_id, c[k].class_id);
        EXPECT_NEAR(g[k].score, c[k].score, 1e-4);
        EXPECT_NEAR(g[k].x1, c[k].x1, 1e-2);
        EXPECT_NEAR(g[k].y1, c[k].y1, 1e-2);
        EXPECT_NEAR(g[k].x2, c[k].x2, 1e-2);
        EXPECT_NEAR(g[k].y2, c[k].y2, 1e-2);
      }
      total += g.size();
    }
    EXPECT_GT(total, 0u) << "no detections to compare";
  }

  fs::path dir_;
  std::vector<Image> images_;
};

TEST_F(CudaHeads, YoloV8Dfl) {
  QYOLO_REQUIRE_GPU();
  const std::string m = write("v8.onnx", qyolo::testing::yolov8_raw_model(-1, -1, 3, false));
  compare(m, "yolov8", 320, 320, Precision::kFp32);
  compare(m, "yolov8", 256, 384, Precision::kFp32);
  compare(m, "yolov8", 320, 320, Precision::kFp16);
  const std::string split = write("v8split.onnx", qyolo::testing::yolov8_raw_model(320, 320, 2, true));
  compare(split, "yolo11", 320, 320, Precision::kFp32);
}

TEST_F(CudaHeads, YoloV5RawAndYoloX) {
  QYOLO_REQUIRE_GPU();
  const std::string v5 = write("v5.onnx", qyolo::testing::yolov5_raw_model(-1, -1, 2));
  compare(v5, "yolov5", 256, 320, Precision::kFp32);
  const std::string yx = write("yolox.onnx", qyolo::testing::yolox_model(-1, -1, 3, true));
  compare(yx, "yolox", 320, 320, Precision::kFp32);
  compare(yx, "yolox", 224, 288, Precision::kFp16);
  const std::string logits = write("yolox_logits.onnx", qyolo::testing::yolox_model(-1, -1, 3, false));
  compare(logits, "yolox", 320, 320, Precision::kFp32);
}

TEST_F(CudaHeads, RetinaNetTenOutputs) {
  QYOLO_REQUIRE_GPU();
  const std::string m = write("retina.onnx", qyolo::testing::retinanet_model(-1, -1, 3, 2));
  std::string j = R"({"box": "deltas", "scores": "logits", "anchors": [)";
  std::string outs;
  for (int s : {8, 16, 32, 64, 128}) {
    j += std::string(s == 8 ? "" : ", ") + "[[" + std::to_string(4 * s) + ", " + std::to_string(3 * s) +
         "], [" + std::to_string(8 * s) + ", " + std::to_string(3 * s) + "]]";
    const std::string lv = std::to_string(s);
    outs += std::string(s == 8 ? "" : ", ") + R"({"name": "cls)" + lv +
            R"(", "parts": ["cls"]}, {"name": "box)" + lv + R"(", "parts": ["box"]})";
  }
  const std::string head = write("retina.json", j + "], \"outputs\": [" + outs + "]}");
  compare(m, head, 256, 256, Precision::kFp32);
  compare(m, head, 384, 512, Precision::kFp32);
}

// The GPU's decoded tensor against the CPU decode of the same outputs (GpuPipeline test hooks).
TEST_F(CudaHeads, DecodedTensorMatchesTheCpuDecode) {
  QYOLO_REQUIRE_GPU();
  const std::string m = write("v8.onnx", qyolo::testing::yolov8_raw_model(-1, -1, 3, false));
  BuildOptions bo;
  bo.device = Device::kCuda;
  auto engine = Engine::build(m, bo);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  auto ctx = (*engine)->create_context();
  ASSERT_TRUE(ctx.is_ok());
  auto pipe = GpuPipeline::create(**ctx, NmsOptions{}, -1);
  ASSERT_TRUE(pipe.is_ok()) << pipe.status().to_string();
  HeadSpec spec = builtin_head("yolov8")->at(1);
  spec.scores = Activation::kLogits;
  ASSERT_TRUE((*pipe)->set_head({spec}, NmsOptions{}).is_ok());
  std::vector<LetterboxInfo> infos;
  auto dets = (*pipe)->run({&images_[0], &images_[1]}, 256, 320, &infos);
  ASSERT_TRUE(dets.is_ok()) << dets.status().to_string();
  auto input = (*pipe)->last_input();
  auto gpu_decoded = (*pipe)->last_output();
  ASSERT_TRUE(input.is_ok() && gpu_decoded.is_ok());
  // The same input through the same engine, decoded on the host.
  auto ctx2 = (*engine)->create_context();
  std::vector<Tensor> outs;
  ASSERT_TRUE((*ctx2)->run(*input, outs).is_ok());
  std::vector<OutputDesc> descs;
  for (size_t i = 0; i < outs.size(); ++i)
    descs.push_back({(*engine)->info().output_names[i], outs[i].shape()});
  auto bound = bind_head({spec}, descs, {256, 320, -1, 32});
  ASSERT_TRUE(bound.is_ok()) << bound.status().to_string();
  Tensor cpu(DataType::kFloat32, bound->decoded_shape());
  std::vector<const float*> ptrs;
  for (const auto& t : outs) ptrs.push_back(t.data<float>());
  ASSERT_TRUE(decode_head(*bound, ptrs, cpu.data<float>()).is_ok());
  ASSERT_EQ(gpu_decoded->shape(), cpu.shape());
  double worst = 0;
  for (int64_t i = 0; i < cpu.numel(); ++i) {
    const float c = cpu.data<float>()[i], g = gpu_decoded->data<float>()[i];
    worst = std::max(worst, std::fabs(double(g) - c) / std::max(1.0, std::fabs(double(c))));
  }
  // The DFL expectation and the sigmoid use the GPU's exp (a few ulp from the host's) and another
  // summation order: 1e-4 of a pixel coordinate (0.03 px at 300) is far below a visible change.
  EXPECT_LT(worst, 1e-4) << "largest relative difference of the decoded values";
  EXPECT_NE((*pipe)->last_head_description().find("3 levels"), std::string::npos);
}

// Scores declared probabilities that are logits: the GPU decode reports it like the CPU one.
TEST_F(CudaHeads, WrongActivationIsAnError) {
  QYOLO_REQUIRE_GPU();
  const std::string m = write("yolox_logits.onnx", qyolo::testing::yolox_model(320, 320, 3, false));
  BuildOptions bo;
  bo.device = Device::kCuda;
  auto engine = Engine::build(m, bo);
  ASSERT_TRUE(engine.is_ok());
  auto ctx = (*engine)->create_context();
  auto pipe = GpuPipeline::create(**ctx, NmsOptions{}, -1);
  ASSERT_TRUE(pipe.is_ok());
  HeadSpec spec = builtin_head("yolox")->at(0);
  spec.scores = Activation::kApplied;
  ASSERT_TRUE((*pipe)->set_head({spec}, NmsOptions{}).is_ok());
  auto r = (*pipe)->run({&images_[0]}, 320, 320, nullptr);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("outside [0, 1]"), std::string::npos) << r.status().message();
}

}  // namespace
