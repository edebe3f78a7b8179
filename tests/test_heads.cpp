// Detection heads (issue 16): head descriptions (JSON, built-ins), binding to output shapes, the
// decode of every box encoding against hand-written reference decoders (written here from the
// reference implementations: ultralytics YOLOv5 Detect and YOLOv8 DFL/dist2bbox, YOLOX
// demo_postprocess, torchvision RetinaNet BoxCoder), and detect/eval/calibrate end to end on
// synthetic models (tests/head_models.h) with dynamic H/W and several outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "cli_runner.h"
#include "head_models.h"
#include "qyolo/qyolo.h"
#include "runtime/detector.h"
#include "test_support.h"
#include "yolo/head.h"
#include "yolo/metadata.h"
#include "yolo/postprocess.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::run_cli;

namespace {

float sigmoid(float v) {
  return 1.0f / (1.0f + std::exp(-v));
}

Tensor random_tensor(const Shape& shape, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  Tensor t(DataType::kFloat32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

std::vector<OutputDesc> descs(const std::vector<std::pair<std::string, Shape>>& v) {
  std::vector<OutputDesc> out;
  for (const auto& [n, s] : v) out.push_back({n, s});
  return out;
}

std::vector<const float*> ptrs(const std::vector<Tensor>& ts) {
  std::vector<const float*> p;
  for (const auto& t : ts) p.push_back(t.data<float>());
  return p;
}

Tensor decode(const BoundHead& h, const std::vector<Tensor>& outputs) {
  Tensor out(DataType::kFloat32, h.decoded_shape());
  Status st = decode_head(h, ptrs(outputs), out.data<float>());
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return out;
}

// Decoded value (n, point, channel) in either decoded layout.
float at(const Tensor& d, bool rows, int64_t n, int64_t p, int64_t c) {
  const Shape& s = d.shape();
  return rows ? d.data<float>()[(n * s[1] + p) * s[2] + c] : d.data<float>()[(n * s[1] + c) * s[2] + p];
}

void expect_close(float got, float want, const std::string& what) {
  EXPECT_NEAR(got, want, 1e-4f * std::max(1.0f, std::fabs(want))) << what;
}

// ---- reference decoders (one point at a time, as the reference implementations compute it) ----

// ultralytics models/yolo.py Detect.forward (v7.0), inference: x[i] is [bs, na*no, ny, nx];
// y = x[i].view(bs, na, no, ny, nx).permute(0, 1, 3, 4, 2).sigmoid(); xy = (y*2 + grid)*stride with
// grid = (x, y) - 0.5; wh = (y*2)**2 * anchor_grid; z = y.view(bs, na*ny*nx, no).
std::vector<float> ref_yolov5_row(const Tensor& level, int64_t n, int64_t a, int64_t y, int64_t x,
                                  float stride, float aw, float ah, int nc) {
  const int64_t no = 5 + nc, ny = level.dim(2), nx = level.dim(3);
  auto raw = [&](int64_t c) {
    return level.data<float>()[((n * level.dim(1) + a * no + c) * ny + y) * nx + x];
  };
  std::vector<float> r(static_cast<size_t>(no));
  for (int64_t c = 0; c < no; ++c) r[static_cast<size_t>(c)] = sigmoid(raw(c));
  r[0] = (r[0] * 2 + (static_cast<float>(x) - 0.5f)) * stride;
  r[1] = (r[1] * 2 + (static_cast<float>(y) - 0.5f)) * stride;
  r[2] = std::pow(r[2] * 2, 2.0f) * aw;
  r[3] = std::pow(r[3] * 2, 2.0f) * ah;
  return r;
}

// ultralytics nn/modules/head.py Detect._inference + DFL + utils/tal.py make_anchors/dist2bbox:
// box [4*16 bins] -> softmax per side -> expectation (l, t, r, b); anchor (x + 0.5, y + 0.5);
// xywh = ((x1y1 + x2y2) / 2, x2y2 - x1y1) * stride; cls.sigmoid().
std::vector<float> ref_dfl_column(const Tensor& box, int64_t box_c0, const Tensor& cls, int64_t cls_c0,
                                  int64_t n, int64_t y, int64_t x, float stride, int nc) {
  const int64_t H = box.dim(2), W = box.dim(3);
  auto v = [&](const Tensor& t, int64_t c) { return t.data<float>()[((n * t.dim(1) + c) * H + y) * W + x]; };
  float dist[4];
  for (int k = 0; k < 4; ++k) {
    double mx = -1e30;
    for (int i = 0; i < 16; ++i) mx = std::max<double>(mx, v(box, box_c0 + k * 16 + i));
    double sum = 0, acc = 0;
    for (int i = 0; i < 16; ++i) sum += std::exp(v(box, box_c0 + k * 16 + i) - mx);
    for (int i = 0; i < 16; ++i) acc += i * std::exp(v(box, box_c0 + k * 16 + i) - mx) / sum;
    dist[k] = static_cast<float>(acc);
  }
  const float ax = static_cast<float>(x) + 0.5f, ay = static_cast<float>(y) + 0.5f;
  const float x1 = ax - dist[0], y1 = ay - dist[1], x2 = ax + dist[2], y2 = ay + dist[3];
  std::vector<float> r = {(x1 + x2) / 2 * stride, (y1 + y2) / 2 * stride, (x2 - x1) * stride,
                          (y2 - y1) * stride};
  for (int c = 0; c < nc; ++c) r.push_back(sigmoid(v(cls, cls_c0 + c)));
  return r;
}

// YOLOX yolox/utils/demo_utils.py demo_postprocess on the exported [N, P, 5+nc]: per level in
// stride order, grid (x, y) row-major; xy = (xy + grid) * stride, wh = exp(wh) * stride.
Tensor ref_yolox(const Tensor& out, int h, int w, bool logits) {
  Tensor r = out.clone();
  const int64_t C = out.dim(2);
  for (int64_t n = 0; n < out.dim(0); ++n) {
    int64_t p = 0;
    for (int s : {8, 16, 32})
      for (int64_t y = 0; y < h / s; ++y)
        for (int64_t x = 0; x < w / s; ++x, ++p) {
          float* row = r.data<float>() + (n * out.dim(1) + p) * C;
          row[0] = (row[0] + static_cast<float>(x)) * s;
          row[1] = (row[1] + static_cast<float>(y)) * s;
          row[2] = std::exp(row[2]) * s;
          row[3] = std::exp(row[3]) * s;
          if (logits)
            for (int64_t c = 4; c < C; ++c) row[c] = sigmoid(row[c]);
        }
  }
  return r;
}

// torchvision models/detection: anchors at (x*stride, y*stride) (AnchorGenerator shifts), the
// head's view(N, A, K, H, W).permute(0, 3, 4, 1, 2) and BoxCoder.decode_single with weights
// (1, 1, 1, 1), dw/dh clamped at log(1000/16); scores cls.sigmoid(). Returns cx, cy, w, h, scores.
using qyolo::testing::ref_retina;

const std::vector<std::vector<float>> kV5Anchors = {
    {10, 13, 16, 30, 33, 23}, {30, 61, 62, 45, 59, 119}, {116, 90, 156, 198, 373, 326}};

// ---- descriptions ----------------------------------------------------------------------------

TEST(HeadSpecTest, ParsesAJsonDescription) {
  auto s = parse_head_json(R"({
      "box": "deltas", "scores": "logits", "num_classes": 3, "grid_offset": 0,
      "delta_weights": [1, 1, 2, 2],
      "anchors": [[[32, 32], [45, 45]], [64, 64, 90, 90]],
      // comments are allowed
      "outputs": [{"name": "cls8", "parts": ["cls"]}, {"name": "box8", "parts": ["box"], "layout": "nchw"},
                  {"index": 2, "stride": 16, "point_order": "cell_major"}]})",
                           "retina.json");
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s->box, BoxEncoding::kDeltas);
  EXPECT_FALSE(s->objectness);
  EXPECT_EQ(s->scores, Activation::kLogits);
  EXPECT_EQ(s->num_classes, 3);
  EXPECT_EQ(*s->grid_offset, 0.f);
  EXPECT_EQ(s->delta_weights[3], 2.f);
  ASSERT_EQ(s->anchors.size(), 2u);
  EXPECT_EQ(s->anchors[0], (std::vector<float>{32, 32, 45, 45}));
  EXPECT_EQ(s->anchors[1], (std::vector<float>{64, 64, 90, 90}));
  ASSERT_EQ(s->outputs.size(), 3u);
  EXPECT_EQ(s->outputs[0].name, "cls8");
  EXPECT_EQ(s->outputs[0].parts, std::vector<HeadPart>{HeadPart::kCls});
  EXPECT_EQ(s->outputs[1].layout, OutputLayout::kNchw);
  EXPECT_EQ(s->outputs[2].index, 2);
  EXPECT_EQ(s->outputs[2].strides, std::vector<int>{16});
  EXPECT_TRUE(s->outputs[2].cell_major);
}

