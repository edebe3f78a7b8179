// The GPU detection pipeline of cuda engines (GPU letterbox -> network -> GPU decode + NMS, Detector
// on a cuda engine) against the CPU pre/post-processing: the same detections from the same network
// output, the Detector's two paths agreeing, batched equal to one at a time, nothing when no box
// passes the threshold, bad images rejected. Models and images come from QYOLO_SHARED
// (models/yolov5n.onnx, models/yolov5n-dynamic.onnx or models/yolov5n-b4.onnx, data/samples/).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <optional>

#include "gpu_test_support.h"
#include "image/letterbox.h"
#include "runtime/detector.h"
#include "runtime/gpu_pipeline.h"
#include "yolo/postprocess.h"

namespace fs = std::filesystem;
using namespace qyolo;
using namespace qyolo::gputest;

namespace {

constexpr double kBoxTol = 1e-2;  // pixels
constexpr double kScoreTol = 1e-4;

#define QYOLO_REQUIRE_FILE(path)                                                                             \
  do {                                                                                                       \
    if (!fs::exists(path))                                                                                   \
      GTEST_SKIP() << "shared file absent: " << (path) << " (set QYOLO_SHARED; device-check.sh bundles it)"; \
  } while (0)

fs::path model_path(const std::string& file) {
  return shared_dir() / "models" / file;
}
fs::path sample_path(const std::string& file) {
  return shared_dir() / "data" / "samples" / file;
}

Result<std::shared_ptr<const Engine>> cuda_engine(const fs::path& model, Precision precision,
                                                  std::optional<ShapeProfile> profile = std::nullopt) {
  BuildOptions o;
  o.device = Device::kCuda;
  o.precision = precision;
  o.profile = std::move(profile);
  return Engine::build(model.string(), o);
}

// A w x h window of `src` starting at (x0, y0): another image size in the mix.
Image crop(const Image& src, int x0, int y0, int w, int h) {
  Image out(w, h);
  for (int y = 0; y < h; ++y) std::memcpy(out.pixel(0, y), src.pixel(x0, y0 + y), static_cast<size_t>(w) * 3);
  return out;
}

// Same count and classes, boxes within box_tol, scores within score_tol; prints the largest gaps.
void expect_close(const std::vector<Detection>& got, const std::vector<Detection>& ref,
                  const std::string& what, double box_tol = kBoxTol, double score_tol = kScoreTol) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  double box_err = 0, score_err = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const Detection& g = got[i];
    const Detection& r = ref[i];
    EXPECT_EQ(g.class_id, r.class_id) << what << " #" << i;
    EXPECT_NEAR(g.x1, r.x1, box_tol) << what << " #" << i;
    EXPECT_NEAR(g.y1, r.y1, box_tol) << what << " #" << i;
    EXPECT_NEAR(g.x2, r.x2, box_tol) << what << " #" << i;
    EXPECT_NEAR(g.y2, r.y2, box_tol) << what << " #" << i;
    EXPECT_NEAR(g.score, r.score, score_tol) << what << " #" << i;
    for (double e : {g.x1 - r.x1, g.y1 - r.y1, g.x2 - r.x2, g.y2 - r.y2})
      box_err = std::max(box_err, std::fabs(e));
    score_err = std::max(score_err, std::fabs(static_cast<double>(g.score) - r.score));
  }
  std::printf("[%s] %zu detections, max box diff %.3g px, max score diff %.3g\n", what.c_str(), ref.size(),
              box_err, score_err);
}

NmsOptions nms_options(float conf, float iou, bool multi_label) {
  NmsOptions o;
  o.conf = conf;
  o.iou = iou;
  o.multi_label = multi_label;
  return o;
}

class CudaDetectorSameOutput : public ::testing::TestWithParam<Precision> {};

