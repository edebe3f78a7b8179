// `qyolo eval --results`: COCO mAP of saved detections (COCO results json), several files merged.
// These run the real `qyolo` binary, plus load_coco_results_files directly.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "eval/coco_eval.h"
#include "cli_runner.h"
#include "test_support.h"

namespace fs = std::filesystem;
using nlohmann::json;
using qyolo::testing::shared_dir;

using qyolo::testing::CliResult;
using qyolo::testing::run_cli;

namespace {

json read_json(const std::string& path) {
  std::ifstream f(path);
  return json::parse(f, nullptr, /*allow_exceptions=*/false);
}

// The output without the line that says where the detections came from (speed or results files).
std::string without_source_line(const std::string& out) {
  std::istringstream in(out);
  std::string line, kept;
  while (std::getline(in, line))
    if (line.rfind("speed: ", 0) != 0 && line.rfind("detections: from results files", 0) != 0) kept += line + "\n";
  return kept;
}

// The --json summary fields that depend only on the detections and the ground truth.
const char* const kMetricKeys[] = {"images", "map50_95", "map50", "map75", "map_small", "map_medium",
                                   "map_large", "ar1", "ar10", "ar100", "per_class"};

// AP of "TP, FP, TP with 2 GT" (see test_coco_eval.cpp): envelope (1, 2/3, 2/3), recall (.5, .5, 1).
const double kTpFpTpAp = (51.0 + 50.0 * 2.0 / 3.0) / 101.0;

class EvalResults : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qyolo_evalres_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "ds/images");  // results mode reads no image
    // Images 101 (a.jpg) and 102 (b.jpg): one person each; 103 (c.jpg): one dog.
    write("ds/instances.json", R"({
      "images": [{"id": 101, "file_name": "a.jpg", "width": 640, "height": 480},
                 {"id": 102, "file_name": "b.jpg", "width": 640, "height": 480},
                 {"id": 103, "file_name": "c.jpg", "width": 640, "height": 480}],
      "annotations": [{"id": 1, "image_id": 101, "category_id": 1, "bbox": [10, 10, 20, 20]},
                      {"id": 2, "image_id": 102, "category_id": 1, "bbox": [10, 10, 20, 20]},
                      {"id": 3, "image_id": 103, "category_id": 18, "bbox": [50, 50, 40, 40]}],
      "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]})");
    // Person: TP (.9, image 101), FP (.8, image 102), TP (.7, image 102). Dog: one FP.
    const std::string tp101 = R"({"image_id": 101, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9})";
    const std::string fp102 = R"({"image_id": 102, "category_id": 1, "bbox": [300, 300, 20, 20], "score": 0.8})";
    const std::string tp102 = R"({"image_id": 102, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.7})";
    const std::string fp103 = R"({"image_id": 103, "category_id": 18, "bbox": [400, 400, 40, 40], "score": 0.5})";
    write("r1.json", "[" + tp101 + "]");
    write("r2.json", "[" + fp102 + ", " + fp103 + ", " + tp102 + "]");
    write("all.json", "[" + fp102 + ", " + tp101 + ", " + fp103 + ", " + tp102 + "]");
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return path(name);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string data() const { return " --data " + path("ds"); }
  void expect_clean_failure(const CliResult& r, const std::vector<std::string>& must_mention) {
    EXPECT_FALSE(r.signalled) << r.output;
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("qyolo eval: error"), std::string::npos) << r.output;
    for (const auto& s : must_mention)
      EXPECT_NE(r.output.find(s), std::string::npos) << "message should name '" << s << "': " << r.output;
  }
  fs::path dir_;
};

