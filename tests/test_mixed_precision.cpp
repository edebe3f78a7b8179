// Automatic mixed precision (src/quant/mixed_precision.h): the output error measure against
// hand-computed values, the exact-name regex, and the sensitivity ranking on a synthetic model in
// which one conv's activation range is made hostile.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>

#include "calib/calib_cache.h"
#include "onnx_builder.h"
#include "quant/mixed_precision.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::OnnxBuilder;

namespace {

Tensor make_tensor(const Shape& shape, const std::vector<float>& v) {
  Tensor t(DataType::kFloat32, shape);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

}  // namespace

TEST(OutputError, PerChannelNoiseToSignalAveraged) {
  // [1, 3, 2]: the last dim (2) is the channel. Channel 0 holds 1, 3, 5 (sum of squares 35), channel 1
  // holds 2, 4, 6 (56). Errors: 1 on one channel-0 element, 2 on one channel-1 element.
  OutputError e;
  ASSERT_TRUE(
      e.add(make_tensor({1, 3, 2}, {1, 2, 3, 4, 5, 6}), make_tensor({1, 3, 2}, {2, 2, 3, 6, 5, 6})).is_ok());
  EXPECT_NEAR(e.nsr(), (1.0 / 35 + 4.0 / 56) / 2, 1e-12);
  // YOLOv8-like [1, 2, 3]: channel is dim 1 (2 < 3). Channel 0 = 1, 2, 3 (14), channel 1 = 4, 5, 6 (77).
  OutputError v8;
  ASSERT_TRUE(
      v8.add(make_tensor({1, 2, 3}, {1, 2, 3, 4, 5, 6}), make_tensor({1, 2, 3}, {1, 2, 3, 4, 5, 7})).is_ok());
  EXPECT_NEAR(v8.nsr(), (0.0 / 14 + 1.0 / 77) / 2, 1e-12);
  OutputError same;
  ASSERT_TRUE(same.add(make_tensor({1, 2}, {3, 4}), make_tensor({1, 2}, {3, 4})).is_ok());
  EXPECT_EQ(same.nsr(), 0.0);
  EXPECT_FALSE(same.add(make_tensor({1, 2}, {3, 4}), make_tensor({2, 1}, {3, 4})).is_ok());
}

TEST(ExactNamesRegex, MatchesOnlyTheNamesGiven) {
  const std::string r = exact_names_regex({"/model.24/m.0/Conv", "/model.2/cv1/conv/Conv"});
  std::regex re(r, std::regex::ECMAScript);
  EXPECT_TRUE(std::regex_search("/model.24/m.0/Conv", re));
  EXPECT_TRUE(std::regex_search("/model.2/cv1/conv/Conv", re));
  EXPECT_FALSE(std::regex_search("/model.24/m.0/Conv_1", re));     // no prefix matches
  EXPECT_FALSE(std::regex_search("/model.2x/cv1/conv/Conv", re));  // '.' is literal
  EXPECT_FALSE(std::regex_search("x/model.24/m.0/Conv", re));
  EXPECT_EQ(exact_names_regex({}), "");
}

// x [1,4,8,8] -> conv_a (1x1, 4->4) -> a -> conv_b (1x1, 4->4) -> y. The cache gives x its true range
// but a a threshold 1/50 of a's range: a's values are clipped, so quantising conv_b alone must hurt
// the output far more than quantising conv_a alone.
TEST(LayerSensitivity, HostileRangeRanksFirst) {
  const fs::path dir = fs::temp_directory_path() / ("qyolo_mp_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  OnnxBuilder b;
  b.input("x", {1, 4, 8, 8});
  b.output("y", {1, 4, 8, 8});
  std::vector<float> wa(16), wb(16);
  for (auto& v : wa) v = u(rng);
  for (auto& v : wb) v = u(rng);
  b.initializer("wa", {4, 4, 1, 1}, wa);
  b.initializer("wb", {4, 4, 1, 1}, wb);
  b.node("Conv", {"x", "wa"}, {"a"}, "conv_a");
  b.node("Conv", {"a", "wb"}, {"y"}, "conv_b");
  const std::string model = (dir / "two_convs.onnx").string();
  {
    std::ofstream f(model, std::ios::binary);
    f << b.bytes();
  }
  std::vector<Tensor> images;
  float amax_a = 0;
  for (int i = 0; i < 2; ++i) {
    Tensor t(DataType::kFloat32, {1, 4, 8, 8});
    for (int64_t j = 0; j < t.numel(); ++j) t.data<float>()[j] = u(rng);
    images.push_back(t);
    // a = wa . x per pixel: its absmax, for the hostile threshold below.
    for (int p = 0; p < 64; ++p)
      for (int o = 0; o < 4; ++o) {
        float s = 0;
        for (int c = 0; c < 4; ++c) s += wa[o * 4 + c] * t.data<float>()[c * 64 + p];
        amax_a = std::max(amax_a, std::fabs(s));
      }
  }
  CalibrationTable table;
  table.algorithm = "MinMaxCalibration";
  table.scales = {{"x", 1.0f / 127}, {"a", amax_a / 50 / 127}};
  const std::string cache = (dir / "hostile.cache").string();
  ASSERT_TRUE(write_calibration_cache(cache, table).is_ok());
  BuildOptions o;
  o.precision = Precision::kInt8;
  o.calibration_file = cache;
  auto ranking = rank_layer_sensitivity(model, o, images);
  ASSERT_TRUE(ranking.is_ok()) << ranking.status().to_string();
  ASSERT_EQ(ranking->size(), 2u);
  EXPECT_EQ((*ranking)[0].node, "conv_b");
  EXPECT_EQ((*ranking)[1].node, "conv_a");
  EXPECT_GT((*ranking)[0].nsr, 100 * (*ranking)[1].nsr);
  EXPECT_GT((*ranking)[1].nsr, 0.0);          // conv_a in int8 still rounds
  EXPECT_LT((*ranking)[1].nsr, 1e-3);         // ... by about 1 / 127 of its range
  EXPECT_EQ((*ranking)[0].macs, 64 * 4 * 4);  // 8x8 pixels x 4 outputs x 4 inputs
  fs::remove_all(dir);
}

// The plan size on hand-made proxies (k -> proxy; budget 5 points: proxy >= 0.95).
TEST(PlanSize, FirstFewInOrderThenBinarySearch) {
  auto from = [](std::map<size_t, double> table, std::vector<size_t>* asked) {
    return [table, asked](size_t k) -> Result<double> {
      asked->push_back(k);
      auto it = table.upper_bound(k);  // the step function the table describes
      return std::prev(it)->second;
    };
  };
  std::vector<size_t> asked;
  // yolov5n's shape: one conv suffices, 15 do not (non-monotone), 16 and more do.
  auto k = plan_size_within_budget(60, from({{0, 0.9386}, {1, 0.9507}, {2, 0.94}, {16, 0.951}}, &asked), 5.0);
  ASSERT_TRUE(k.is_ok()) << k.status().to_string();
  EXPECT_EQ(*k, 1u);
  EXPECT_EQ(asked, (std::vector<size_t>{0, 1}));
  // Within the budget all-INT8: nothing in float.
  asked.clear();
  k = plan_size_within_budget(60, from({{0, 0.96}}, &asked), 5.0);
  ASSERT_TRUE(k.is_ok());
  EXPECT_EQ(*k, 0u);
  // Monotone, 23 needed: 1..4 in order, then bisection between 4 and 60.
  asked.clear();
  k = plan_size_within_budget(60, from({{0, 0.90}, {23, 0.955}}, &asked), 5.0);
  ASSERT_TRUE(k.is_ok());
  EXPECT_EQ(*k, 23u);
  ASSERT_GE(asked.size(), 6u);
  EXPECT_EQ((std::vector<size_t>(asked.begin(), asked.begin() + 5)), (std::vector<size_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(asked.back(), 23u);
  // Fewer convs than first_tried: the last is all float; a proxy that never gets there errors.
  asked.clear();
  EXPECT_EQ(*plan_size_within_budget(3, from({{0, 0.5}, {3, 1.0}}, &asked), 5.0), 3u);
  EXPECT_FALSE(plan_size_within_budget(3, from({{0, 0.5}}, &asked), 5.0).is_ok());
}
