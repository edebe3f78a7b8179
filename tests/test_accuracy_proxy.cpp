// Accuracy proxy (src/quant/accuracy_proxy.h): mAP against the reference's own detections, checked
// against hand-computed COCO AP values.
#include <gtest/gtest.h>

#include "quant/accuracy_proxy.h"

using namespace qyolo;

namespace {

Detection box(float x1, float y1, float x2, float y2, float score, int cls = 0) {
  return {x1, y1, x2, y2, score, cls};
}

const std::vector<std::pair<int, int>> kOneImage = {{640, 480}};

}  // namespace

TEST(AccuracyProxy, IdenticalDetectionsScoreOne) {
  // Low-score detections (not labels) rank after every label and cost nothing.
  std::vector<std::vector<Detection>> ref = {
      {box(10, 10, 110, 110, 0.9f), box(200, 200, 300, 260, 0.6f, 3), box(400, 100, 450, 180, 0.05f)},
      {box(0, 0, 50, 50, 0.3f, 1)}};
  auto m = agreement_metrics(ref, ref, {{640, 480}, {320, 320}}, 0.25f);
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  EXPECT_DOUBLE_EQ(m->map, 1.0);
  EXPECT_DOUBLE_EQ(m->map50, 1.0);
  EXPECT_EQ(m->num_gt, 3);  // the 0.05 detection is not a label
}

TEST(AccuracyProxy, MissingHalfTheLabelsGivesHandComputedAp) {
  // One class, two labels, the candidate finds one exactly: precision 1 up to recall 0.5, i.e. 51 of
  // COCO's 101 recall points.
  std::vector<std::vector<Detection>> ref = {{box(10, 10, 110, 110, 0.9f), box(300, 300, 400, 400, 0.8f)}};
  std::vector<std::vector<Detection>> cand = {{box(10, 10, 110, 110, 0.7f)}};
  auto m = agreement_metrics(ref, cand, kOneImage, 0.25f);
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  EXPECT_NEAR(m->map, 51.0 / 101.0, 1e-9);
}

TEST(AccuracyProxy, ShiftedBoxCountsOnlyAtLowIouThresholds) {
  // IoU 0.72 = 7200 / 10000: a match at thresholds .50 .55 .60 .65 .70, a miss at .75 ... .95.
  std::vector<std::vector<Detection>> ref = {{box(0, 0, 100, 100, 0.9f)}};
  std::vector<std::vector<Detection>> cand = {{box(0, 0, 100, 72, 0.9f)}};
  auto m = agreement_metrics(ref, cand, kOneImage, 0.25f);
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  EXPECT_NEAR(m->map, 0.5, 1e-9);
  EXPECT_NEAR(m->map50, 1.0, 1e-9);
  EXPECT_NEAR(m->map75, 0.0, 1e-9);
}

TEST(AccuracyProxy, WrongClassIsAMiss) {
  std::vector<std::vector<Detection>> ref = {{box(0, 0, 100, 100, 0.9f, 2)}};
  std::vector<std::vector<Detection>> cand = {{box(0, 0, 100, 100, 0.9f, 5)}};
  auto m = agreement_metrics(ref, cand, kOneImage, 0.25f);
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  EXPECT_DOUBLE_EQ(m->map, 0.0);
}

TEST(AccuracyProxy, MismatchedListsAreAnError) {
  std::vector<std::vector<Detection>> ref = {{}, {}};
  std::vector<std::vector<Detection>> cand = {{}};
  auto m = agreement_metrics(ref, cand, {{1, 1}, {1, 1}}, 0.25f);
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("one of each per image"), std::string::npos);
}