TEST(HeadSpecTest, BadDescriptionsAreClearErrors) {
  struct Case {
    const char* json;
    const char* says;
  } cases[] = {
      {"{", "not valid JSON"},
      {R"({"objectness": true})", "\"box\""},
      {R"({"box": "ssd"})", "\"ssd\""},
      {R"({"box": "dfl", "bx": 1})", "unknown key 'bx'"},
      {R"({"box": "yolov5"})", "needs \"anchors\""},
      {R"({"box": "dfl", "anchors": [[10, 13]]})", "anchor-free"},
      {R"({"box": "yolox", "reg_max": 8})", "dfl only"},
      {R"({"box": "dfl", "strides": [16, 8]})", "ascending"},
      {R"({"box": "dfl", "scores": "maybe"})", "\"maybe\""},
      {R"({"box": "yolov5", "anchors": [[10, 13, 16]]})", "odd count"},
      {R"({"box": "dfl", "outputs": [{"parts": ["box", "box"]}]})", "twice"},
      {R"({"box": "dfl", "outputs": [{"name": "a", "index": 1}]})", "both a name and an index"},
      {R"({"box": "yolov5", "strides": [8, 16], "anchors": [[10, 13]]})", "levels"},
  };
  for (const auto& c : cases) {
    auto s = parse_head_json(c.json, "h.json");
    ASSERT_FALSE(s.is_ok()) << c.json;
    EXPECT_NE(s.status().message().find("h.json"), std::string::npos) << s.status().message();
    EXPECT_NE(s.status().message().find(c.says), std::string::npos)
        << c.json << " -> " << s.status().message();
  }
}

TEST(HeadSpecTest, BuiltinsAndFiles) {
  for (const char* name : {"yolov5", "yolov8", "yolo11", "yolox"}) {
    auto h = load_head(name);
    ASSERT_TRUE(h.is_ok()) << name << ": " << h.status().to_string();
    EXPECT_FALSE(h->empty());
  }
  auto missing = load_head("no_such_head.json");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("yolov5, yolov8, yolo11, yolox"), std::string::npos);
  const fs::path f = fs::temp_directory_path() / ("qyolo_head_" + std::to_string(::getpid()) + ".json");
  std::ofstream(f) << R"({"box": "yolox"})";
  auto file = load_head(f.string());
  fs::remove(f);
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  EXPECT_EQ(file->at(0).box, BoxEncoding::kYoloX);
  EXPECT_TRUE(file->at(0).objectness);
}

// ---- binding to output shapes ------------------------------------------------------------------

TEST(HeadBindTest, DecodedUltralyticsHeadsPassThrough) {
  HeadBindContext ctx{640, 640, 80, 32};
  auto v8 = bind_head(*builtin_head("yolov8"), descs({{"output0", {1, 84, 8400}}}), ctx);
  ASSERT_TRUE(v8.is_ok()) << v8.status().to_string();
  EXPECT_EQ(v8->passthrough_output, 0);
  EXPECT_EQ(v8->kind(), HeadKind::kYoloV8);
  EXPECT_EQ(v8->nc, 80);
  // Older YOLOv5 exports: the decoded output first, then the raw levels; the decoded one is used.
  auto v5 = bind_head(*builtin_head("yolov5"),
                      descs({{"output", {1, 25200, 85}},
                             {"345", {1, 3, 80, 80, 85}},
                             {"403", {1, 3, 40, 40, 85}},
                             {"461", {1, 3, 20, 20, 85}}}),
                      ctx);
  ASSERT_TRUE(v5.is_ok()) << v5.status().to_string();
  EXPECT_EQ(v5->passthrough_output, 0);
  EXPECT_EQ(v5->kind(), HeadKind::kYoloV5);
  // No description: the same, by shape (and by the point count when there are no names).
  auto d8 = bind_default_head(descs({{"output0", {2, 7, 8400}}}), {640, 640, -1, 32});
  ASSERT_TRUE(d8.is_ok()) << d8.status().to_string();
  EXPECT_EQ(d8->kind(), HeadKind::kYoloV8);
  EXPECT_EQ(d8->nc, 3);
  EXPECT_EQ(d8->batch, 2);
}