// One network output, two post-processings: the pipeline's GPU letterbox equals the CPU letterbox
// bit for bit, and its GPU decode + NMS equals the CPU postprocess of the output it produced.
TEST_P(CudaDetectorSameOutput, GpuPrePostEqualsCpu) {
  QYOLO_REQUIRE_GPU();
  const Precision precision = GetParam();
  const fs::path model = model_path("yolov5n.onnx");
  QYOLO_REQUIRE_FILE(model);
  QYOLO_REQUIRE_FILE(sample_path("bus.jpg"));
  QYOLO_REQUIRE_FILE(sample_path("zidane.jpg"));
  auto engine = cuda_engine(model, precision);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  const int nc = static_cast<int>((*engine)->info().class_names.size());
  for (const NmsOptions& nms : {nms_options(0.25f, 0.45f, false), nms_options(0.001f, 0.65f, true)}) {
    auto ctx = (*engine)->create_context();
    ASSERT_TRUE(ctx.is_ok()) << ctx.status().to_string();
    auto pipe = GpuPipeline::create(**ctx, nms, nc > 0 ? nc : -1);
    ASSERT_TRUE(pipe.is_ok()) << pipe.status().to_string();
    for (const std::string file : {"bus.jpg", "zidane.jpg"}) {
      const std::string what =
          std::string(precision_name(precision)) + " conf " + std::to_string(nms.conf) + " " + file;
      SCOPED_TRACE(what);
      auto img = load_image(sample_path(file).string());
      ASSERT_TRUE(img.is_ok()) << img.status().to_string();
      std::vector<LetterboxInfo> infos;
      auto gpu = (*pipe)->run({&*img}, 640, 640, &infos);
      ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
      ASSERT_EQ(gpu->size(), 1u);
      ASSERT_EQ(infos.size(), 1u);

      // Pre-processing: the GPU letterbox wrote exactly what the CPU letterbox writes.
      std::vector<LetterboxInfo> cpu_infos;
      Tensor cpu_in = Detector::preprocess({&*img}, 640, 640, &cpu_infos);
      EXPECT_EQ(infos[0].scale, cpu_infos[0].scale);
      EXPECT_EQ(infos[0].pad_x, cpu_infos[0].pad_x);
      EXPECT_EQ(infos[0].pad_y, cpu_infos[0].pad_y);
      EXPECT_EQ(infos[0].src_w, cpu_infos[0].src_w);
      EXPECT_EQ(infos[0].src_h, cpu_infos[0].src_h);
      auto gpu_in = (*pipe)->last_input();
      ASSERT_TRUE(gpu_in.is_ok()) << gpu_in.status().to_string();
      ASSERT_EQ(gpu_in->shape(), cpu_in.shape());
      size_t mismatches = 0;
      if (gpu_in->dtype() == DataType::kFloat32) {
        for (int64_t i = 0; i < cpu_in.numel(); ++i)
          if (std::memcmp(gpu_in->data<float>() + i, cpu_in.data<float>() + i, 4) != 0) ++mismatches;
      } else {
        ASSERT_EQ(gpu_in->dtype(), DataType::kFloat16);
        for (int64_t i = 0; i < cpu_in.numel(); ++i)
          if (gpu_in->data<uint16_t>()[i] != float_to_half(cpu_in.data<float>()[i])) ++mismatches;
      }
      EXPECT_EQ(mismatches, 0u) << "GPU letterbox differs from the CPU letterbox";

      // The same executor on the CPU-letterboxed input gives the same output.
      auto out = (*pipe)->last_output();
      ASSERT_TRUE(out.is_ok()) << out.status().to_string();
      Tensor host_out;
      Status st = (*ctx)->run(cpu_in, host_out);
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      Diff d = compare(*out, host_out);
      EXPECT_EQ(d.nan_count, 0);
      EXPECT_LE(d.rel(), 1e-5) << "pipeline output vs ExecutionContext::run on the same input";

      // Post-processing: the CPU decode + NMS of the pipeline's own output, then the shared unletterbox.
      auto ref = postprocess(*out, HeadKind::kYoloV5, nms);
      ASSERT_TRUE(ref.is_ok()) << ref.status().to_string();
      ASSERT_EQ(ref->size(), 1u);
      expect_close((*gpu)[0], (*ref)[0], what + " (input px)");
      std::vector<Detection> g = (*gpu)[0], r = (*ref)[0];
      const LetterboxInfo& li = cpu_infos[0];
      unletterbox(g, li.scale, li.pad_x, li.pad_y, li.src_w, li.src_h);
      unletterbox(r, li.scale, li.pad_x, li.pad_y, li.src_w, li.src_h);
      expect_close(g, r, what + " (image px)");
      EXPECT_GT(r.size(), 0u);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaDetectorSameOutput, ::testing::Values(Precision::kFp32, Precision::kFp16),
                         [](const ::testing::TestParamInfo<Precision>& i) {
                           return precision_name(i.param);
                         });

// The public API: Detector on a cuda fp32 engine with GPU pre/post against the same engine with
// CPU pre/post (separately built executors, hence tolerances rather than equality).
TEST(CudaDetector, GpuPrePostMatchesCpuPrePost) {
  QYOLO_REQUIRE_GPU();
  const fs::path model = model_path("yolov5n.onnx");
  QYOLO_REQUIRE_FILE(model);
  QYOLO_REQUIRE_FILE(sample_path("bus.jpg"));
  QYOLO_REQUIRE_FILE(sample_path("zidane.jpg"));
  auto engine = cuda_engine(model, Precision::kFp32);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  DetectOptions opt;  // 640, conf 0.25, IoU 0.45
  auto gpu = Detector::create(*engine, opt);
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  opt.gpu_prepost = false;
  auto cpu = Detector::create(*engine, opt);
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  EXPECT_EQ((*gpu)->prepost_device(), Device::kCuda);
  EXPECT_EQ((*cpu)->prepost_device(), Device::kCpu);
  for (const std::string file : {"bus.jpg", "zidane.jpg"}) {
    auto img = load_image(sample_path(file).string());
    ASSERT_TRUE(img.is_ok()) << img.status().to_string();
    auto g = (*gpu)->detect({&*img});
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    auto c = (*cpu)->detect({&*img});
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    ASSERT_EQ(g->size(), 1u);
    ASSERT_EQ(c->size(), 1u);
    EXPECT_GT((*c)[0].size(), 0u) << file;
    expect_close((*g)[0], (*c)[0], "detector fp32 " + file);
    for (const Detection& d : (*g)[0]) {  // original-image pixels
      EXPECT_GE(d.x1, 0.f);
      EXPECT_LE(d.x2, static_cast<float>(img->width));
      EXPECT_GE(d.y1, 0.f);
      EXPECT_LE(d.y2, static_cast<float>(img->height));
    }
    std::printf(
        "[detector fp32 %s] gpu pre %.2f ms, network %.2f ms, post %.2f ms | "
        "cpu pre %.2f ms, network %.2f ms, post %.2f ms\n",
        file.c_str(), (*gpu)->last_pre_s * 1e3, (*gpu)->last_infer_s * 1e3, (*gpu)->last_post_s * 1e3,
        (*cpu)->last_pre_s * 1e3, (*cpu)->last_infer_s * 1e3, (*cpu)->last_post_s * 1e3);
  }
}

// A batch of 4 mixed images (two sizes of photo plus two crops) equals running them one at a time,
// and a second batched run (reused buffers) repeats the first exactly.
TEST(CudaDetector, BatchedEqualsOneAtATime) {
  QYOLO_REQUIRE_GPU();
  QYOLO_REQUIRE_FILE(sample_path("bus.jpg"));
  QYOLO_REQUIRE_FILE(sample_path("zidane.jpg"));
  // One dynamic engine for both batch sizes, else the re-batched static export (written by
  // scripts/device-check.sh run) for the batch and the batch-1 export for single images.
  std::shared_ptr<const Engine> batched_engine, single_engine;
  const fs::path dynamic = model_path("yolov5n-dynamic.onnx"), b4 = model_path("yolov5n-b4.onnx"),
                 b1 = model_path("yolov5n.onnx");
  if (fs::exists(dynamic)) {
    auto e = cuda_engine(dynamic, Precision::kFp32,
                         ShapeProfile{{1, 3, 640, 640}, {4, 3, 640, 640}, {4, 3, 640, 640}});
    ASSERT_TRUE(e.is_ok()) << e.status().to_string();
    batched_engine = single_engine = *e;
  } else if (fs::exists(b4) && fs::exists(b1)) {
    auto e4 = cuda_engine(b4, Precision::kFp32);
    ASSERT_TRUE(e4.is_ok()) << e4.status().to_string();
    auto e1 = cuda_engine(b1, Precision::kFp32);
    ASSERT_TRUE(e1.is_ok()) << e1.status().to_string();
    batched_engine = *e4;
    single_engine = *e1;
  } else {
    GTEST_SKIP() << "needs " << dynamic << ", or " << b4 << " and " << b1 << " (set QYOLO_SHARED)";
  }
  std::printf("[batched] %s vs %s\n", batched_engine->info().source.c_str(),
              single_engine->info().source.c_str());
  auto bus = load_image(sample_path("bus.jpg").string());
  ASSERT_TRUE(bus.is_ok()) << bus.status().to_string();
  auto zidane = load_image(sample_path("zidane.jpg").string());
  ASSERT_TRUE(zidane.is_ok()) << zidane.status().to_string();
  const Image images[4] = {*bus, *zidane, crop(*bus, 17, 301, 501, 333), crop(*zidane, 400, 0, 640, 719)};
  const std::vector<const Image*> batch = {&images[0], &images[1], &images[2], &images[3]};

  auto batched = Detector::create(batched_engine, {});
  ASSERT_TRUE(batched.is_ok()) << batched.status().to_string();
  auto single = Detector::create(single_engine, {});
  ASSERT_TRUE(single.is_ok()) << single.status().to_string();
  ASSERT_EQ((*batched)->prepost_device(), Device::kCuda);

  auto all = (*batched)->detect(batch);
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  ASSERT_EQ(all->size(), 4u);
  auto again = (*batched)->detect(batch);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  for (size_t i = 0; i < 4; ++i)
    expect_close((*again)[i], (*all)[i], "batch rerun #" + std::to_string(i), 0.0, 0.0);
  for (size_t i = 0; i < 4; ++i) {
    auto one = (*single)->detect({batch[i]});
    ASSERT_TRUE(one.is_ok()) << one.status().to_string();
    ASSERT_EQ(one->size(), 1u);
    expect_close((*all)[i], (*one)[0], "batch of 4 vs single #" + std::to_string(i));
  }
  EXPECT_GT((*all)[0].size(), 0u);
  EXPECT_GT((*all)[1].size(), 0u);

  // The same batch through the CPU pre/post-processing of the batched engine.
  DetectOptions cpu_opt;
  cpu_opt.gpu_prepost = false;
  auto cpu = Detector::create(batched_engine, cpu_opt);
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  auto c = (*cpu)->detect(batch);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  for (size_t i = 0; i < 4; ++i)
    expect_close((*all)[i], (*c)[i], "batch gpu vs cpu pre/post #" + std::to_string(i));
}

// No box passes: conf 1 (obj > 1 never holds) or a class filter that matches no class.
TEST(CudaDetector, NothingSurvivesGivesEmptyResults) {
  QYOLO_REQUIRE_GPU();
  const fs::path model = model_path("yolov5n.onnx");
  QYOLO_REQUIRE_FILE(model);
  QYOLO_REQUIRE_FILE(sample_path("bus.jpg"));
  auto engine = cuda_engine(model, Precision::kFp32);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  auto img = load_image(sample_path("bus.jpg").string());
  ASSERT_TRUE(img.is_ok()) << img.status().to_string();
  DetectOptions high_conf;
  high_conf.nms.conf = 1.0f;
  DetectOptions no_class;
  no_class.nms.classes = {1000};
  for (const DetectOptions& opt : {high_conf, no_class}) {
    auto det = Detector::create(*engine, opt);
    ASSERT_TRUE(det.is_ok()) << det.status().to_string();
    ASSERT_EQ((*det)->prepost_device(), Device::kCuda);
    for (int rep = 0; rep < 2; ++rep) {
      auto dets = (*det)->detect({&*img});
      ASSERT_TRUE(dets.is_ok()) << dets.status().to_string();
      ASSERT_EQ(dets->size(), 1u);
      EXPECT_TRUE((*dets)[0].empty()) << (*dets)[0].size() << " detections with conf " << opt.nms.conf;
    }
  }
}

// An image whose pixel buffer is shorter than width x height x 3 is an error (nothing enqueued);
// the next run works. An empty image letterboxes to pad only, as on the CPU.
TEST(CudaDetector, BadAndEmptyImages) {
  QYOLO_REQUIRE_GPU();
  const fs::path model = model_path("yolov5n.onnx");
  QYOLO_REQUIRE_FILE(model);
  QYOLO_REQUIRE_FILE(sample_path("zidane.jpg"));
  auto engine = cuda_engine(model, Precision::kFp32);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  auto det = Detector::create(*engine, {});
  ASSERT_TRUE(det.is_ok()) << det.status().to_string();
  Image bad(64, 48);
  bad.rgb.resize(100);
  auto r = (*det)->detect({&bad});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
  std::printf("bad image: %s\n", r.status().to_string().c_str());

  auto img = load_image(sample_path("zidane.jpg").string());
  ASSERT_TRUE(img.is_ok()) << img.status().to_string();
  auto ok = (*det)->detect({&*img});
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_GT((*ok)[0].size(), 0u);

  DetectOptions cpu_opt;
  cpu_opt.gpu_prepost = false;
  auto cpu = Detector::create(*engine, cpu_opt);
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  const Image empty;
  auto g = (*det)->detect({&empty});
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  auto c = (*cpu)->detect({&empty});
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  expect_close((*g)[0], (*c)[0], "empty image");
}

}  // namespace
