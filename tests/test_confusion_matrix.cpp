// Detection confusion matrix and per-class PR curves: hand-computed cases.
#include <gtest/gtest.h>

#include <vector>

#include "eval/coco_eval.h"
#include "eval/confusion_matrix.h"

namespace qyolo {
namespace {

GtAnnotation gt_box(int image, int cat, double x, double y, double w, double h, bool crowd = false) {
  GtAnnotation a;
  a.image_id = image;
  a.category_id = cat;
  a.x = x, a.y = y, a.w = w, a.h = h;
  a.area = w * h;
  a.iscrowd = crowd;
  return a;
}

GroundTruth two_classes(std::vector<GtAnnotation> anns) {
  GroundTruth gt;
  gt.images = {{1, "1.jpg", 640, 480}, {2, "2.jpg", 640, 480}};
  gt.annotations = std::move(anns);
  gt.categories = {{3, "cat"}, {7, "dog"}};
  return gt;
}

TEST(ConfusionMatrix, HandComputedCase) {
  // Image 1: a cat found as a cat, a dog found as a cat, a cat missed; image 2: a dog found, a
  // false dog, a crowd box (ignored) and a detection below the score threshold.
  GroundTruth gt =
      two_classes({gt_box(1, 3, 0, 0, 100, 100), gt_box(1, 7, 200, 0, 100, 100), gt_box(1, 3, 400, 0, 50, 50),
                   gt_box(2, 7, 0, 0, 100, 100), gt_box(2, 3, 300, 300, 100, 100, /*crowd=*/true)});
  std::vector<CocoDetection> dets = {
      {1, 3, 0, 0, 100, 90, 0.9},     // IoU 0.9 with the first cat
      {1, 3, 200, 0, 100, 100, 0.8},  // the dog, wrong class
      {1, 3, 400, 0, 50, 50, 0.2},    // would find the second cat, but score <= 0.25
      {2, 7, 10, 0, 100, 100, 0.7},   // IoU 90/110 = 0.818 with the dog
      {2, 7, 500, 400, 50, 50, 0.6},  // nothing there
      {2, 7, 0, 0, 100, 100, 0.5},    // a duplicate of the dog: the better IoU takes the dog first
  };
  auto m = confusion_matrix(gt, dets, 0.25f, 0.45f);
  // Rows predicted (cat, dog, background), columns true (cat, dog, background).
  const std::vector<std::vector<int64_t>> expected = {{1, 1, 0}, {0, 1, 2}, {1, 0, 0}};
  EXPECT_EQ(m, expected);
}

TEST(ConfusionMatrix, IouThresholdIsStrict) {
  GroundTruth gt = two_classes({gt_box(1, 3, 0, 0, 300, 300)});
  // IoU exactly 0.5: intersection 200 x 300, union 2 x 300 x 300 - 200 x 300.
  std::vector<CocoDetection> dets = {{1, 3, 100, 0, 300, 300, 0.9}};
  EXPECT_EQ(confusion_matrix(gt, dets, 0.25f, 0.5f)[0][0], 0);
  EXPECT_EQ(confusion_matrix(gt, dets, 0.25f, 0.49f)[0][0], 1);
}

TEST(CocoEval, PrecisionCurveAtIou50) {
  // One class, two ground-truth boxes; detections ranked: hit, miss, hit. Recall 0.5 at precision
  // 1, recall 1 at precision 2/3: the interpolated curve is 1 up to recall 0.5, 2/3 after.
  GroundTruth gt = two_classes({gt_box(1, 3, 0, 0, 100, 100), gt_box(2, 3, 0, 0, 100, 100)});
  CocoEvaluator ev(gt);
  ASSERT_TRUE(ev.add_detections(std::vector<CocoDetection>{
      {1, 3, 0, 0, 100, 100, 0.9}, {1, 3, 300, 300, 50, 50, 0.8}, {2, 3, 0, 0, 100, 100, 0.7}}));
  auto m = ev.evaluate();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  ASSERT_EQ(m->per_class_pr50.size(), 2u);
  const auto& pr = m->per_class_pr50[0];
  ASSERT_EQ(pr.size(), 101u);
  for (int r = 0; r <= 50; ++r) EXPECT_DOUBLE_EQ(pr[r], 1.0) << r;
  for (int r = 51; r <= 100; ++r) EXPECT_NEAR(pr[r], 2.0 / 3.0, 1e-12) << r;
  EXPECT_TRUE(m->per_class_pr50[1].empty());  // dog: no ground truth
  double mean = 0;
  for (double p : pr) mean += p / 101;
  EXPECT_NEAR(mean, m->per_class_ap50[0].second, 1e-12);
}

}  // namespace
}  // namespace qyolo