TEST(HeadBindTest, RawLevelsFollowTheInputSize) {
  // YOLOv8 DFL levels at 256x384 (dynamic H/W): strides from H/W, 32*48 + 16*24 + 8*12 points.
  HeadBindContext ctx{256, 384, -1, 32};
  auto h =
      bind_head(*builtin_head("yolov8"),
                descs({{"p8", {1, 67, 32, 48}}, {"p16", {1, 67, 16, 24}}, {"p32", {1, 67, 8, 12}}}), ctx);
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  EXPECT_EQ(h->alternative, 1);
  EXPECT_EQ(h->passthrough_output, -1);
  EXPECT_EQ(h->nc, 3);
  ASSERT_EQ(h->levels.size(), 3u);
  EXPECT_EQ(h->levels[2].stride, 32.f);
  EXPECT_EQ(h->points, 32 * 48 + 16 * 24 + 8 * 12);
  EXPECT_EQ(h->decoded_shape(), (Shape{1, 7, 32 * 48 + 16 * 24 + 8 * 12}));
  // Separate box and class outputs per level (6 outputs), in any order.
  auto split = bind_head(*builtin_head("yolov8"),
                         descs({{"cls32", {1, 3, 8, 12}},
                                {"box8", {1, 64, 32, 48}},
                                {"cls8", {1, 3, 32, 48}},
                                {"box16", {1, 64, 16, 24}},
                                {"cls16", {1, 3, 16, 24}},
                                {"box32", {1, 64, 8, 12}}}),
                         ctx);
  ASSERT_TRUE(split.is_ok()) << split.status().to_string();
  EXPECT_EQ(split->levels[0].box.output, 1);
  EXPECT_EQ(split->levels[0].cls.output, 2);
  EXPECT_EQ(split->levels[2].cls.output, 0);
  // YOLOX flat rows: 80*80 + 40*40 + 20*20 = 8400 points, strides P3-P5.
  auto x = bind_head(*builtin_head("yolox"), descs({{"output", {1, 8400, 85}}}), {640, 640, 80, 0});
  ASSERT_TRUE(x.is_ok()) << x.status().to_string();
  EXPECT_EQ(x->levels.size(), 3u);
  EXPECT_EQ(x->levels[1].first_point, 6400);
  EXPECT_TRUE(x->objectness);
}

TEST(HeadBindTest, MismatchesAreClearErrors) {
  HeadBindContext ctx{640, 640, 80, 32};
  // Names say 80 classes, the raw levels hold 3.
  auto nc =
      bind_head(*builtin_head("yolov8"), descs({{"p8", {1, 67, 80, 80}}, {"p16", {1, 67, 40, 40}}}), ctx);
  ASSERT_FALSE(nc.is_ok());
  EXPECT_NE(nc.status().message().find("80"), std::string::npos) << nc.status().message();
  // A description naming an output the model does not have.
  auto spec = parse_head_json(R"({"box": "dfl", "outputs": [{"name": "nope"}]})", "h.json");
  ASSERT_TRUE(spec.is_ok());
  auto named = bind_head({*spec}, descs({{"p8", {1, 144, 80, 80}}}), ctx);
  ASSERT_FALSE(named.is_ok());
  EXPECT_NE(named.status().message().find("'nope'"), std::string::npos) << named.status().message();
  EXPECT_NE(named.status().message().find("'p8'"), std::string::npos) << named.status().message();
  // No description and a raw output: the error points to --head.
  auto raw = bind_default_head(descs({{"p8", {1, 144, 80, 80}}}), ctx);
  ASSERT_FALSE(raw.is_ok());
  EXPECT_NE(raw.status().message().find("--head"), std::string::npos) << raw.status().message();
  // The built-in YOLOv5 levels (strides 8, 16, 32), a model with 2.
  auto a = bind_head({builtin_head("yolov5")->at(1)},
                     descs({{"p8", {1, 255, 80, 80}}, {"p16", {1, 255, 40, 40}}}), ctx);
  ASSERT_FALSE(a.is_ok());
  EXPECT_NE(a.status().message().find("stride 32"), std::string::npos) << a.status().message();
  // Anchors for 3 levels in a description without strides, a model with 2.
  auto three = parse_head_json(R"({"box": "yolov5", "anchors": [[10, 13], [30, 61], [116, 90]]})", "a.json");
  ASSERT_TRUE(three.is_ok());
  auto b = bind_head({*three}, descs({{"p8", {1, 255, 80, 80}}, {"p16", {1, 255, 40, 40}}}), ctx);
  ASSERT_FALSE(b.is_ok());
  EXPECT_NE(b.status().message().find("anchors for 3 levels"), std::string::npos) << b.status().message();
}

// ---- decode against the references -----------------------------------------------------------

TEST(HeadDecodeTest, YoloV5RawLevelsMatchUltralyticsDetect) {
  const int nc = 3, H = 128, W = 96;
  std::vector<Tensor> outs;
  std::vector<std::pair<std::string, Shape>> shapes;
  for (int s : {8, 16, 32}) {
    outs.push_back(random_tensor({2, 3 * (5 + nc), H / s, W / s}, 100 + s, -4.f, 4.f));
    shapes.push_back({"p" + std::to_string(s), outs.back().shape()});
  }
  auto h = bind_head(*builtin_head("yolov5"), descs(shapes), {H, W, nc, 32});
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  // "auto" scores: logits here (values far outside [0, 1]).
  HeadSpec resolved =
      resolve_activation(builtin_head("yolov5")->at(static_cast<size_t>(h->alternative)), *h, ptrs(outs));
  EXPECT_EQ(resolved.scores, Activation::kLogits);
  h = bind_head({resolved}, descs(shapes), {H, W, nc, 32});
  ASSERT_TRUE(h.is_ok());
  Tensor d = decode(*h, outs);
  ASSERT_EQ(d.shape(), (Shape{2, 3 * (16 * 12 + 8 * 6 + 4 * 3), 5 + nc}));
  for (int64_t n = 0; n < 2; ++n) {
    int64_t p = 0;
    for (size_t l = 0; l < 3; ++l) {
      const float s = static_cast<float>(8 << l);
      for (int64_t a = 0; a < 3; ++a)
        for (int64_t y = 0; y < outs[l].dim(2); ++y)
          for (int64_t x = 0; x < outs[l].dim(3); ++x, ++p) {
            auto r =
                ref_yolov5_row(outs[l], n, a, y, x, s, kV5Anchors[l][2 * a], kV5Anchors[l][2 * a + 1], nc);
            for (int c = 0; c < 5 + nc; ++c)
              expect_close(at(d, true, n, p, c), r[static_cast<size_t>(c)],
                           "n" + std::to_string(n) + " p" + std::to_string(p) + " c" + std::to_string(c));
          }
    }
  }
}

