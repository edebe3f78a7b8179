// A real YOLOv8n on the CUDA engine (issue 16): the float graph `qyolo export-float` writes from
// ../shared/models/yolov8n-ort-qlinear.onnx (C2f Split/Concat, SPPF, the DFL Softmax, an
// anchor-free [1, 84, 8400] head), bundled by scripts/device-check.sh prepare as
// models/yolov8n-float.onnx. FP32: the output for bus.jpg within 1e-3 (of the largest value) of the
// CPU engine's. FP16 and INT8 (a 2-image min-max cache on data/samples, fp32 and fp16 between
// layers): the detections on bus.jpg agree with the CPU engine's (FP32, and INT8 from the same
// cache). Skipped, saying why, when the model or the images are absent.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "gpu_test_support.h"
#include "qyolo/calibration.h"
#include "qyolo/detector.h"

namespace fs = std::filesystem;
using namespace qyolo;
using namespace qyolo::gputest;

namespace {

fs::path model_path() {
  return shared_dir() / "models" / "yolov8n-float.onnx";
}
fs::path bus_path() {
  return shared_dir() / "data" / "samples" / "bus.jpg";
}

#define QYOLO_REQUIRE_YOLOV8()                                                                            \
  do {                                                                                                    \
    QYOLO_REQUIRE_GPU();                                                                                  \
    if (!fs::exists(model_path()))                                                                        \
      GTEST_SKIP()                                                                                        \
          << "model absent: " << model_path()                                                             \
          << " (qyolo export-float -m yolov8n-ort-qlinear.onnx; device-check.sh prepare bundles it)";     \
    if (!fs::exists(bus_path())) GTEST_SKIP() << "image absent: " << bus_path() << " (set QYOLO_SHARED)"; \
  } while (0)

Result<std::shared_ptr<const Engine>> build(Device device, Precision precision, const std::string& cache = "",
                                            bool int8_fp16 = false, const std::string& float_layers = "") {
  BuildOptions o;
  o.float_layers_regex = float_layers;
  o.device = device;
  o.precision = precision;
  o.calibration_file = cache;
  o.int8_fp16 = int8_fp16;
  o.int8_all = int8_fp16;  // every eligible conv INT8 (what --int8 alone does): the INT8 kernels compared
  o.asymmetric_activations = false;  // CPU INT8 references on the GPU's symmetric grid
  return Engine::build(model_path().string(), o);
}

// Every detection of `from` scoring at least conf + margin (clear of the threshold, where the
// other side may have dropped it) has one in `in` of its class with IoU >= min_iou and a score
// within score_tol. Except NMS coin flips: a box overlapping a higher-scored box of its class by
// IoU >= nms_iou - 0.2 (the boxes compared are clipped to the image, NMS saw them unclipped) may be
// suppressed on one side only.
void expect_found(const std::vector<Detection>& from, const std::vector<Detection>& in, float conf,
                  float margin, float min_iou, float score_tol, const std::string& what) {
  const float nms_iou = DetectOptions{}.iou_no_objectness;
  for (const Detection& d : from) {
    if (d.score < conf + margin) continue;
    float best = 0, score_gap = 1;
    for (const Detection& e : in)
      if (e.class_id == d.class_id && iou(d, e) > best)
        best = iou(d, e), score_gap = std::fabs(e.score - d.score);
    const bool near_nms = std::any_of(from.begin(), from.end(), [&](const Detection& o) {
      return &o != &d && o.class_id == d.class_id && o.score > d.score && iou(o, d) >= nms_iou - 0.2f;
    });
    if (best < min_iou && near_nms) {
      std::printf(
          "[%s] class %d score %.3f overlaps a higher-scored box near the NMS threshold: not required\n",
          what.c_str(), d.class_id, d.score);
      continue;
    }
    EXPECT_GE(best, min_iou) << what << ": class " << d.class_id << " score " << d.score << " at (" << d.x1
                             << ", " << d.y1 << ", " << d.x2 << ", " << d.y2 << ")";
    EXPECT_LE(score_gap, score_tol) << what << ": class " << d.class_id << " score " << d.score;
  }
}

void expect_same_detections(const std::vector<Detection>& got, const std::vector<Detection>& ref, float conf,
                            const std::string& what, float min_iou = 0.9f, float score_tol = 0.05f) {
  std::printf("[%s] %zu detections (cpu %zu)\n", what.c_str(), got.size(), ref.size());
  EXPECT_FALSE(ref.empty()) << what << ": the CPU found nothing on bus.jpg";
  expect_found(ref, got, conf, 0.05f, min_iou, score_tol, what + " (cpu's in gpu's)");
  expect_found(got, ref, conf, 0.05f, min_iou, score_tol, what + " (gpu's in cpu's)");
}

Result<std::vector<Detection>> detect(const std::shared_ptr<const Engine>& engine, const Image& img) {
  QYOLO_ASSIGN_OR_RETURN(auto det, Detector::create(engine, DetectOptions{}));
  QYOLO_ASSIGN_OR_RETURN(auto out, det->detect({&img}));
  if (out.size() != 1) return internal_error("one image in, " + std::to_string(out.size()) + " results out");
  return out[0];
}

TEST(CudaYolov8, Fp32OutputMatchesCpu) {
  QYOLO_REQUIRE_YOLOV8();
  auto img = load_image(bus_path().string());
  ASSERT_TRUE(img.is_ok()) << img.status().to_string();
  const Tensor input = Detector::preprocess({&*img}, 640, 640, nullptr);
  auto cpu = build(Device::kCpu, Precision::kFp32);
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  auto gpu = build(Device::kCuda, Precision::kFp32);
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  Tensor ref, got;
  auto cctx = (*cpu)->create_context();
  ASSERT_TRUE(cctx.is_ok()) << cctx.status().to_string();
  ASSERT_TRUE((*cctx)->run(input, ref).is_ok());
  auto gctx = (*gpu)->create_context();
  ASSERT_TRUE(gctx.is_ok()) << gctx.status().to_string();
  const Status st = (*gctx)->run(input, got);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  ASSERT_EQ(got.shape(), ref.shape());
  ASSERT_EQ(ref.shape(), (Shape{1, 84, 8400}));
  const Diff d = compare(got, ref);
  // Rows 0..3 are box coordinates in pixels, 4.. class probabilities.
  std::vector<float> g = got.to_float_vector(), r = ref.to_float_vector();
  double box_err = 0, score_err = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    const double e = std::fabs(static_cast<double>(g[i]) - r[i]);
    if (i / 8400 < 4)
      box_err = std::max(box_err, e);
    else
      score_err = std::max(score_err, e);
  }
  std::printf("[yolov8n fp32] max abs err %.3g of %.3g = %.3g; boxes %.3g px, scores %.3g\n", d.max_abs_err,
              d.max_abs_ref, d.rel(), box_err, score_err);
  EXPECT_EQ(d.nan_count, 0);
  EXPECT_LE(d.rel(), 1e-3);
  EXPECT_LE(score_err, 1e-3);
}

