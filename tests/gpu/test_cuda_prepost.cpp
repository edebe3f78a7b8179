// GPU letterbox bit-exact against the CPU letterbox; GPU decode + NMS giving exactly the CPU
// postprocess detections on synthetic heads (clustered boxes, tied scores, every option).
#include <gtest/gtest.h>

#include <cstring>

#include "backends/cuda/postprocess.h"
#include "backends/cuda/preprocess.h"
#include "gpu_test_support.h"
#include "image/letterbox.h"
#include "yolo/postprocess.h"

using namespace qyolo;
using namespace qyolo::gputest;

namespace {

Image random_image(int w, int h, std::mt19937& rng) {
  Image im(w, h);
  std::uniform_int_distribution<int> d(0, 255);
  // Smooth gradients plus noise: both the interpolation and the saturation paths get exercised.
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        im.pixel(x, y)[c] = static_cast<uint8_t>(((x * (c + 1) + y * 3) & 255) ^ (d(rng) & 7));
  return im;
}

TEST(CudaLetterbox, BitExactWithCpu) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed());
  SCOPED_TRACE("seed " + std::to_string(test_seed()));
  const std::pair<int, int> sizes[] = {{810, 1080}, {1080, 810}, {640, 480}, {1280, 1280}, {640, 640}, {1, 1},
                                       {17, 333},   {3000, 20},  {320, 320}, {333, 500},   {1279, 719}};
  const int dst_h = 640, dst_w = 640;
  auto dst = cuda::DeviceBuffer::allocate(3 * dst_h * dst_w * 4);
  ASSERT_TRUE(dst.is_ok());
  for (auto [w, h] : sizes) {
    SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h));
    Image im = random_image(w, h, rng);
    std::vector<float> cpu(3 * dst_h * dst_w);
    LetterboxInfo ci = letterbox_to_nchw(im, dst_h, dst_w, cpu.data());
    // Pitched source: rows padded to a multiple of 256 bytes.
    const size_t pitch = (static_cast<size_t>(w) * 3 + 255) / 256 * 256;
    auto src = cuda::DeviceBuffer::allocate(pitch * h);
    ASSERT_TRUE(src.is_ok());
    ASSERT_EQ(cudaMemcpy2D(src->get(), pitch, im.rgb.data(), w * 3, w * 3, h, cudaMemcpyHostToDevice), cudaSuccess);
    for (DataType dt : {DataType::kFloat32, DataType::kFloat16}) {
      ASSERT_EQ(cudaMemset(dst->get(), 0xFF, dst->size()), cudaSuccess);
      LetterboxInfo gi;
      Status st = cuda::letterbox_to_nchw_gpu(src->as<uint8_t>(), w, h, pitch, dst_h, dst_w, dt, dst->get(), nullptr, &gi);
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      EXPECT_EQ(gi.scale, ci.scale);
      EXPECT_EQ(gi.pad_x, ci.pad_x);
      EXPECT_EQ(gi.pad_y, ci.pad_y);
      size_t mismatches = 0, first = SIZE_MAX;
      if (dt == DataType::kFloat32) {
        std::vector<float> got(cpu.size());
        ASSERT_EQ(cudaMemcpy(got.data(), dst->get(), got.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
        for (size_t i = 0; i < got.size(); ++i)
          if (std::memcmp(&got[i], &cpu[i], 4) != 0 && mismatches++ == 0) first = i;
      } else {
        std::vector<uint16_t> got(cpu.size());
        ASSERT_EQ(cudaMemcpy(got.data(), dst->get(), got.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);
        for (size_t i = 0; i < got.size(); ++i)
          if (got[i] != float_to_half(cpu[i]) && mismatches++ == 0) first = i;
      }
      EXPECT_EQ(mismatches, 0u) << dtype_name(dt) << ": first at plane " << first / (dst_h * dst_w) << " y "
                                << first % (dst_h * dst_w) / dst_w << " x " << first % dst_w;
    }
  }
}

// A synthetic head: boxes in clusters (so NMS suppresses), scores on a coarse grid (ties).
Tensor synthetic_head(HeadKind kind, int n, int anchors, int nc, std::mt19937& rng) {
  const int ch = (kind == HeadKind::kYoloV5 ? 5 : 4) + nc;
  Shape shape = kind == HeadKind::kYoloV5 ? Shape{n, anchors, ch} : Shape{n, ch, anchors};
  Tensor t(DataType::kFloat32, shape);
  float* p = t.data<float>();
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::uniform_int_distribution<int> cluster(0, 15);
  auto at = [&](int b, int a, int c) -> float& {
    return kind == HeadKind::kYoloV5 ? p[(static_cast<size_t>(b) * anchors + a) * ch + c]
                                     : p[(static_cast<size_t>(b) * ch + c) * anchors + a];
  };
  for (int b = 0; b < n; ++b)
    for (int a = 0; a < anchors; ++a) {
      const int k = cluster(rng);
      at(b, a, 0) = 40.f * (k % 4) + 100.f + 12.f * u(rng);
      at(b, a, 1) = 40.f * (k / 4) + 100.f + 12.f * u(rng);
      at(b, a, 2) = 30.f + 20.f * u(rng);
      at(b, a, 3) = 30.f + 20.f * u(rng);
      int c0 = 4;
      if (kind == HeadKind::kYoloV5) {
        at(b, a, 4) = std::round(u(rng) * 16.f) / 16.f;
        c0 = 5;
      }
      for (int c = 0; c < nc; ++c) at(b, a, c0 + c) = std::round(u(rng) * u(rng) * 32.f) / 32.f;
    }
  return t;
}

void expect_same(const std::vector<std::vector<Detection>>& g, const std::vector<std::vector<Detection>>& c) {
  ASSERT_EQ(g.size(), c.size());
  for (size_t b = 0; b < c.size(); ++b) {
    ASSERT_EQ(g[b].size(), c[b].size()) << "image " << b;
    for (size_t i = 0; i < c[b].size(); ++i) {
      EXPECT_EQ(g[b][i].class_id, c[b][i].class_id) << b << "/" << i;
      EXPECT_EQ(g[b][i].score, c[b][i].score) << b << "/" << i;
      EXPECT_EQ(g[b][i].x1, c[b][i].x1) << b << "/" << i;
      EXPECT_EQ(g[b][i].y1, c[b][i].y1) << b << "/" << i;
      EXPECT_EQ(g[b][i].x2, c[b][i].x2) << b << "/" << i;
      EXPECT_EQ(g[b][i].y2, c[b][i].y2) << b << "/" << i;
    }
  }
}

struct NmsCase {
  const char* name;
  HeadKind kind;
  NmsOptions opt;
};

NmsOptions opts(float conf, float iou, int max_det = 300, bool multi = false, bool agnostic = false,
                std::vector<int> classes = {}, int max_nms = 30000) {
  NmsOptions o;
  o.conf = conf;
  o.iou = iou;
  o.max_det = max_det;
  o.multi_label = multi;
  o.agnostic = agnostic;
  o.classes = std::move(classes);
  o.max_nms = max_nms;
  return o;
}

// The GPU postprocessor's detections on `head` equal the CPU's (returned in `cpu`), twice: the
// second run reuses the buffers.
void expect_gpu_nms_matches_cpu(const Tensor& head, HeadKind kind, const NmsOptions& opt,
                                std::vector<std::vector<Detection>>& cpu) {
  auto want = postprocess(head, kind, opt);
  ASSERT_TRUE(want.is_ok()) << want.status().to_string();
  cpu = *want;
  auto pp = cuda::GpuPostprocessor::create(head.shape(), kind, opt);
  ASSERT_TRUE(pp.is_ok()) << pp.status().to_string();
  auto buf = cuda::DeviceBuffer::allocate(head.nbytes());
  ASSERT_TRUE(buf.is_ok());
  ASSERT_TRUE(buf->upload(head.raw(), head.nbytes()).is_ok());
  for (int rep = 0; rep < 2; ++rep) {
    Status st = (*pp)->enqueue(buf->as<float>(), nullptr);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    auto gpu = (*pp)->download(nullptr);
    ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
    expect_same(*gpu, cpu);
  }
}

TEST(CudaNms, SameDetectionsAsCpu) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 11);
  SCOPED_TRACE("seed " + std::to_string(test_seed()));
  const NmsCase cases[] = {
      {"default", HeadKind::kYoloV5, opts(0.25f, 0.45f)},
      {"eval", HeadKind::kYoloV5, opts(0.001f, 0.65f)},
      {"multi_label", HeadKind::kYoloV5, opts(0.05f, 0.6f, 300, true)},
      {"agnostic", HeadKind::kYoloV5, opts(0.1f, 0.45f, 300, false, true)},
      {"classes", HeadKind::kYoloV5, opts(0.05f, 0.5f, 300, false, false, {0, 2, 5})},
      {"max_det_5", HeadKind::kYoloV5, opts(0.01f, 0.45f, 5)},
      {"max_nms_50", HeadKind::kYoloV5, opts(0.01f, 0.45f, 300, false, false, {}, 50)},
      {"iou_0", HeadKind::kYoloV5, opts(0.2f, 0.0f)},
      {"v8", HeadKind::kYoloV8, opts(0.25f, 0.45f)},
      {"v8_multi", HeadKind::kYoloV8, opts(0.1f, 0.7f, 300, true)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Tensor head = synthetic_head(c.kind, 3, 3000, 8, rng);
    std::vector<std::vector<Detection>> cpu;
    ASSERT_NO_FATAL_FAILURE(expect_gpu_nms_matches_cpu(head, c.kind, c.opt, cpu));
    std::printf("NMS %-12s: %zu/%zu/%zu detections (CPU and GPU agree)\n", c.name, cpu[0].size(), cpu[1].size(),
                cpu[2].size());
  }
  // Up to 300 images the candidates are sorted by cub's DeviceSegmentedSort, above that by the
  // segmented radix sort (graph-capturable there): both give the CPU's detections.
  for (int batch : {300, 301}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    std::vector<std::vector<Detection>> cpu;
    ASSERT_NO_FATAL_FAILURE(
        expect_gpu_nms_matches_cpu(synthetic_head(HeadKind::kYoloV5, batch, 60, 8, rng), HeadKind::kYoloV5,
                                   opts(0.05f, 0.45f), cpu));
  }
}

}  // namespace