TEST(HeadDecodeTest, DflLevelsMatchUltralyticsV8) {
  const int nc = 2, H = 64, W = 96;
  std::vector<Tensor> outs;
  std::vector<std::pair<std::string, Shape>> shapes;
  for (int s : {8, 16, 32}) {
    outs.push_back(random_tensor({1, 64 + nc, H / s, W / s}, 200 + s, -5.f, 5.f));
    shapes.push_back({"p" + std::to_string(s), outs.back().shape()});
  }
  HeadSpec spec = builtin_head("yolov8")->at(1);
  spec.scores = Activation::kLogits;
  auto h = bind_head({spec}, descs(shapes), {H, W, nc, 32});
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  Tensor d = decode(*h, outs);
  int64_t p = 0;
  for (size_t l = 0; l < 3; ++l)
    for (int64_t y = 0; y < outs[l].dim(2); ++y)
      for (int64_t x = 0; x < outs[l].dim(3); ++x, ++p) {
        auto r = ref_dfl_column(outs[l], 0, outs[l], 64, 0, y, x, static_cast<float>(8 << l), nc);
        for (int c = 0; c < 4 + nc; ++c)
          expect_close(at(d, false, 0, p, c), r[static_cast<size_t>(c)], "p" + std::to_string(p));
      }
  EXPECT_EQ(p, h->points);
}

TEST(HeadDecodeTest, YoloXRowsMatchDemoPostprocess) {
  const int nc = 4, H = 96, W = 64;
  const int64_t P = (H / 8) * (W / 8) + (H / 16) * (W / 16) + (H / 32) * (W / 32);
  Tensor out = random_tensor({2, P, 5 + nc}, 300, -2.f, 2.f);
  // Scores as exported (sigmoid applied).
  Tensor probs = out.clone();
  for (int64_t i = 0; i < probs.numel(); ++i)
    if (i % (5 + nc) >= 4) probs.data<float>()[i] = sigmoid(probs.data<float>()[i]);
  for (bool logits : {false, true}) {
    const Tensor& in = logits ? out : probs;
    auto h = bind_head(*builtin_head("yolox"), descs({{"output", in.shape()}}), {H, W, -1, 0});
    ASSERT_TRUE(h.is_ok()) << h.status().to_string();
    HeadSpec resolved = resolve_activation(builtin_head("yolox")->at(0), *h, {in.data<float>()});
    EXPECT_EQ(resolved.scores, logits ? Activation::kLogits : Activation::kApplied);
    h = bind_head({resolved}, descs({{"output", in.shape()}}), {H, W, -1, 0});
    ASSERT_TRUE(h.is_ok());
    Tensor d = decode(*h, {in});
    Tensor r = ref_yolox(in, H, W, logits);
    ASSERT_EQ(d.shape(), r.shape());
    for (int64_t i = 0; i < d.numel(); ++i)
      expect_close(d.data<float>()[i], r.data<float>()[i], "i" + std::to_string(i));
  }
}

TEST(HeadDecodeTest, RetinaNetDeltasMatchTorchvision) {
  const int nc = 3, A = 2, H = 256, W = 384;
  std::vector<Tensor> outs;
  std::string json = R"({"box": "deltas", "scores": "logits", "grid_offset": 0, "anchors": [)";
  std::string outputs;
  std::vector<std::pair<std::string, Shape>> shapes;
  for (int s : {8, 16, 32, 64, 128}) {
    const std::string lv = std::to_string(s);
    outs.push_back(random_tensor({1, A * nc, H / s, W / s}, 400 + s, -4.f, 4.f));
    shapes.push_back({"cls" + lv, outs.back().shape()});
    outs.push_back(random_tensor({1, A * 4, H / s, W / s}, 500 + s, -1.f, 1.f));
    shapes.push_back({"box" + lv, outs.back().shape()});
    json += std::string(s == 8 ? "" : ", ") + "[" + std::to_string(4 * s) + ", " + std::to_string(4 * s) +
            ", " + std::to_string(8 * s) + ", " + std::to_string(2 * s) + "]";
    outputs += std::string(s == 8 ? "" : ", ") + R"({"name": "cls)" + lv +
               R"(", "parts": ["cls"]}, {"name": "box)" + lv + R"(", "parts": ["box"]})";
  }
  json += "], \"outputs\": [" + outputs + "]}";
  auto spec = parse_head_json(json, "retina.json");
  ASSERT_TRUE(spec.is_ok()) << spec.status().to_string();
  auto h = bind_head({*spec}, descs(shapes), {H, W, -1, 128});
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  EXPECT_EQ(h->nc, nc);
  ASSERT_EQ(h->levels.size(), 5u);
  Tensor d = decode(*h, outs);
  for (size_t l = 0; l < 5; ++l) {
    const BoundLevel& lv = h->levels[l];
    const float s = static_cast<float>(8 << l);
    for (int64_t a = 0; a < A; ++a)
      for (int64_t y = 0; y < lv.h; ++y)
        for (int64_t x = 0; x < lv.w; ++x) {
          const int64_t p = lv.first_point + (a * lv.h + y) * lv.w + x;
          const float aw = a == 0 ? 4 * s : 8 * s, ah = a == 0 ? 4 * s : 2 * s;
          auto r = ref_retina(outs[2 * l], outs[2 * l + 1], 0, a, y, x, s, aw, ah, nc);
          for (int c = 0; c < 4 + nc; ++c)
            expect_close(at(d, false, 0, p, c), r[static_cast<size_t>(c)], "p" + std::to_string(p));
        }
  }
}

