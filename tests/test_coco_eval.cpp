// COCO bbox evaluation: hand-computed pycocotools numbers on synthetic cases, loaders, val500.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "eval/coco_eval.h"
#include "test_support.h"

namespace qyolo {
namespace {

namespace fs = std::filesystem;

GtAnnotation gt_box(int image, int cat, double x, double y, double w, double h, bool crowd = false) {
  GtAnnotation a;  // id stays 0: matching does not use ids
  a.image_id = image;
  a.category_id = cat;
  a.x = x, a.y = y, a.w = w, a.h = h;
  a.area = w * h;
  a.iscrowd = crowd;
  return a;
}

CocoDetection det(int image, int cat, double x, double y, double w, double h, double score) {
  return {image, cat, x, y, w, h, score};
}

GroundTruth make_gt(std::vector<int> image_ids, std::vector<GtAnnotation> anns, std::vector<int> cats = {1}) {
  GroundTruth gt;
  for (int id : image_ids) gt.images.push_back({id, std::to_string(id) + ".jpg", 640, 480});
  gt.annotations = std::move(anns);
  for (int c : cats) gt.categories.push_back({c, "c" + std::to_string(c)});
  return gt;
}

CocoMetrics eval(GroundTruth gt, const std::vector<CocoDetection>& dets) {
  CocoEvaluator ev(std::move(gt));
  Status s = ev.add_detections(dets);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  auto r = ev.evaluate();
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : CocoMetrics{};
}

// AP of the common "TP, FP, TP with 2 GT" ranking: precision envelope (1, 2/3, 2/3), recall (.5, .5, 1):
// recall points 0..0.50 (51 of them) take 1, points .51..1 (50) take 2/3.
const double kTpFpTpAp = (51.0 + 50.0 * 2.0 / 3.0) / 101.0;

TEST(CocoEvalTest, PerfectDetection) {
  auto m = eval(make_gt({1}, {gt_box(1, 1, 10, 10, 20, 20)}), {det(1, 1, 10, 10, 20, 20, 0.9)});
  EXPECT_DOUBLE_EQ(m.map, 1.0);
  EXPECT_DOUBLE_EQ(m.map50, 1.0);
  EXPECT_DOUBLE_EQ(m.map75, 1.0);
  EXPECT_DOUBLE_EQ(m.map_small, 1.0);  // area 400 < 32^2
  EXPECT_DOUBLE_EQ(m.map_medium, -1.0);
  EXPECT_DOUBLE_EQ(m.map_large, -1.0);
  EXPECT_DOUBLE_EQ(m.ar1, 1.0);
  EXPECT_DOUBLE_EQ(m.ar100, 1.0);
  EXPECT_DOUBLE_EQ(m.ar_medium, -1.0);
  EXPECT_EQ(m.num_images, 1);
  EXPECT_EQ(m.num_gt, 1);
  EXPECT_EQ(m.num_dets, 1);
  ASSERT_EQ(m.per_class_ap.size(), 1u);
  EXPECT_EQ(m.per_class_ap[0].first, 1);
  EXPECT_DOUBLE_EQ(m.per_class_ap[0].second, 1.0);
}

TEST(CocoEvalTest, FalsePositiveRankedAboveTruePositive) {
  // One GT: FP then TP -> precision (0, 1/2), envelope 1/2 everywhere, recall reaches 1.
  auto m = eval(make_gt({1}, {gt_box(1, 1, 10, 10, 20, 20)}),
                {det(1, 1, 300, 300, 20, 20, 0.9), det(1, 1, 10, 10, 20, 20, 0.8)});
  EXPECT_NEAR(m.map, 0.5, 1e-12);
  EXPECT_NEAR(m.map50, 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(m.ar100, 1.0);
  EXPECT_DOUBLE_EQ(m.ar1, 0.0);  // only the FP is within maxDets=1

  // Two GT: TP, FP, TP.
  auto m2 = eval(
      make_gt({1}, {gt_box(1, 1, 10, 10, 20, 20), gt_box(1, 1, 100, 100, 20, 20)}),
      {det(1, 1, 10, 10, 20, 20, 0.9), det(1, 1, 300, 300, 20, 20, 0.8), det(1, 1, 100, 100, 20, 20, 0.7)});
  EXPECT_NEAR(m2.map, kTpFpTpAp, 1e-12);
  EXPECT_NEAR(m2.map50, kTpFpTpAp, 1e-12);
  EXPECT_DOUBLE_EQ(m2.ar1, 0.5);
  EXPECT_DOUBLE_EQ(m2.ar10, 1.0);
}

TEST(CocoEvalTest, DuplicateDetectionIsFalsePositive) {
  // Second detection of GT A (score .8) ranks between the two TPs: TP, FP, TP.
  auto m = eval(
      make_gt({1}, {gt_box(1, 1, 10, 10, 20, 20), gt_box(1, 1, 100, 100, 20, 20)}),
      {det(1, 1, 10, 10, 20, 20, 0.9), det(1, 1, 11, 10, 20, 20, 0.8), det(1, 1, 100, 100, 20, 20, 0.7)});
  EXPECT_NEAR(m.map50, kTpFpTpAp, 1e-12);
  // The duplicate has IoU 380/420 = 0.905 with A: at thresholds .50-.90 the first det is the one
  // matched (greedy by score), so every threshold sees the same ranking.
  EXPECT_NEAR(m.map, kTpFpTpAp, 1e-12);
}

TEST(CocoEvalTest, ImageWithGtAndNoDetections) {
  // Recall stops at 1/2: points 0..0.50 take precision 1, the rest 0.
  auto m = eval(make_gt({1, 2}, {gt_box(1, 1, 10, 10, 20, 20), gt_box(2, 1, 10, 10, 20, 20)}),
                {det(1, 1, 10, 10, 20, 20, 0.9)});
  EXPECT_NEAR(m.map, 51.0 / 101.0, 1e-12);
  EXPECT_DOUBLE_EQ(m.ar100, 0.5);
}

TEST(CocoEvalTest, ImageWithDetectionsAndNoGt) {
  // A higher-scored det on an image without GT is an FP ranked first.
  auto m = eval(make_gt({1, 2}, {gt_box(1, 1, 10, 10, 20, 20)}),
                {det(1, 1, 10, 10, 20, 20, 0.9), det(2, 1, 10, 10, 20, 20, 0.95)});
  EXPECT_NEAR(m.map, 0.5, 1e-12);
  // Ranked below the TP it costs nothing in the 101-point AP.
  auto m2 = eval(make_gt({1, 2}, {gt_box(1, 1, 10, 10, 20, 20)}),
                 {det(1, 1, 10, 10, 20, 20, 0.9), det(2, 1, 10, 10, 20, 20, 0.5)});
  EXPECT_DOUBLE_EQ(m2.map, 1.0);
}

TEST(CocoEvalTest, EmptyEverything) {
  auto m = eval(GroundTruth{}, {});
  EXPECT_DOUBLE_EQ(m.map, -1.0);
  EXPECT_DOUBLE_EQ(m.map50, -1.0);
  EXPECT_DOUBLE_EQ(m.ar100, -1.0);
  EXPECT_EQ(m.num_images, 0);
  EXPECT_TRUE(m.per_class_ap.empty());
  EXPECT_NE(format_summary(m).find("= -1.000"), std::string::npos);

  // Images and categories but no annotations or detections: still -1.
  auto m2 = eval(make_gt({1, 2}, {}, {1, 2}), {});
  EXPECT_DOUBLE_EQ(m2.map, -1.0);
  ASSERT_EQ(m2.per_class_ap.size(), 2u);
  EXPECT_DOUBLE_EQ(m2.per_class_ap[1].second, -1.0);

  // GT but no detections: 0, not -1.
  auto m3 = eval(make_gt({1}, {gt_box(1, 1, 10, 10, 20, 20)}), {});
  EXPECT_DOUBLE_EQ(m3.map, 0.0);
  EXPECT_DOUBLE_EQ(m3.ar100, 0.0);
}

TEST(CocoEvalTest, CategoriesWithoutGtAreExcluded) {
  // Category 2 has only FPs and no GT: -1, not part of the mean. Category 3: AP 1/2.
  auto m = eval(make_gt({1}, {gt_box(1, 1, 10, 10, 20, 20), gt_box(1, 3, 50, 50, 20, 20)}, {1, 2, 3}),
                {det(1, 1, 10, 10, 20, 20, 0.9), det(1, 2, 10, 10, 20, 20, 0.9),
                 det(1, 3, 200, 200, 20, 20, 0.9), det(1, 3, 50, 50, 20, 20, 0.8)});
  EXPECT_NEAR(m.map, 0.75, 1e-12);
  ASSERT_EQ(m.per_class_ap.size(), 3u);
  EXPECT_EQ(m.per_class_ap[1].first, 2);
  EXPECT_DOUBLE_EQ(m.per_class_ap[0].second, 1.0);
  EXPECT_DOUBLE_EQ(m.per_class_ap[1].second, -1.0);
  EXPECT_NEAR(m.per_class_ap[2].second, 0.5, 1e-12);
  EXPECT_NEAR(m.per_class_ap50[2].second, 0.5, 1e-12);
  // Detections of a category the GT does not list are ignored.
  auto m2 = eval(make_gt({1}, {gt_box(1, 1, 10, 10, 20, 20)}),
                 {det(1, 7, 10, 10, 20, 20, 0.99), det(1, 1, 10, 10, 20, 20, 0.9)});
  EXPECT_DOUBLE_EQ(m2.map, 1.0);
}

TEST(CocoEvalTest, AreaRanges) {
  // GT small (100), medium (2500), large (10000); detections hit small (.9) and large (.8).
  auto gt = make_gt(
      {1}, {gt_box(1, 1, 0, 0, 10, 10), gt_box(1, 1, 100, 100, 50, 50), gt_box(1, 1, 300, 300, 100, 100)});
  auto m = eval(gt, {det(1, 1, 0, 0, 10, 10, 0.9), det(1, 1, 300, 300, 100, 100, 0.8)});
  // all: recall 1/3, 2/3 at precision 1 -> points 0..0.66 (67) take 1.
  EXPECT_NEAR(m.map, 67.0 / 101.0, 1e-12);
  EXPECT_DOUBLE_EQ(m.map_small, 1.0);
  EXPECT_DOUBLE_EQ(m.map_medium, 0.0);  // dets matched to out-of-range GT are ignored
  EXPECT_DOUBLE_EQ(m.map_large, 1.0);
  EXPECT_NEAR(m.ar100, 2.0 / 3.0, 1e-12);
  EXPECT_DOUBLE_EQ(m.ar_small, 1.0);
  EXPECT_DOUBLE_EQ(m.ar_medium, 0.0);
  EXPECT_DOUBLE_EQ(m.ar_large, 1.0);
}

TEST(CocoEvalTest, AreaRangeIgnoresUnmatchedOutOfRangeDetsAndBoundsAreInclusive) {
  // Small GT; a large unmatched det ranks first: FP for 'all', ignored for 'small'.
  auto m = eval(make_gt({1}, {gt_box(1, 1, 0, 0, 10, 10)}),
                {det(1, 1, 200, 200, 100, 100, 0.9), det(1, 1, 0, 0, 10, 10, 0.8)});
  EXPECT_NEAR(m.map, 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(m.map_small, 1.0);
  // A 32x32 GT has area exactly 32^2: both small and medium.
  auto m2 = eval(make_gt({1}, {gt_box(1, 1, 0, 0, 32, 32)}), {det(1, 1, 0, 0, 32, 32, 0.9)});
  EXPECT_DOUBLE_EQ(m2.map_small, 1.0);
  EXPECT_DOUBLE_EQ(m2.map_medium, 1.0);
  EXPECT_DOUBLE_EQ(m2.map_large, -1.0);
}

TEST(CocoEvalTest, MaxDetsTruncatesPerImage) {
  auto gt =
      make_gt({1, 2}, {gt_box(1, 1, 0, 0, 10, 10), gt_box(1, 1, 50, 50, 10, 10), gt_box(2, 1, 0, 0, 10, 10)});
  std::vector<CocoDetection> dets;
  // Image 1: 100 FPs scored 0.9 and the two TPs scored 0.5 -> beyond maxDets=100.
  for (int i = 0; i < 100; ++i)
    dets.push_back(det(1, 1, 100 + 12 * (i % 40), 100 + 12 * (i / 40), 10, 10, 0.9));
  dets.push_back(det(1, 1, 0, 0, 10, 10, 0.5));
  dets.push_back(det(1, 1, 50, 50, 10, 10, 0.5));
  // Image 2: its TP scored lowest overall but within its own image's top 1.
  dets.push_back(det(2, 1, 0, 0, 10, 10, 0.1));
  auto m = eval(gt, dets);
  EXPECT_NEAR(m.ar100, 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(m.ar1, 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(m.ar10, 1.0 / 3.0, 1e-12);
  // 101 ranked dets: 100 FPs then the TP -> precision 1/101 at recall 1/3 (points 0..0.33).
  EXPECT_NEAR(m.map, 34.0 / 101.0 * (1.0 / 101.0), 1e-12);

  // Two TPs in one image: maxDets=1 sees only the best.
  auto m2 = eval(make_gt({1}, {gt_box(1, 1, 0, 0, 10, 10), gt_box(1, 1, 50, 50, 10, 10)}),
                 {det(1, 1, 0, 0, 10, 10, 0.9), det(1, 1, 50, 50, 10, 10, 0.8)});
  EXPECT_DOUBLE_EQ(m2.ar1, 0.5);
  EXPECT_DOUBLE_EQ(m2.ar10, 1.0);
  EXPECT_DOUBLE_EQ(m2.ar100, 1.0);
  EXPECT_DOUBLE_EQ(m2.map, 1.0);
}

TEST(CocoEvalTest, IouThresholdBoundaries) {
  // IoU 70/100 = 0.7 exactly: a match at thresholds .50,.55,.60,.65,.70 (5 of 10).
  auto m = eval(make_gt({1}, {gt_box(1, 1, 0, 0, 10, 10)}), {det(1, 1, 0, 0, 10, 7, 0.9)});
  EXPECT_NEAR(m.map, 5.0 / 10.0 * 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(m.map50, 1.0);
  EXPECT_DOUBLE_EQ(m.map75, 0.0);
  EXPECT_NEAR(m.ar100, 0.5, 1e-12);

  // With a second, exact TP ranked first: thresholds <= .70 give AP 1; above, TP then FP with
  // 2 GT gives recall .5 at precision 1 -> 51/101.
  auto m2 = eval(make_gt({1}, {gt_box(1, 1, 0, 0, 10, 10), gt_box(1, 1, 50, 50, 10, 10)}),
                 {det(1, 1, 50, 50, 10, 10, 0.95), det(1, 1, 0, 0, 10, 7, 0.9)});
  EXPECT_NEAR(m2.map, (5 * 1.0 + 5 * 51.0 / 101.0) / 10.0, 1e-12);
  EXPECT_NEAR(m2.ar100, 0.75, 1e-12);

  // IoU 49/100: unmatched at every threshold.
  auto m3 = eval(make_gt({1}, {gt_box(1, 1, 0, 0, 10, 10)}), {det(1, 1, 0, 0, 10, 4.9, 0.9)});
  EXPECT_DOUBLE_EQ(m3.map50, 0.0);
}

TEST(CocoEvalTest, CrowdRegions) {
  // Regular GT A; crowd region C (ignored, IoU = intersection / det area, matches repeatedly).
  auto gt = make_gt({1}, {gt_box(1, 1, 0, 0, 10, 10), gt_box(1, 1, 50, 50, 50, 50, /*crowd=*/true)});
  // Two dets inside C (IoU 1 with C) and one half inside (IoU .5), ranked above the TP.
  auto m = eval(gt, {det(1, 1, 45, 60, 10, 10, 0.97), det(1, 1, 60, 60, 10, 10, 0.95),
                     det(1, 1, 0, 0, 10, 10, 0.9), det(1, 1, 70, 70, 10, 10, 0.85)});
  // .50: the half-inside det is ignored -> AP 1; >= .55 it is an FP ranked first -> AP .5.
  EXPECT_NEAR(m.map50, 1.0, 1e-12);
  EXPECT_NEAR(m.map, (1.0 + 9 * 0.5) / 10.0, 1e-12);
  EXPECT_EQ(m.num_gt, 2);

  // A det overlapping a regular GT (IoU .6) inside a crowd region (IoU 1) prefers the regular
  // GT while IoU >= threshold (.50-.60), then falls to the crowd (ignored): AP 1,1,1,0...
  auto gt2 = make_gt({1}, {gt_box(1, 1, 0, 0, 10, 10), gt_box(1, 1, 0, 0, 100, 100, true)});
  auto m2 = eval(gt2, {det(1, 1, 0, 0, 10, 6, 0.9)});
  EXPECT_NEAR(m2.map, 0.3, 1e-12);
  EXPECT_NEAR(m2.ar100, 0.3, 1e-12);
}

TEST(CocoEvalTest, SummaryFormatMatchesPycocotools) {
  auto m = eval(make_gt({1}, {gt_box(1, 1, 10, 10, 20, 20)}), {det(1, 1, 10, 10, 20, 20, 0.9)});
  std::string s = format_summary(m);
  const char* expected =
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000\n"
      " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 1.000\n"
      " Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 1.000\n"
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 1.000\n"
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000\n"
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 1.000\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 1.000\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 1.000\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000\n";
  EXPECT_EQ(s, expected);
}

TEST(CocoEvalTest, DetectionsFromYoloClassesAndErrors) {
  CocoEvaluator ev(make_gt({139}, {gt_box(139, 13, 10, 10, 20, 20)}, {1, 13}));
  // class 11 is COCO category 13 (stop sign).
  std::vector<Detection> dets = {{10, 10, 30, 30, 0.9f, 11}};
  ASSERT_TRUE(ev.add_detections(139, dets, coco80_to_coco91()).is_ok());
  ASSERT_EQ(ev.detections().size(), 1u);
  EXPECT_EQ(ev.detections()[0].category_id, 13);
  EXPECT_DOUBLE_EQ(ev.detections()[0].w, 20.0);
  EXPECT_EQ(ev.add_detections(140, dets, coco80_to_coco91()).code(), StatusCode::kInvalidArgument);
  std::vector<Detection> bad = {{0, 0, 1, 1, 0.5f, 80}};
  EXPECT_EQ(ev.add_detections(139, bad, coco80_to_coco91()).code(), StatusCode::kInvalidArgument);
  auto m = ev.evaluate();
  ASSERT_TRUE(m.is_ok());
  EXPECT_DOUBLE_EQ(m->map, 1.0);
  EXPECT_EQ(m->num_dets, 1);
}

TEST(CocoEvalTest, Coco80ToCoco91Table) {
  const auto& t = coco80_to_coco91();
  ASSERT_EQ(t.size(), 80u);
  EXPECT_EQ(t[0], 1);
  EXPECT_EQ(t[11], 13);
  EXPECT_EQ(t[24], 27);
  EXPECT_EQ(t[58], 64);  // potted plant
  EXPECT_EQ(t[79], 90);
  for (size_t i = 1; i < t.size(); ++i) EXPECT_LT(t[i - 1], t[i]);
  // The gaps of the 91-id scheme.
  for (int missing : {12, 26, 29, 30, 45, 66, 68, 69, 71, 83})
    EXPECT_EQ(std::count(t.begin(), t.end(), missing), 0) << missing;
}

// ---- files ------------------------------------------------------------------------------------

class CocoFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qyolo_coco_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
            "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  fs::path dir_;
};

TEST_F(CocoFilesTest, LoadsCocoJson) {
  write(dir_ / "gt.json", R"({"images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 50}],
    "annotations": [{"id": 900100000257, "image_id": 7, "category_id": 2, "bbox": [1, 2, 3.5, 4], "area": 12.5,
                     "iscrowd": 1},
                    {"id": 4, "image_id": 7, "category_id": 1, "bbox": [0, 0, 10, 10]}],
    "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}]})");
  auto gt = load_coco_json((dir_ / "gt.json").string());
  ASSERT_TRUE(gt.is_ok()) << gt.status().to_string();
  ASSERT_EQ(gt->images.size(), 1u);
  EXPECT_EQ(gt->images[0].id, 7);
  EXPECT_EQ(gt->images[0].file_name, "a.jpg");
  EXPECT_EQ(gt->images[0].width, 100);
  ASSERT_EQ(gt->annotations.size(), 2u);
  EXPECT_EQ(gt->annotations[0].id, 900100000257);  // COCO's crowd annotations: ids past 2^31
  EXPECT_DOUBLE_EQ(gt->annotations[0].w, 3.5);
  EXPECT_DOUBLE_EQ(gt->annotations[0].area, 12.5);
  EXPECT_TRUE(gt->annotations[0].iscrowd);
  EXPECT_DOUBLE_EQ(gt->annotations[1].area, 100.0);  // default w*h
  EXPECT_FALSE(gt->annotations[1].iscrowd);
  ASSERT_EQ(gt->categories.size(), 2u);
  EXPECT_EQ(gt->categories[1].name, "bicycle");
}

TEST_F(CocoFilesTest, CocoJsonErrors) {
  EXPECT_EQ(load_coco_json((dir_ / "missing.json").string()).status().code(), StatusCode::kNotFound);
  write(dir_ / "bad.json", "{\"images\": [");
  auto bad = load_coco_json((dir_ / "bad.json").string());
  EXPECT_EQ(bad.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(bad.status().message().find("bad.json"), std::string::npos);
  write(dir_ / "orphan.json",
        R"({"images": [{"id": 1}], "annotations": [{"image_id": 2, "category_id": 1, "bbox": [0,0,1,1]}]})");
  auto orphan = load_coco_json((dir_ / "orphan.json").string());
  EXPECT_EQ(orphan.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(orphan.status().message().find("image_id 2"), std::string::npos);
  write(
      dir_ / "bbox.json",
      R"({"images": [{"id": 1}], "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0,0,"x",1]}]})");
  EXPECT_EQ(load_coco_json((dir_ / "bbox.json").string()).status().code(), StatusCode::kCorrupt);
}

TEST_F(CocoFilesTest, LoadsYoloLabels) {
  write(dir_ / "images/000000000042.jpg", "");
  write(dir_ / "images/000000000007.png", "");
  write(dir_ / "images/notes.txt", "");  // not an image
  write(dir_ / "labels/000000000042.txt", "3 0.5 0.25 0.1 0.5\n\n0 0.1 0.1 0.2 0.2\n");
  // 000000000007 has no label file: an image without objects.
  auto size = [](const std::string& path) -> Result<std::pair<int, int>> {
    if (fs::path(path).filename() == "000000000042.jpg") return std::pair<int, int>{200, 100};
    return std::pair<int, int>{64, 48};
  };
  auto gt = load_yolo_labels((dir_ / "images").string(), (dir_ / "labels").string(), size);
  ASSERT_TRUE(gt.is_ok()) << gt.status().to_string();
  ASSERT_EQ(gt->images.size(), 2u);
  EXPECT_EQ(gt->images[0].id, 7);
  EXPECT_EQ(gt->images[1].id, 42);
  EXPECT_EQ(gt->images[1].width, 200);
  ASSERT_EQ(gt->annotations.size(), 2u);
  const auto& a = gt->annotations[0];
  EXPECT_EQ(a.image_id, 42);
  EXPECT_EQ(a.category_id, 3);
  EXPECT_NEAR(a.x, 90.0, 1e-9);  // (0.5 - 0.05) * 200
  EXPECT_NEAR(a.y, 0.0, 1e-9);   // (0.25 - 0.25) * 100
  EXPECT_NEAR(a.w, 20.0, 1e-9);
  EXPECT_NEAR(a.h, 50.0, 1e-9);
  EXPECT_NEAR(a.area, 1000.0, 1e-9);
  ASSERT_EQ(gt->categories.size(), 2u);
  EXPECT_EQ(gt->categories[0].id, 0);
  EXPECT_EQ(gt->categories[1].id, 3);

  write(dir_ / "labels/000000000007.txt", "1 0.5 0.5 0.1\n");
  auto bad = load_yolo_labels((dir_ / "images").string(), (dir_ / "labels").string(), size);
  EXPECT_EQ(bad.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(bad.status().message().find("000000000007.txt:1"), std::string::npos);

  auto fail = [](const std::string& path) -> Result<std::pair<int, int>> {
    return io_error("cannot decode");
  };
  EXPECT_FALSE(load_yolo_labels((dir_ / "images").string(), (dir_ / "labels").string(), fail).is_ok());
  EXPECT_EQ(load_yolo_labels((dir_ / "nope").string(), (dir_ / "labels").string(), size).status().code(),
            StatusCode::kNotFound);
}

TEST_F(CocoFilesTest, ResultsJsonRoundTrip) {
  std::vector<CocoDetection> dets = {det(1, 18, 1.5, 2.25, 30, 40.125, 0.875), det(3, 1, 0, 0, 1, 1, 0.001)};
  std::string path = (dir_ / "results.json").string();
  ASSERT_TRUE(write_coco_results_json(path, dets).is_ok());
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  auto back = load_coco_results_json(path);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].image_id, 1);
  EXPECT_EQ((*back)[0].category_id, 18);
  EXPECT_DOUBLE_EQ((*back)[0].y, 2.25);
  EXPECT_DOUBLE_EQ((*back)[0].h, 40.125);
  EXPECT_DOUBLE_EQ((*back)[0].score, 0.875);
  EXPECT_DOUBLE_EQ((*back)[1].score, 0.001);
  EXPECT_FALSE(write_coco_results_json((dir_ / "no/such/dir/r.json").string(), dets).is_ok());
}

// ---- shared val500 ------------------------------------------------------------------------------

TEST(CocoVal500Test, JsonAndYoloLabelsAgree) {
  QYOLO_REQUIRE_SHARED("data/val500/instances.json");
  QYOLO_REQUIRE_SHARED("data/val500/labels");
  const fs::path root = ::qyolo::testing::shared_dir() / "data/val500";
  auto gt = load_coco_json((root / "instances.json").string());
  ASSERT_TRUE(gt.is_ok()) << gt.status().to_string();
  EXPECT_EQ(gt->images.size(), 500u);
  EXPECT_EQ(gt->categories.size(), 80u);

  // Image sizes from the json, so no decoder is needed.
  std::map<std::string, std::pair<int, int>> sizes;
  for (const auto& im : gt->images) sizes[im.file_name] = {im.width, im.height};
  auto size = [&](const std::string& path) -> Result<std::pair<int, int>> {
    auto it = sizes.find(fs::path(path).filename().string());
    if (it == sizes.end()) return not_found("no size for " + path);
    return it->second;
  };
  auto yolo = load_yolo_labels((root / "images").string(), (root / "labels").string(), size);
  ASSERT_TRUE(yolo.is_ok()) << yolo.status().to_string();
  ASSERT_EQ(yolo->images.size(), 500u);
  EXPECT_EQ(yolo->annotations.size(), gt->annotations.size());

  std::map<int, int> json_count, yolo_count;
  for (const auto& a : gt->annotations) ++json_count[a.image_id];
  for (const auto& a : yolo->annotations) ++yolo_count[a.image_id];
  for (const auto& im : gt->images) EXPECT_EQ(json_count[im.id], yolo_count[im.id]) << "image " << im.id;

  // The YOLO boxes, mapped to COCO ids and used as detections against the json, score mAP 1.
  CocoEvaluator ev(*gt);
  std::vector<CocoDetection> dets;
  for (const auto& a : yolo->annotations) {
    ASSERT_LT(a.category_id, 80);
    dets.push_back(det(a.image_id, coco80_to_coco91()[a.category_id], a.x, a.y, a.w, a.h, 1.0));
  }
  ASSERT_TRUE(ev.add_detections(dets).is_ok());
  auto m = ev.evaluate();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_NEAR(m->map, 1.0, 1e-9);
  EXPECT_NEAR(m->ar100, 1.0, 1e-9);
  EXPECT_EQ(m->num_images, 500);
  EXPECT_EQ(m->num_gt, static_cast<int>(gt->annotations.size()));
}

}  // namespace
}  // namespace qyolo
