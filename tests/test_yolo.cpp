// YOLO post-processing: NMS and head decoding against hand-computed expectations.
#include <vector>

#include "test_support.h"
#include "yolo/postprocess.h"

namespace qyolo {
namespace {

// Flattens rows of one image into a [1, A, C] / [N, A, C] buffer.
std::vector<float> flat(const std::vector<std::vector<float>>& rows) {
  std::vector<float> out;
  for (const auto& r : rows) out.insert(out.end(), r.begin(), r.end());
  return out;
}

std::vector<Detection> run_v5(const std::vector<std::vector<float>>& rows, const NmsOptions& opt) {
  std::vector<float> buf = flat(rows);
  Shape shape = {1, static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())};
  auto r = postprocess(buf.data(), shape, HeadKind::kYoloV5, opt);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  if (!r.is_ok()) return {};
  EXPECT_EQ(r->size(), 1u);
  return r->at(0);
}

void expect_box(const Detection& d, float x1, float y1, float x2, float y2, float score, int cls) {
  EXPECT_FLOAT_EQ(d.x1, x1);
  EXPECT_FLOAT_EQ(d.y1, y1);
  EXPECT_FLOAT_EQ(d.x2, x2);
  EXPECT_FLOAT_EQ(d.y2, y2);
  EXPECT_FLOAT_EQ(d.score, score);
  EXPECT_EQ(d.class_id, cls);
}

// ---- nms() ------------------------------------------------------------------------------------

TEST(NmsTest, SuppressesOverlapAndKeepsDisjoint) {
  // IoU(0,1) = 81 / 119 = 0.68 > 0.45; box 2 is disjoint.
  std::vector<float> boxes = {0, 0, 10, 10, 1, 1, 11, 11, 20, 20, 30, 30};
  std::vector<float> scores = {0.9f, 0.8f, 0.7f};
  EXPECT_EQ(nms(boxes.data(), scores.data(), 3, 0.45f), (std::vector<int>{0, 2}));
  // With a threshold above 0.68 both survive.
  EXPECT_EQ(nms(boxes.data(), scores.data(), 3, 0.7f), (std::vector<int>{0, 1, 2}));
  // max_keep stops early with the same prefix.
  EXPECT_EQ(nms(boxes.data(), scores.data(), 3, 0.45f, 1), (std::vector<int>{0}));
  EXPECT_EQ(nms(boxes.data(), scores.data(), 3, 0.7f, 2), (std::vector<int>{0, 1}));
  EXPECT_TRUE(nms(boxes.data(), scores.data(), 3, 0.7f, 0).empty());
}

TEST(NmsTest, IouEqualToThresholdIsKept) {
  // IoU = 50 / 100 = 0.5 exactly.
  std::vector<float> boxes = {0, 0, 10, 10, 0, 0, 10, 5};
  std::vector<float> scores = {0.9f, 0.8f};
  EXPECT_EQ(nms(boxes.data(), scores.data(), 2, 0.5f), (std::vector<int>{0, 1}));
  EXPECT_EQ(nms(boxes.data(), scores.data(), 2, 0.49f), (std::vector<int>{0}));
}

TEST(NmsTest, VisitsByScoreAndIsStableForTies) {
  std::vector<float> boxes = {0, 0, 1, 1, 10, 10, 11, 11, 20, 20, 21, 21};
  std::vector<float> scores = {0.5f, 0.9f, 0.5f};
  EXPECT_EQ(nms(boxes.data(), scores.data(), 3, 0.45f), (std::vector<int>{1, 0, 2}));
  // Identical boxes with identical scores: the first one wins.
  std::vector<float> same = {0, 0, 10, 10, 0, 0, 10, 10};
  std::vector<float> tie = {0.6f, 0.6f};
  EXPECT_EQ(nms(same.data(), tie.data(), 2, 0.45f), (std::vector<int>{0}));
  EXPECT_TRUE(nms(same.data(), tie.data(), 0, 0.45f).empty());
}

TEST(NmsTest, SuppressedBoxDoesNotSuppressOthers) {
  // B overlaps A (IoU 1/3) and C (IoU 1/3); A and C are disjoint. Greedy: A kept, B removed, C kept.
  std::vector<float> boxes = {0, 0, 10, 10, 5, 0, 15, 10, 10, 0, 20, 10};
  std::vector<float> scores = {0.9f, 0.8f, 0.7f};
  EXPECT_EQ(nms(boxes.data(), scores.data(), 3, 0.3f), (std::vector<int>{0, 2}));
}

// ---- postprocess(): YOLOv5 head -----------------------------------------------------------------

TEST(YoloPostprocessTest, DecodesTinyV5Output) {
  // [1, 3, 5+2]: cx, cy, w, h, obj, cls0, cls1.
  std::vector<std::vector<float>> rows = {
      {50, 40, 20, 10, 0.9f, 0.8f, 0.1f},     // conf 0.72 class 0 -> [40,35,60,45]
      {100, 100, 10, 10, 0.2f, 1.0f, 1.0f},   // obj 0.2 <= 0.25: not a candidate
      {200, 150, 40, 20, 0.6f, 0.3f, 0.5f}};  // conf 0.30 class 1 -> [180,140,220,160]
  auto dets = run_v5(rows, NmsOptions{});
  ASSERT_EQ(dets.size(), 2u);
  expect_box(dets[0], 40, 35, 60, 45, 0.8f * 0.9f, 0);
  expect_box(dets[1], 180, 140, 220, 160, 0.5f * 0.6f, 1);
}

TEST(YoloPostprocessTest, ConfFilterIsStrictAndUsesObjTimesCls) {
  std::vector<std::vector<float>> rows = {{10, 10, 4, 4, 0.5f, 0.4f, 0.0f},   // obj passes, conf 0.2 fails
                                          {50, 50, 4, 4, 1.0f, 0.25f, 0.0f},  // conf == 0.25: not > 0.25
                                          {90, 90, 4, 4, 1.0f, 0.0f, 0.26f}};
  auto dets = run_v5(rows, NmsOptions{});
  ASSERT_EQ(dets.size(), 1u);
  expect_box(dets[0], 88, 88, 92, 92, 0.26f, 1);
}

TEST(YoloPostprocessTest, ClassAwareVersusAgnostic) {
  // IoU 81/119 between the two boxes; different classes.
  std::vector<std::vector<float>> rows = {{5, 5, 10, 10, 1.0f, 0.9f, 0.0f}, {6, 6, 10, 10, 1.0f, 0.0f, 0.8f}};
  NmsOptions opt;
  auto aware = run_v5(rows, opt);
  ASSERT_EQ(aware.size(), 2u);
  EXPECT_EQ(aware[0].class_id, 0);
  EXPECT_EQ(aware[1].class_id, 1);
  opt.agnostic = true;
  auto agnostic = run_v5(rows, opt);
  ASSERT_EQ(agnostic.size(), 1u);
  EXPECT_EQ(agnostic[0].class_id, 0);
  // Same class: suppressed even when class-aware.
  rows[1] = {6, 6, 10, 10, 1.0f, 0.8f, 0.0f};
  EXPECT_EQ(run_v5(rows, NmsOptions{}).size(), 1u);
}

TEST(YoloPostprocessTest, ClassFilter) {
  std::vector<std::vector<float>> rows = {{10, 10, 4, 4, 1.0f, 0.9f, 0.1f, 0.0f},
                                          {50, 50, 4, 4, 1.0f, 0.1f, 0.8f, 0.0f},
                                          {90, 90, 4, 4, 1.0f, 0.0f, 0.0f, 0.7f}};
  NmsOptions opt;
  opt.classes = {1, 2};
  auto dets = run_v5(rows, opt);
  ASSERT_EQ(dets.size(), 2u);
  EXPECT_EQ(dets[0].class_id, 1);
  EXPECT_EQ(dets[1].class_id, 2);
  // Single-label picks the best class first, then filters: a box whose best class is
  // excluded is dropped even if another class would pass.
  opt.classes = {1};
  rows = {{10, 10, 4, 4, 1.0f, 0.9f, 0.6f, 0.0f}};
  EXPECT_TRUE(run_v5(rows, opt).empty());
  opt.multi_label = true;
  dets = run_v5(rows, opt);
  ASSERT_EQ(dets.size(), 1u);
  EXPECT_EQ(dets[0].class_id, 1);
  EXPECT_FLOAT_EQ(dets[0].score, 0.6f);
}

TEST(YoloPostprocessTest, MultiLabelEmitsEveryClassAboveConf) {
  std::vector<std::vector<float>> rows = {{20, 20, 10, 10, 0.9f, 0.9f, 0.5f, 0.2f}};
  NmsOptions opt;
  opt.multi_label = true;
  auto dets = run_v5(rows, opt);
  ASSERT_EQ(dets.size(), 2u);  // 0.81 and 0.45 pass, 0.18 does not
  expect_box(dets[0], 15, 15, 25, 25, 0.9f * 0.9f, 0);
  expect_box(dets[1], 15, 15, 25, 25, 0.5f * 0.9f, 1);
  opt.multi_label = false;
  dets = run_v5(rows, opt);
  ASSERT_EQ(dets.size(), 1u);
  EXPECT_EQ(dets[0].class_id, 0);
  // Agnostic NMS collapses the per-class copies of one box.
  opt.multi_label = true;
  opt.agnostic = true;
  EXPECT_EQ(run_v5(rows, opt).size(), 1u);
}

TEST(YoloPostprocessTest, MaxDetAndMaxNmsTruncate) {
  std::vector<std::vector<float>> rows;
  const float scores[] = {0.5f, 0.9f, 0.6f, 0.8f, 0.7f};
  for (int i = 0; i < 5; ++i) rows.push_back({20.0f * i + 5, 5, 4, 4, 1.0f, scores[i]});
  NmsOptions opt;
  opt.max_det = 3;
  auto dets = run_v5(rows, opt);
  ASSERT_EQ(dets.size(), 3u);
  EXPECT_FLOAT_EQ(dets[0].score, 0.9f);
  EXPECT_FLOAT_EQ(dets[1].score, 0.8f);
  EXPECT_FLOAT_EQ(dets[2].score, 0.7f);
  EXPECT_FLOAT_EQ(dets[0].x1, 23);  // anchor 1
  opt.max_det = 300;
  opt.max_nms = 2;
  dets = run_v5(rows, opt);
  ASSERT_EQ(dets.size(), 2u);
  EXPECT_FLOAT_EQ(dets[1].score, 0.8f);
  opt.max_det = 0;
  EXPECT_TRUE(run_v5(rows, opt).empty());
}

TEST(YoloPostprocessTest, BatchImagesAreIndependent) {
  // Image 0: two overlapping boxes of class 0; image 1: one box of class 1.
  std::vector<float> buf = flat({{5, 5, 10, 10, 1.0f, 0.9f, 0.0f},
                                 {6, 6, 10, 10, 1.0f, 0.8f, 0.0f},
                                 {50, 50, 10, 10, 0.1f, 0.9f, 0.0f},
                                 {5, 5, 10, 10, 1.0f, 0.0f, 0.7f},
                                 {6, 6, 10, 10, 0.1f, 0.8f, 0.0f},
                                 {50, 50, 10, 10, 0.1f, 0.9f, 0.0f}});
  auto r = postprocess(buf.data(), {2, 3, 7}, HeadKind::kYoloV5, NmsOptions{});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 2u);
  ASSERT_EQ((*r)[0].size(), 1u);
  expect_box((*r)[0][0], 0, 0, 10, 10, 0.9f, 0);
  ASSERT_EQ((*r)[1].size(), 1u);
  expect_box((*r)[1][0], 0, 0, 10, 10, 0.7f, 1);
}