// Hand-computed single points: the formulas, not just agreement between two implementations.
TEST(HeadDecodeTest, HandComputedPoints) {
  // YOLOX, 32x32 input, stride 8 level cell (x 2, y 1): xy offsets (0.5, 0.25), log-size ln(2), ln(4).
  const int64_t P = 16 + 4 + 1;
  Tensor t(DataType::kFloat32, {1, P, 6});
  float* row = t.data<float>() + (1 * 4 + 2) * 6;
  row[0] = 0.5f, row[1] = 0.25f, row[2] = std::log(2.f), row[3] = std::log(4.f), row[4] = 0.9f, row[5] = 0.8f;
  HeadSpec yx = builtin_head("yolox")->at(0);
  yx.scores = Activation::kApplied;
  auto h = bind_head({yx}, descs({{"out", t.shape()}}), {32, 32, 1, 0});
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  Tensor d = decode(*h, {t});
  const int64_t p = 1 * 4 + 2;
  EXPECT_FLOAT_EQ(at(d, true, 0, p, 0), (0.5f + 2) * 8);   // 20
  EXPECT_FLOAT_EQ(at(d, true, 0, p, 1), (0.25f + 1) * 8);  // 10
  EXPECT_NEAR(at(d, true, 0, p, 2), 16.f, 1e-4);
  EXPECT_NEAR(at(d, true, 0, p, 3), 32.f, 1e-4);
  EXPECT_FLOAT_EQ(at(d, true, 0, p, 4), 0.9f);
  EXPECT_FLOAT_EQ(at(d, true, 0, p, 5), 0.8f);

  // DFL, one level of stride 16 on a 16x16 input, one cell: bins peaked (one-hot logits, 60) at
  // l=1, t=2, r=3, b=4 -> x1 = 0.5-1, y1 = 0.5-2, x2 = 0.5+3, y2 = 0.5+4 (cells) -> xywh * 16.
  HeadSpec dfl;
  dfl.name = "dfl";
  dfl.box = BoxEncoding::kDfl;
  dfl.scores = Activation::kLogits;
  Tensor box(DataType::kFloat32, {1, 64, 1, 1}), cls(DataType::kFloat32, {1, 1, 1, 1});
  const int peak[4] = {1, 2, 3, 4};
  for (int k = 0; k < 4; ++k) box.data<float>()[k * 16 + peak[k]] = 60.f;
  cls.data<float>()[0] = 0.f;
  auto hd = bind_head({dfl}, descs({{"box", box.shape()}, {"cls", cls.shape()}}), {16, 16, 1, 0});
  ASSERT_TRUE(hd.is_ok()) << hd.status().to_string();
  Tensor dd = decode(*hd, {box, cls});
  EXPECT_NEAR(at(dd, false, 0, 0, 0), (-0.5f + 3.5f) / 2 * 16, 1e-3);  // 24
  EXPECT_NEAR(at(dd, false, 0, 0, 1), (-1.5f + 4.5f) / 2 * 16, 1e-3);  // 24
  EXPECT_NEAR(at(dd, false, 0, 0, 2), 4.f * 16, 1e-3);
  EXPECT_NEAR(at(dd, false, 0, 0, 3), 6.f * 16, 1e-3);
  EXPECT_FLOAT_EQ(at(dd, false, 0, 0, 4), 0.5f);

  // Deltas: anchor 32x16 at cell (1, 0) of stride 8 (centre (8, 0), offset 0); deltas (0.5, -0.25,
  // ln 2, 0) -> centre (8 + 16, 0 - 4), size (64, 16).
  auto rs = parse_head_json(R"({"box": "deltas", "scores": "probabilities", "anchors": [[32, 16]],
                                "outputs": [{"index": 0, "parts": ["box"]}, {"index": 1, "parts": ["cls"]}]})",
                            "r.json");
  ASSERT_TRUE(rs.is_ok()) << rs.status().to_string();
  Tensor rb(DataType::kFloat32, {1, 4, 2, 2}), rc(DataType::kFloat32, {1, 1, 2, 2});
  auto set = [&](int c, float v) { rb.data<float>()[(c * 2 + 0) * 2 + 1] = v; };
  set(0, 0.5f), set(1, -0.25f), set(2, std::log(2.f)), set(3, 0.f);
  rc.data<float>()[1] = 0.7f;
  auto hr = bind_head({*rs}, descs({{"b", rb.shape()}, {"c", rc.shape()}}), {16, 16, -1, 0});
  ASSERT_TRUE(hr.is_ok()) << hr.status().to_string();
  Tensor dr = decode(*hr, {rb, rc});
  EXPECT_NEAR(at(dr, false, 0, 1, 0), 24.f, 1e-4);
  EXPECT_NEAR(at(dr, false, 0, 1, 1), -4.f, 1e-4);
  EXPECT_NEAR(at(dr, false, 0, 1, 2), 64.f, 1e-3);
  EXPECT_NEAR(at(dr, false, 0, 1, 3), 16.f, 1e-4);
  EXPECT_FLOAT_EQ(at(dr, false, 0, 1, 4), 0.7f);
}

TEST(HeadDecodeTest, ProbabilitiesOutsideTheUnitRangeAreAnError) {
  Tensor t = random_tensor({1, 21, 6}, 5, -3.f, 3.f);
  HeadSpec yx = builtin_head("yolox")->at(0);
  yx.scores = Activation::kApplied;  // wrong: these are logits
  auto h = bind_head({yx}, descs({{"out", t.shape()}}), {32, 32, 1, 0});
  ASSERT_TRUE(h.is_ok());
  Tensor d(DataType::kFloat32, h->decoded_shape());
  Status st = decode_head(*h, {t.data<float>()}, d.data<float>());
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("\"scores\": \"logits\""), std::string::npos) << st.message();
}

// ---- ultralytics metadata ------------------------------------------------------------------------

TEST(MetadataTest, ParsesUltralyticsLiterals) {
  auto names = parse_names_literal(R"({0: 'person', 1: "men's shoe", 2: 'it\'s \"x\"', 4: 'caf\xe9'})");
  ASSERT_TRUE(names.is_ok()) << names.status().to_string();
  ASSERT_EQ(names->size(), 5u);
  EXPECT_EQ((*names)[1], "men's shoe");
  EXPECT_EQ((*names)[2], "it's \"x\"");
  EXPECT_EQ((*names)[3], "");
  EXPECT_EQ((*names)[4], "caf\xc3\xa9");
  auto list = parse_names_literal("['a', 'b']");
  ASSERT_TRUE(list.is_ok());
  EXPECT_EQ(*list, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(parse_names_literal("person, bicycle").is_ok());
  EXPECT_FALSE(parse_names_literal("{0: 'a'").is_ok());
  EXPECT_FALSE(parse_names_literal("{-1: 'a'}").is_ok());

  std::vector<std::string> problems;
  auto m = parse_ultralytics_metadata({{"names", "{0: 'person'}"},
                                       {"stride", "32"},
                                       {"imgsz", "[480, 640]"},
                                       {"task", "pose"},
                                       {"kpt_shape", "[17, 3]"},
                                       {"batch", "1"}},
                                      &problems);
  EXPECT_TRUE(problems.empty());
  EXPECT_EQ(m.names, std::vector<std::string>{"person"});
  EXPECT_EQ(*m.stride, 32);
  EXPECT_EQ(*m.imgsz, (std::array<int64_t, 2>{480, 640}));
  EXPECT_EQ(m.task, "pose");
  EXPECT_EQ(m.kpt_shape, (std::vector<int64_t>{17, 3}));
  // Unreadable fields are left out and reported.
  auto bad = parse_ultralytics_metadata({{"imgsz", "big"}, {"stride", "[8, 16, 32]"}}, &problems);
  EXPECT_FALSE(bad.imgsz.has_value());
  EXPECT_EQ(*bad.stride, 32);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("imgsz"), std::string::npos);
}