TEST_F(EvalResults, SplitFilesEqualOneMergedFileAndTheHandComputedAp) {
  auto split = run_cli("eval" + data() + " --results " + path("r1.json") + " --results " + path("r2.json") +
                       " --json " + path("split.json"));
  ASSERT_EQ(split.exit_code, 0) << split.output;
  auto merged = run_cli("eval" + data() + " --results " + path("all.json") + " --json " + path("merged.json"));
  ASSERT_EQ(merged.exit_code, 0) << merged.output;

  // No speed line: where the detections came from instead.
  EXPECT_EQ(split.output.find("speed:"), std::string::npos) << split.output;
  EXPECT_NE(split.output.find("detections: from results files " + path("r1.json") + " " + path("r2.json")),
            std::string::npos)
      << split.output;
  EXPECT_NE(split.output.find("images 3  gt boxes 3  detections 4"), std::string::npos) << split.output;
  EXPECT_NE(split.output.find("person"), std::string::npos) << split.output;  // per-class table
  EXPECT_EQ(without_source_line(split.output), without_source_line(merged.output));

  json s = read_json(path("split.json")), m = read_json(path("merged.json"));
  ASSERT_FALSE(s.is_discarded());
  ASSERT_FALSE(m.is_discarded());
  for (const char* k : kMetricKeys) EXPECT_EQ(s[k], m[k]) << k;
  EXPECT_EQ(s["results"], json({path("r1.json"), path("r2.json")}));
  EXPECT_EQ(m["results"], json({path("all.json")}));
  EXPECT_FALSE(s.contains("model"));
  EXPECT_FALSE(s.contains("images_per_s"));
  EXPECT_EQ(s["images"], 3);
  // Person: TP, FP, TP over 2 GT at every IoU threshold (exact boxes); dog: GT, only an FP.
  EXPECT_NEAR(s["per_class"]["person"]["ap"].get<double>(), kTpFpTpAp, 1e-12);
  EXPECT_NEAR(s["per_class"]["person"]["ap50"].get<double>(), kTpFpTpAp, 1e-12);
  EXPECT_DOUBLE_EQ(s["per_class"]["dog"]["ap"].get<double>(), 0.0);
  EXPECT_NEAR(s["map50_95"].get<double>(), kTpFpTpAp / 2, 1e-12);
  EXPECT_NEAR(s["map50"].get<double>(), kTpFpTpAp / 2, 1e-12);

  // --limit 2 keeps its meaning (a.jpg and b.jpg): the dog image and its detection drop out.
  auto limited = run_cli("eval" + data() + " --limit 2 -q --results " + path("r1.json") + " --results " +
                         path("r2.json") + " --json " + path("limited.json") + " --save-results " +
                         path("saved.json"));
  ASSERT_EQ(limited.exit_code, 0) << limited.output;
  EXPECT_NE(limited.output.find("images 2  gt boxes 2  detections 3"), std::string::npos) << limited.output;
  json l = read_json(path("limited.json"));
  EXPECT_EQ(l["images"], 2);
  EXPECT_NEAR(l["map50_95"].get<double>(), kTpFpTpAp, 1e-12);
  EXPECT_FALSE(l["per_class"].contains("dog"));
  // --save-results writes the merged detections that were evaluated.
  auto saved = qyolo::load_coco_results_json(path("saved.json"));
  ASSERT_TRUE(saved.is_ok()) << saved.status().to_string();
  EXPECT_EQ(saved->size(), 3u);

  // An image in no file has no detections: only r1 -> person TP, (FN on 102); dog 0.
  auto only_r1 = run_cli("eval" + data() + " -q --results " + path("r1.json") + " --json " + path("r1s.json"));
  ASSERT_EQ(only_r1.exit_code, 0) << only_r1.output;
  json o = read_json(path("r1s.json"));
  EXPECT_NEAR(o["per_class"]["person"]["ap"].get<double>(), 51.0 / 101.0, 1e-12);
  EXPECT_DOUBLE_EQ(o["per_class"]["dog"]["ap"].get<double>(), 0.0);
}

TEST_F(EvalResults, ImageInTwoFilesIsAnError) {
  write("r3.json", R"([{"image_id": 102, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.3}])");
  expect_clean_failure(run_cli("eval" + data() + " --results " + path("r2.json") + " --results " + path("r3.json")),
                       {"image id 102", path("r2.json"), path("r3.json")});
  // The same file twice.
  expect_clean_failure(run_cli("eval" + data() + " --results " + path("r1.json") + " --results " + path("r1.json")),
                       {"given twice", path("r1.json")});
}

TEST_F(EvalResults, UnknownImageIdIsAnError) {
  write("r9.json", R"([{"image_id": 101, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.3},
                       {"image_id": 999, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.2}])");
  expect_clean_failure(run_cli("eval" + data() + " --results " + path("r9.json")), {"image id 999", "r9.json"});
  // Also when --limit leaves image 101 out: the id is checked against the whole dataset.
  expect_clean_failure(run_cli("eval" + data() + " --limit 1 --results " + path("r9.json")), {"image id 999"});
}

TEST_F(EvalResults, MalformedFilesNameTheFile) {
  write("trunc.json", R"([{"image_id": 101, "category_id": 1, )");
  expect_clean_failure(run_cli("eval" + data() + " --results " + path("trunc.json")), {"trunc.json", "invalid JSON"});
  write("noscore.json", R"([{"image_id": 101, "category_id": 1, "bbox": [0, 0, 5, 5]}])");
  expect_clean_failure(run_cli("eval" + data() + " --results " + path("r1.json") + " --results " + path("noscore.json")),
                       {"noscore.json", "missing 'score'"});
  write("object.json", R"({"annotations": []})");
  expect_clean_failure(run_cli("eval" + data() + " --results " + path("object.json")), {"object.json", "array"});
  expect_clean_failure(run_cli("eval" + data() + " --results " + path("missing.json")), {"missing.json"});
}