TEST(YoloPostprocessTest, TensorOverloadAndErrors) {
  Tensor t = Tensor::from_vector<float>({1, 1, 7}, {10, 10, 4, 4, 0.9f, 0.1f, 0.9f});
  auto r = postprocess(t, HeadKind::kYoloV5, NmsOptions{});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->at(0).size(), 1u);
  expect_box(r->at(0)[0], 8, 8, 12, 12, 0.9f * 0.9f, 1);

  Tensor ints = Tensor::from_vector<int32_t>({1, 1, 7}, {0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(postprocess(ints, HeadKind::kYoloV5, NmsOptions{}).status().code(), StatusCode::kInvalidArgument);
  std::vector<float> small(5, 0.0f);
  EXPECT_FALSE(postprocess(small.data(), {1, 1, 5}, HeadKind::kYoloV5, NmsOptions{}).is_ok());  // no classes
  EXPECT_FALSE(postprocess(small.data(), {1, 5}, HeadKind::kYoloV5, NmsOptions{}).is_ok());
  NmsOptions bad;
  bad.iou = 1.5f;
  EXPECT_FALSE(postprocess(t, HeadKind::kYoloV5, bad).is_ok());
  // An empty batch is fine.
  auto empty = postprocess(nullptr, {0, 25200, 85}, HeadKind::kYoloV5, NmsOptions{});
  ASSERT_TRUE(empty.is_ok());
  EXPECT_TRUE(empty->empty());
}

// ---- postprocess(): YOLOv8 head ------------------------------------------------------------------

TEST(YoloPostprocessTest, DecodesV8ChannelsFirstWithoutObjectness) {
  // [1, 4+2, 3]: channel-major. Anchor 0 cls (0.3, 0.7); anchor 1 (0.2, 0.1); anchor 2 (0.9, 0.0)
  // overlapping anchor 0 (IoU 81/119) but another class.
  std::vector<float> buf = {
      5,    200,  6,     // cx
      5,    200,  6,     // cy
      10,   10,   10,    // w
      10,   10,   10,    // h
      0.3f, 0.2f, 0.9f,  // cls0
      0.7f, 0.1f, 0.0f,  // cls1
  };
  auto r = postprocess(buf.data(), {1, 6, 3}, HeadKind::kYoloV8, NmsOptions{});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const auto& dets = r->at(0);
  ASSERT_EQ(dets.size(), 2u);
  expect_box(dets[0], 1, 1, 11, 11, 0.9f, 0);
  expect_box(dets[1], 0, 0, 10, 10, 0.7f, 1);
}

// ---- head detection / letterbox ---------------------------------------------------------------------

TEST(YoloHeadTest, DetectsLayoutFromShape) {
  auto v5 = detect_head_kind({1, 25200, 85}, -1);
  ASSERT_TRUE(v5.is_ok());
  EXPECT_EQ(*v5, HeadKind::kYoloV5);
  auto v8 = detect_head_kind({1, 84, 8400}, -1);
  ASSERT_TRUE(v8.is_ok());
  EXPECT_EQ(*v8, HeadKind::kYoloV8);
  EXPECT_EQ(*detect_head_kind({4, 25200, 85}, 80), HeadKind::kYoloV5);
  EXPECT_EQ(*detect_head_kind({4, 84, 8400}, 80), HeadKind::kYoloV8);
  EXPECT_EQ(*head_num_classes({1, 25200, 85}, HeadKind::kYoloV5), 80);
  EXPECT_EQ(*head_num_classes({1, 84, 8400}, HeadKind::kYoloV8), 80);
  EXPECT_FALSE(detect_head_kind({1, 25200, 85}, 3).is_ok());  // class count disagrees
  EXPECT_FALSE(detect_head_kind({1, 84, 85}, 80).is_ok());    // fits both
  EXPECT_FALSE(detect_head_kind({1, 85, 85}, -1).is_ok());    // ambiguous without a hint
  EXPECT_FALSE(detect_head_kind({25200, 85}, -1).is_ok());
}

TEST(YoloHeadTest, UnletterboxUndoesPadAndGainAndClips) {
  // 810x1080 image letterboxed to 640: gain 640/1080, pad x = (640 - 810*gain)/2 = 80.
  const float gain = 640.0f / 1080.0f, pad_x = 80.0f, pad_y = 0.0f;
  std::vector<Detection> dets = {{80 + 100 * gain, 50 * gain, 80 + 200 * gain, 300 * gain, 0.9f, 3},
                                 {70, -5, 700, 650, 0.5f, 0}};
  unletterbox(dets, gain, pad_x, pad_y, 810, 1080);
  EXPECT_NEAR(dets[0].x1, 100, 1e-3);
  EXPECT_NEAR(dets[0].y1, 50, 1e-3);
  EXPECT_NEAR(dets[0].x2, 200, 1e-3);
  EXPECT_NEAR(dets[0].y2, 300, 1e-3);
  EXPECT_EQ(dets[0].class_id, 3);
  EXPECT_FLOAT_EQ(dets[1].x1, 0);
  EXPECT_FLOAT_EQ(dets[1].y1, 0);
  EXPECT_FLOAT_EQ(dets[1].x2, 810);
  EXPECT_FLOAT_EQ(dets[1].y2, 1080);
}

}  // namespace
}  // namespace qyolo