TEST(MetadataTest, OnlyTheDetectTaskIsSupported) {
  EXPECT_TRUE(check_detect_task("", "m.onnx").is_ok());
  EXPECT_TRUE(check_detect_task("detect", "m.onnx").is_ok());
  for (const char* task : {"segment", "pose", "classify", "obb"}) {
    Status st = check_detect_task(task, "m.onnx");
    ASSERT_FALSE(st.is_ok());
    EXPECT_EQ(st.code(), StatusCode::kUnsupported);
    EXPECT_NE(st.message().find(std::string("'") + task + "'"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("'detect'"), std::string::npos) << st.message();
  }
}

// ---- YOLOv8 NMS semantics (ultralytics utils/ops.py non_max_suppression, no objectness) --------

TEST(YoloV8NmsTest, MatchesUltralyticsSemantics) {
  // [1, 4+3, 4]: anchor 0 best class 2 (0.6) and class 0 (0.5); anchor 1 overlaps anchor 0 (IoU
  // 0.68) with class 2 0.55; anchor 2 max 0.25 (not > conf); anchor 3 NaN scores.
  const float nan = std::nanf("");
  std::vector<float> buf = {10,   11,    100,   200,   // cx
                            10,   11,    100,   200,   // cy
                            10,   10,    10,    10,    // w
                            10,   10,    10,    10,    // h
                            0.5f, 0.1f,  0.25f, nan,   // cls0
                            0.1f, 0.1f,  0.1f,  nan,   // cls1
                            0.6f, 0.55f, 0.1f,  nan};  // cls2
  NmsOptions opt;
  opt.iou = 0.7f;
  auto single = postprocess(buf.data(), {1, 7, 4}, HeadKind::kYoloV8, opt);
  ASSERT_TRUE(single.is_ok());
  // conf, j = cls.max(1): anchor 0 -> (0.6, 2); anchor 1 (0.55, 2) kept (IoU 81/119 = 0.68 < 0.7).
  ASSERT_EQ(single->at(0).size(), 2u);
  EXPECT_EQ(single->at(0)[0].class_id, 2);
  EXPECT_FLOAT_EQ(single->at(0)[1].score, 0.55f);
  opt.iou = 0.45f;
  EXPECT_EQ(postprocess(buf.data(), {1, 7, 4}, HeadKind::kYoloV8, opt)->at(0).size(), 1u);
  // multi_label: torch.where(cls > conf) -> (0, cls0 0.5), (0, cls2 0.6), (1, cls2 0.55).
  opt.multi_label = true;
  opt.iou = 0.7f;
  auto multi = postprocess(buf.data(), {1, 7, 4}, HeadKind::kYoloV8, opt);
  ASSERT_TRUE(multi.is_ok());
  ASSERT_EQ(multi->at(0).size(), 3u);
  EXPECT_FLOAT_EQ(multi->at(0)[0].score, 0.6f);
  EXPECT_FLOAT_EQ(multi->at(0)[1].score, 0.55f);
  EXPECT_EQ(multi->at(0)[2].class_id, 0);
  // classes filter after the class choice.
  opt.multi_label = false;
  opt.classes = {0};
  EXPECT_TRUE(postprocess(buf.data(), {1, 7, 4}, HeadKind::kYoloV8, opt)->at(0).empty());
}

// ---- the decoded-head check ------------------------------------------------------------------------

TEST(DecodedHeadCheckTest, RawBoxesWithProbabilityScoresAreRefused) {
  // YOLOX as exported: scores already sigmoid (in [0, 1]) but boxes are grid offsets.
  Tensor t = random_tensor({1, 8400, 85}, 9, 0.f, 1.f);
  for (int64_t p = 0; p < 8400; ++p) {
    float* row = t.data<float>() + p * 85;
    row[0] = row[0] * 2 - 0.5f, row[1] = row[1] * 2 - 0.5f, row[2] = row[2] - 0.5f, row[3] = row[3] - 0.5f;
  }
  Status st = check_decoded_head(t.data<float>(), t.shape(), HeadKind::kYoloV5, "output", 640, 640);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("raw grid offsets"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("--head"), std::string::npos) << st.message();
  // The same after the YOLOX decode passes.
  auto h = bind_head(*builtin_head("yolox"), descs({{"output", t.shape()}}), {640, 640, 80, 0});
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  Tensor d = decode(*h, {t});
  EXPECT_TRUE(check_decoded_head(d.data<float>(), d.shape(), HeadKind::kYoloV5, "decoded", 640, 640, "yolox")
                  .is_ok());
}

// ---- end to end on synthetic models ------------------------------------------------------------

class HeadModels : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qyolo_heads_" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "images");
    // Structure at several scales, so every level's features vary over the image.
    for (int k = 0; k < 3; ++k) {
      const Image img = qyolo::testing::multiscale_test_image(k);
      images_.push_back(img);
      ASSERT_TRUE(save_jpeg((dir_ / "images" / ("img" + std::to_string(k) + ".jpg")).string(), img).is_ok());
    }
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) {
    std::ofstream f(dir_ / name, std::ios::binary);
    f << bytes;
    return (dir_ / name).string();
  }

  // Detector (CPU) detections vs the reference: the engine's raw outputs for the same letterboxed
  // image, `ref` decode, the library NMS (tested on its own), unletterbox.
  void expect_reference(const std::string& model, const std::string& head, int h, int w, HeadKind kind,
                        const std::function<Tensor(const std::vector<Tensor>&)>& ref, float conf = 0.25f,
                        size_t min_dets = 1) {
    SCOPED_TRACE(model + " --head " + head + " at " + std::to_string(h) + "x" + std::to_string(w));
    auto engine = Engine::build(model, {});
    ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
    DetectOptions opt;
    opt.input_h = h, opt.input_w = w;
    opt.head = head;
    opt.nms.conf = conf;
    opt.nms.iou = 0.5f;
    auto det = Detector::create(*engine, opt);
    ASSERT_TRUE(det.is_ok()) << det.status().to_string();
    std::vector<const Image*> batch;
    for (const auto& im : images_) batch.push_back(&im);
    auto got = (*det)->detect(batch);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    std::printf("  %s\n", (*det)->head_description().c_str());

    std::vector<LetterboxInfo> infos;
    Tensor input = Detector::preprocess(batch, h, w, &infos);
    auto ctx = (*engine)->create_context();
    ASSERT_TRUE(ctx.is_ok());
    std::vector<Tensor> outs;
    ASSERT_TRUE((*ctx)->run(input, outs).is_ok());
    ASSERT_EQ(outs.size(), (*engine)->info().output_names.size());
    Tensor decoded = ref(outs);
    auto want = postprocess(decoded, kind, opt.nms);
    ASSERT_TRUE(want.is_ok()) << want.status().to_string();
    size_t total = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      auto& wd = want->at(i);
      unletterbox(wd, infos[i].scale, infos[i].pad_x, infos[i].pad_y, infos[i].src_w, infos[i].src_h);
      const auto& gd = got->at(i);
      ASSERT_EQ(gd.size(), wd.size()) << "image " << i;
      for (size_t k = 0; k < gd.size(); ++k) {
        EXPECT_EQ(gd[k].class_id, wd[k].class_id);
        EXPECT_NEAR(gd[k].score, wd[k].score, 1e-5);
        for (auto [g, r] : {std::pair{gd[k].x1, wd[k].x1},
                            {gd[k].y1, wd[k].y1},
                            {gd[k].x2, wd[k].x2},
                            {gd[k].y2, wd[k].y2}})
          EXPECT_NEAR(g, r, 1e-3f * std::max(1.f, std::fabs(r)));
      }
      total += gd.size();
    }
    std::printf("  %zu detections compared\n", total);
    EXPECT_GE(total, min_dets) << "too few detections to compare";
  }

  fs::path dir_;
  std::vector<Image> images_;
};