TEST_F(EvalResults, ResultsWithAModelIsAnError) {
  expect_clean_failure(run_cli("eval" + data() + " --results " + path("r1.json") + " --model /some/model.onnx"),
                       {"--results", "--model"});
  expect_clean_failure(run_cli("eval" + data() + " --results " + path("r1.json") + " --engine x.qengine"),
                       {"--results", "--engine"});
  expect_clean_failure(run_cli("eval" + data() + " --results " + path("r1.json") + " --conf 0.25"), {"--conf"});
  // Without --results a model is still required.
  expect_clean_failure(run_cli("eval" + data()), {"--model"});
}

TEST(LoadCocoResultsFiles, MergesAndChecks) {
  const fs::path dir = fs::temp_directory_path() / ("qyolo_resfiles_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  qyolo::GroundTruth gt;
  gt.images = {{1, "a.jpg", 10, 10}, {2, "b.jpg", 10, 10}};
  const std::string a = (dir / "a.json").string(), b = (dir / "b.json").string(), c = (dir / "c.json").string();
  ASSERT_TRUE(qyolo::write_coco_results_json(a, {{1, 1, 0, 0, 2, 2, 0.5}, {1, 3, 0, 0, 2, 2, 0.4}}).is_ok());
  ASSERT_TRUE(qyolo::write_coco_results_json(b, {{2, 1, 1, 1, 2, 2, 0.6}}).is_ok());
  ASSERT_TRUE(qyolo::write_coco_results_json(c, {{2, 1, 1, 1, 2, 2, 0.6}, {5, 1, 1, 1, 2, 2, 0.6}}).is_ok());
  auto merged = qyolo::load_coco_results_files({a, b}, gt);
  ASSERT_TRUE(merged.is_ok()) << merged.status().to_string();
  ASSERT_EQ(merged->size(), 3u);
  EXPECT_EQ((*merged)[2].image_id, 2);
  EXPECT_TRUE(qyolo::load_coco_results_files({}, gt).is_ok());
  auto dup = qyolo::load_coco_results_files({a, b, c}, gt);
  EXPECT_EQ(dup.status().code(), qyolo::StatusCode::kInvalidArgument);
  EXPECT_NE(dup.status().message().find("image id 2 has detections in both " + b + " and " + c), std::string::npos)
      << dup.status().to_string();
  auto unknown = qyolo::load_coco_results_files({c}, gt, "val");
  EXPECT_NE(unknown.status().message().find("image id 5, which is not an image of val"), std::string::npos)
      << unknown.status().to_string();
  fs::remove_all(dir);
}

// A normal CPU eval and `--results` over its saved detections, split into two files, agree.
TEST(EvalResultsVal500, SameAsANormalEval) {
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  QYOLO_REQUIRE_SHARED("data/val500/instances.json");
  const fs::path dir = fs::temp_directory_path() / ("qyolo_evalres_val500_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto p = [&](const char* name) { return (dir / name).string(); };
  const std::string data = " --data " + (shared_dir() / "data/val500").string() + " --limit 6";
  auto normal = run_cli("eval -q --model " + (shared_dir() / "models/yolov5n.onnx").string() + data +
                            " --save-results " + p("dets.json") + " --json " + p("normal.json"),
                        /*with_stderr=*/false);
  ASSERT_EQ(normal.exit_code, 0) << normal.output;
  auto dets = qyolo::load_coco_results_json(p("dets.json"));
  ASSERT_TRUE(dets.is_ok()) << dets.status().to_string();
  ASSERT_FALSE(dets->empty());
  // Split by image: the lower half of the image ids to one file, the rest to the other.
  std::set<int> ids;
  for (const auto& d : *dets) ids.insert(d.image_id);
  ASSERT_GE(ids.size(), 2u);
  std::set<int> first(ids.begin(), std::next(ids.begin(), static_cast<long>(ids.size() / 2)));
  std::vector<qyolo::CocoDetection> d1, d2;
  for (const auto& d : *dets) (first.count(d.image_id) ? d1 : d2).push_back(d);
  ASSERT_TRUE(qyolo::write_coco_results_json(p("d2.json"), d2).is_ok());
  ASSERT_TRUE(qyolo::write_coco_results_json(p("d1.json"), d1).is_ok());
  auto from_files = run_cli("eval -q" + data + " --results " + p("d2.json") + " --results " + p("d1.json") +
                                " --json " + p("files.json"),
                            /*with_stderr=*/false);
  ASSERT_EQ(from_files.exit_code, 0) << from_files.output;
  EXPECT_EQ(without_source_line(normal.output), without_source_line(from_files.output));
  json n = read_json(p("normal.json")), f = read_json(p("files.json"));
  for (const char* k : kMetricKeys) EXPECT_EQ(n[k], f[k]) << k;
  EXPECT_GT(f["map50_95"].get<double>(), 0.0);
  fs::remove_all(dir);
}

}  // namespace