TEST(CudaYolov8, Fp16DetectionsMatchCpu) {
  QYOLO_REQUIRE_YOLOV8();
  auto img = load_image(bus_path().string());
  ASSERT_TRUE(img.is_ok()) << img.status().to_string();
  auto cpu = build(Device::kCpu, Precision::kFp32);
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  auto gpu = build(Device::kCuda, Precision::kFp16);
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  auto ref = detect(*cpu, *img);
  ASSERT_TRUE(ref.is_ok()) << ref.status().to_string();
  auto got = detect(*gpu, *img);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  expect_same_detections(*got, *ref, DetectOptions{}.nms.conf, "yolov8n fp16 vs cpu fp32");
}

// INT8 on the CUDA engine against the CPU INT8 engine built from the same cache.
class CudaYolov8Int8 : public ::testing::TestWithParam<bool> {};

TEST_P(CudaYolov8Int8, DetectionsMatchCpuInt8) {
  QYOLO_REQUIRE_YOLOV8();
  const fs::path samples = shared_dir() / "data" / "samples";
  const bool fp16_between = GetParam();
  auto img = load_image(bus_path().string());
  ASSERT_TRUE(img.is_ok()) << img.status().to_string();
  auto fp32 = build(Device::kCpu, Precision::kFp32);
  ASSERT_TRUE(fp32.is_ok()) << fp32.status().to_string();
  const fs::path cache =
      fs::temp_directory_path() / ("qyolo_yolov8n_" + std::to_string(::getpid()) + ".cache");
  CalibrationSettings cs;
  cs.algorithm = "minmax";
  cs.num_images = 2;
  cs.batch = 1;
  auto cal = calibrate_images(**fp32, samples.string(), cs, cache.string());
  ASSERT_TRUE(cal.is_ok()) << cal.status().to_string();
  auto gpu = build(Device::kCuda, Precision::kInt8, cache.string(), fp16_between);
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  // The CPU reference runs the GPU engine's precision plan: a conv the plan keeps out of INT8 (with
  // half between layers, the stem on the float image stays on the FP16 direct kernel) is float on
  // the CPU too, so the comparison is of the kernels, not of two plans.
  const std::string float_layers = float_layers_of((*gpu)->precision_plan());
  std::printf("convs the GPU plan keeps out of INT8: %s\n",
              float_layers.empty() ? "none" : float_layers.c_str());
  auto cpu = build(Device::kCpu, Precision::kInt8, cache.string(), false, float_layers);
  fs::remove(cache);
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  auto ref = detect(*cpu, *img);
  ASSERT_TRUE(ref.is_ok()) << ref.status().to_string();
  auto got = detect(*gpu, *img);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  // fp32 between layers computes what the CPU INT8 engine computes up to float rounding; fp16
  // between layers rounds every value in between as well.
  expect_same_detections(*got, *ref, DetectOptions{}.nms.conf,
                         fp16_between ? "yolov8n int8+fp16 vs cpu int8" : "yolov8n int8 vs cpu int8",
                         fp16_between ? 0.85f : 0.9f, fp16_between ? 0.08f : 0.05f);
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaYolov8Int8, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "Fp16Between" : "Fp32Between";
                         });

}  // namespace