TEST_F(HeadModels, YoloV8DflOneOutputPerLevelDynamicSize) {
  const int nc = 3;
  const std::string model =
      write("v8raw.onnx", qyolo::testing::yolov8_raw_model(-1, -1, nc, /*split=*/false));
  for (auto [h, w] : {std::pair{320, 320}, {256, 384}}) {
    expect_reference(model, "yolov8", h, w, HeadKind::kYoloV8, [&](const std::vector<Tensor>& outs) {
      const int64_t P =
          outs[0].dim(2) * outs[0].dim(3) + outs[1].dim(2) * outs[1].dim(3) + outs[2].dim(2) * outs[2].dim(3);
      Tensor d(DataType::kFloat32, {outs[0].dim(0), 4 + nc, P});
      for (int64_t n = 0; n < d.dim(0); ++n) {
        int64_t p = 0;
        for (size_t l = 0; l < 3; ++l)
          for (int64_t y = 0; y < outs[l].dim(2); ++y)
            for (int64_t x = 0; x < outs[l].dim(3); ++x, ++p) {
              auto r = ref_dfl_column(outs[l], 0, outs[l], 64, n, y, x, static_cast<float>(8 << l), nc);
              for (int c = 0; c < 4 + nc; ++c)
                d.data<float>()[(n * (4 + nc) + c) * P + p] = r[static_cast<size_t>(c)];
            }
      }
      return d;
    });
  }
}

TEST_F(HeadModels, YoloV8DflSeparateBoxAndClassOutputs) {
  const int nc = 2;
  const std::string model =
      write("v8split.onnx", qyolo::testing::yolov8_raw_model(320, 320, nc, /*split=*/true));
  expect_reference(model, "yolo11", 320, 320, HeadKind::kYoloV8, [&](const std::vector<Tensor>& outs) {
    // outputs: box8, cls8, box16, cls16, box32, cls32
    int64_t P = 0;
    for (size_t l = 0; l < 3; ++l) P += outs[2 * l].dim(2) * outs[2 * l].dim(3);
    const int64_t N = outs[0].dim(0);
    Tensor d(DataType::kFloat32, {N, 4 + nc, P});
    for (int64_t n = 0; n < N; ++n) {
      int64_t p = 0;
      for (size_t l = 0; l < 3; ++l)
        for (int64_t y = 0; y < outs[2 * l].dim(2); ++y)
          for (int64_t x = 0; x < outs[2 * l].dim(3); ++x, ++p) {
            auto r =
                ref_dfl_column(outs[2 * l], 0, outs[2 * l + 1], 0, n, y, x, static_cast<float>(8 << l), nc);
            for (int c = 0; c < 4 + nc; ++c)
              d.data<float>()[(n * (4 + nc) + c) * P + p] = r[static_cast<size_t>(c)];
          }
    }
    return d;
  });
}

TEST_F(HeadModels, YoloV5RawLevels) {
  const int nc = 2;
  const std::string model = write("v5raw.onnx", qyolo::testing::yolov5_raw_model(-1, -1, nc));
  expect_reference(model, "yolov5", 256, 320, HeadKind::kYoloV5, [&](const std::vector<Tensor>& outs) {
    int64_t P = 0;
    for (const auto& o : outs) P += 3 * o.dim(2) * o.dim(3);
    Tensor d(DataType::kFloat32, {outs[0].dim(0), P, 5 + nc});
    for (int64_t n = 0; n < d.dim(0); ++n) {
      int64_t p = 0;
      for (size_t l = 0; l < 3; ++l)
        for (int64_t a = 0; a < 3; ++a)
          for (int64_t y = 0; y < outs[l].dim(2); ++y)
            for (int64_t x = 0; x < outs[l].dim(3); ++x, ++p) {
              auto r = ref_yolov5_row(outs[l], n, a, y, x, static_cast<float>(8 << l), kV5Anchors[l][2 * a],
                                      kV5Anchors[l][2 * a + 1], nc);
              std::copy(r.begin(), r.end(), d.data<float>() + (n * P + p) * (5 + nc));
            }
    }
    return d;
  });
}

TEST_F(HeadModels, YoloXExportWithSigmoidScores) {
  const int nc = 3;
  const std::string model =
      write("yolox.onnx", qyolo::testing::yolox_model(-1, -1, nc, /*sigmoid_scores=*/true));
  for (auto hw : {std::pair{320, 320}, {224, 288}}) {
    const int h = hw.first, w = hw.second;  // not a structured binding: clang 14 cannot capture those
    expect_reference(model, "yolox", h, w, HeadKind::kYoloV5, [&](const std::vector<Tensor>& outs) {
      return ref_yolox(outs[0], h, w, /*logits=*/false);
    });
  }
  // Raw logits everywhere: "auto" finds them.
  const std::string logits =
      write("yolox_logits.onnx", qyolo::testing::yolox_model(-1, -1, nc, /*sigmoid_scores=*/false));
  expect_reference(logits, "yolox", 320, 320, HeadKind::kYoloV5, [&](const std::vector<Tensor>& outs) {
    return ref_yolox(outs[0], 320, 320, /*logits=*/true);
  });
}

TEST_F(HeadModels, RetinaNetTenOutputsDynamicSize) {
  const int nc = 3, A = 2;
  const std::string model = write("retina.onnx", qyolo::testing::retinanet_model(-1, -1, nc, A));
  const std::string head = write("retina.json", qyolo::testing::retina_head_json(nc, A));
  for (auto [h, w] : {std::pair{256, 256}, {384, 512}}) {
    expect_reference(
        model, head, h, w, HeadKind::kYoloV8,
        [&](const std::vector<Tensor>& outs) {
          // torchvision order: per level, cells then anchors (the order does not change the detections).
          return qyolo::testing::ref_retina_decoded(outs, nc, A);
        },
        0.25f);
  }
}

// RetinaNet through the CLI: calibrated at a profile shape (--imgsz), then INT8 detect and eval
// with the head description; several outputs everywhere.
TEST_F(HeadModels, RetinaNetCalibrateAndInt8DetectThroughTheCli) {
  const int nc = 3, A = 2;
  const std::string model = write("retina.onnx", qyolo::testing::retinanet_model(-1, -1, nc, A));
  const std::string head = write("retina.json", qyolo::testing::retina_head_json(nc, A));
  const std::string cache = (dir_ / "retina.cache").string();
  auto cal = run_cli("calibrate --model " + model + " --calib " + (dir_ / "images").string() +
                     " --imgsz 256 384 --num 3 --batch 2 --algo minmax --cache " + cache);
  ASSERT_EQ(cal.exit_code, 0) << cal.output;
  EXPECT_NE(cal.output.find("2x3x256x384"), std::string::npos) << cal.output;
  ASSERT_TRUE(fs::exists(cache));
  auto det = run_cli("detect --model " + model + " --int8 --cache " + cache + " --head " + head +
                     " --imgsz 256 384 --conf 0.3 --source " + (dir_ / "images").string() + " --out " +
                     (dir_ / "out").string());
  ASSERT_EQ(det.exit_code, 0) << det.output;
  std::ifstream f(dir_ / "out" / "detections.json");
  auto doc = nlohmann::json::parse(f);
  EXPECT_EQ(doc["precision"], "int8");
  EXPECT_FLOAT_EQ(doc["iou"].get<float>(), 0.7f);  // no objectness: the YOLOv8-style default
  EXPECT_NE(doc["head"].get<std::string>().find("5 levels"), std::string::npos) << doc["head"];
  size_t dets = 0;
  for (const auto& r : doc["results"]) dets += r["detections"].size();
  EXPECT_GT(dets, 0u);
  // Without --head the same model is refused, pointing to --head.
  auto none = run_cli("detect --model " + model + " --imgsz 256 --source " + (dir_ / "images").string() +
                      " --out " + (dir_ / "out2").string());
  EXPECT_EQ(none.exit_code, 1) << none.output;
  EXPECT_NE(none.output.find("--head"), std::string::npos) << none.output;
  EXPECT_FALSE(fs::exists(dir_ / "out2" / "detections.json"));
}

TEST_F(HeadModels, DecodedYoloV8FromMetadataAndTask) {
  const int nc = 4;
  const std::string model = write("v8.onnx", qyolo::testing::yolov8_decoded_model(320, 320, nc));
  // No --head: the v8 layout comes from the shape and the names metadata; the IoU default is 0.7.
  auto engine = Engine::build(model, {});
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  EXPECT_EQ((*engine)->info().task, "detect");
  EXPECT_EQ((*engine)->info().class_names.size(), 4u);
  DetectOptions opt;
  opt.nms.iou = -1;
  auto det = Detector::create(*engine, opt);
  ASSERT_TRUE(det.is_ok()) << det.status().to_string();
  ASSERT_TRUE((*det)->prepare(1).is_ok());
  EXPECT_FLOAT_EQ((*det)->options().nms.iou, 0.7f);
  EXPECT_NE((*det)->head_description().find("decoded [N, 4+nc, P]"), std::string::npos)
      << (*det)->head_description();
  expect_reference(model, "", 320, 320, HeadKind::kYoloV8,
                   [](const std::vector<Tensor>& outs) { return outs[0]; });
  expect_reference(model, "yolov8", 320, 320, HeadKind::kYoloV8,
                   [](const std::vector<Tensor>& outs) { return outs[0]; });
  // Another task is refused by name, through the library and the CLI.
  const std::string seg = write("seg.onnx", qyolo::testing::yolov8_decoded_model(320, 320, nc, "segment"));
  auto seg_engine = Engine::build(seg, {});
  ASSERT_TRUE(seg_engine.is_ok());
  auto refused = Detector::create(*seg_engine, {});
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("'segment'"), std::string::npos) << refused.status().message();
  auto r = run_cli("detect --model " + seg + " --source " + (dir_ / "images").string() + " --out " +
                   (dir_ / "o").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("task 'detect'"), std::string::npos) << r.output;
}

// A YOLOX export without --head: scores are in [0, 1], so only the box check can tell; refused,
// pointing to --head; with --head yolox the CLI detects.
TEST_F(HeadModels, YoloXWithoutHeadIsRefusedWithHeadDetects) {
  const std::string model =
      write("yolox.onnx", qyolo::testing::yolox_model(320, 320, 80, /*sigmoid_scores=*/true));
  auto r = run_cli("detect --model " + model + " --source " + (dir_ / "images").string() + " --out " +
                   (dir_ / "o").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--head"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "o" / "detections.json"));
  auto ok = run_cli("detect --model " + model + " --head yolox --conf 0.3 --source " +
                    (dir_ / "images").string() + " --out " + (dir_ / "o2").string());
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  std::ifstream f(dir_ / "o2" / "detections.json");
  auto doc = nlohmann::json::parse(f);
  EXPECT_FLOAT_EQ(doc["iou"].get<float>(), 0.45f);  // objectness: the YOLOv5-style default
  EXPECT_NE(doc["head"].get<std::string>().find("yolox boxes"), std::string::npos) << doc["head"];
  // A head that does not fit is a clear error.
  auto bad = run_cli("detect --model " + model + " --head yolov8 --source " + (dir_ / "images").string() +
                     " --out " + (dir_ / "o3").string());
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("does not fit"), std::string::npos) << bad.output;
}

}  // namespace
