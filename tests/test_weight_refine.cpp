// Weight-side PTQ (src/quant/weight_refine.h) and weight overrides (src/quant/weight_overrides.h):
// the clip search against a distribution whose optimum is known by hand, the INT8 conv lowering a
// clipped channel with scale alpha / 127, bias correction removing a hand-computed mean shift, and
// the overrides' file and engine-file round trips, and the weight/activation error split by hand.
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "calib/calib_cache.h"
#include "onnx_builder.h"
#include "quant/error_split.h"
#include "quant/quant_params.h"
#include "quant/weight_refine.h"
#include "qyolo/image.h"
#include "runtime/engine_impl.h"
#include "backends/cpu/conv2d_int8.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::OnnxBuilder;

namespace {

class TempDir {
 public:
  TempDir() : dir_(fs::temp_directory_path() / ("qyolo_refine_" + std::to_string(::getpid()))) {
    fs::create_directories(dir_);
  }
  ~TempDir() { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

 private:
  fs::path dir_;
};

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

// 63 weights exactly on the grid of s0 = alpha0 / 127 (k * s0, k = +-50 .. +-80 and 81) plus one
// outlier m = alpha0 * 200 / 199 (so alpha0 = m * 199 / 200 is a point of the 200-step search).
//  - alpha0: the grid weights round exactly; only the outlier clips: error (m - alpha0)^2 = (m / 200)^2.
//  - alpha = m: s = m / 127, k * s0 = k * s * 199 / 200 rounds to k (|k| * 0.005 < 0.5), each off
//    by |k| * s0 / 199: error s0^2 / 199^2 * sum k^2 (sum k^2 = 273471: about 17 (m/200)^2).
//  - alpha < alpha0 (the next point down and below): the outlier alone costs >= (2 m / 200)^2.
// So the search must return alpha0.
struct OutlierChannel {
  std::vector<float> w;
  float alpha0 = 0, m = 0;
};
OutlierChannel outlier_channel() {
  OutlierChannel c;
  c.m = 1.0f;
  c.alpha0 = static_cast<float>(static_cast<double>(c.m) * 199 / 200);
  const float s0 = scale_from_amax(c.alpha0);
  for (int k = 50; k <= 80; ++k) {
    c.w.push_back(s0 * static_cast<float>(k));
    c.w.push_back(-s0 * static_cast<float>(k));
  }
  c.w.push_back(s0 * 81.f);
  c.w.push_back(c.m);
  return c;
}

}  // namespace

TEST(WeightClip, FindsTheHandComputedOptimum) {
  const OutlierChannel c = outlier_channel();
  ASSERT_EQ(c.w.size(), 64u);
  const double clip_err = std::pow(static_cast<double>(c.m) - c.alpha0, 2);
  // At alpha0 only the outlier errs.
  EXPECT_NEAR(clipped_weight_error(c.w, c.alpha0), clip_err, 1e-8);
  // At alpha = m every grid weight is off by |k| s0 / 199 (sum k^2 = 2 * (80*81*161 - 49*50*99) / 6
  // + 81^2 = 273471).
  const double s0 = scale_from_amax(c.alpha0);
  EXPECT_NEAR(clipped_weight_error(c.w, c.m), s0 * s0 / (199.0 * 199.0) * 273471, 2e-7);
  EXPECT_GT(clipped_weight_error(c.w, c.m), 10 * clip_err);
  EXPECT_EQ(mse_weight_clip(c.w, 200), c.alpha0);
}

TEST(WeightClip, NoClipWhenMaxAbsIsExact) {
  // Every weight is +-m or 0: alpha = m rounds all exactly, any smaller alpha clips.
  const std::vector<float> w = {0.5f, -0.5f, 0.f, 0.5f};
  EXPECT_EQ(clipped_weight_error(w, 0.5f), 0.0);
  EXPECT_EQ(mse_weight_clip(w), 0.5f);
  EXPECT_EQ(mse_weight_clip(std::vector<float>{0.f, 0.f}), 0.f);
}

TEST(WeightClip, FakeQuantizeIsPerOutputChannel) {
  // Channel 0: max 1, s = 1/127: 0.3 -> round(38.1) = 38. Channel 1: max 0.01, s = 0.01/127:
  // 0.003 -> round(38.1) = 38: each channel on its own grid.
  Tensor w = Tensor::from_vector<float>({2, 2, 1, 1}, {1.f, 0.3f, 0.01f, 0.003f});
  Tensor q = fake_quantize_weights(w);
  const float s0 = scale_from_amax(1.0), s1 = scale_from_amax(0.01);
  EXPECT_EQ(q.data<float>()[0], 127 * s0);
  EXPECT_EQ(q.data<float>()[1], 38 * s0);
  EXPECT_EQ(q.data<float>()[2], 127 * s1);
  EXPECT_EQ(q.data<float>()[3], 38 * s1);
}

// A 1x1 conv (64 -> 1) whose weights are the outlier channel, fed one-hot inputs of 1.0 (exact
// with the input scale 1/127): output pixel p is the INT8 conv's weight p. Clipped, the INT8 conv
// must lower weight p = k s0 exactly and the outlier as alpha0 (scale alpha0 / 127).
TEST(WeightClip, Int8ConvLowersTheClippedChannel) {
  TempDir dir;
  const OutlierChannel c = outlier_channel();
  OnnxBuilder b;
  b.input("x", {1, 64, 8, 8});
  b.output("y", {1, 1, 8, 8});
  b.initializer("w", {1, 64, 1, 1}, c.w);
  b.node("Conv", {"x", "w"}, {"y"}, "conv");
  const std::string model = dir.path("clip.onnx");
  write_file(model, b.bytes());
  CalibrationTable table;
  table.algorithm = "MinMaxCalibration";
  table.scales = {{"x", scale_from_amax(1.0)}};
  const std::string cache = dir.path("clip.cache");
  ASSERT_TRUE(write_calibration_cache(cache, table).is_ok());
  BuildOptions o;
  o.precision = Precision::kInt8;
  o.calibration_file = cache;
  auto plain = Engine::build(model, o);
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
  ClipReport rep;
  auto w = clip_int8_weights(**plain, {}, &rep);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_EQ(rep.convs, 1);
  EXPECT_EQ(rep.channels_clipped, 1);
  ASSERT_EQ(w->size(), 1u);
  auto clipped = build_engine_with_weights(model, o, *w);
  ASSERT_TRUE(clipped.is_ok()) << clipped.status().to_string();

  Tensor x(DataType::kFloat32, {1, 64, 8, 8});
  for (int p = 0; p < 64; ++p) x.data<float>()[p * 64 + p] = 1.f;  // channel p, pixel p
  Tensor y_plain, y_clip;
  ASSERT_TRUE((*(*plain)->create_context())->run(x, y_plain).is_ok());
  ASSERT_TRUE((*(*clipped)->create_context())->run(x, y_clip).is_ok());
  const float s0 = scale_from_amax(c.alpha0), s_max = scale_from_amax(c.m);
  // The weight the CPU computes with for grid point q (q itself with VNNI; else the 7-bit grid).
  auto as_computed = [](float q) { return static_cast<float>(cpu::int8_conv_effective_weight(static_cast<int8_t>(q))); };
  for (int p = 0; p < 63; ++p) {
    // Exact grid weights k s0.
    EXPECT_NEAR(y_clip.data<float>()[p], as_computed(std::nearbyint(c.w[static_cast<size_t>(p)] / s0)) * s0, 1e-6)
        << p;
    // Unclipped: k s0 on the grid of s_max rounds to k s_max, |k| * s0 / 199 away.
    EXPECT_NEAR(y_plain.data<float>()[p], as_computed(std::nearbyint(c.w[static_cast<size_t>(p)] / s_max)) * s_max,
                1e-6)
        << p;
  }
  EXPECT_NEAR(y_clip.data<float>()[63], as_computed(127) * s0, 1e-6);  // the outlier, clipped to alpha0
  EXPECT_NEAR(y_plain.data<float>()[63], as_computed(127) * s_max, 1e-6);  // c.m = 127 s_max
}

// Bias correction on a constant image: x = 128/255 everywhere, input scale 1/127, so the INT8 conv
// reads round(63.749...) / 127 = 64/127 instead of 128/255, a shift of d = 64/127 - 128/255 per
// input channel. y = 0.25 (x_r + x_g + x_b) + 0.1 (weights exact in int8: 0.25 is the channel max),
// so E[y_int8 - y_fp32] = 0.75 d, and after one correction the INT8 output equals FP32.
TEST(BiasCorrection, RemovesAHandComputedMeanShift) {
  TempDir dir;
  OnnxBuilder b;
  b.input("images", {1, 3, 16, 16});
  b.output("y", {1, 1, 16, 16});
  b.initializer("w", {1, 3, 1, 1}, {0.25f, 0.25f, 0.25f});
  b.initializer("b", {1}, {0.1f});
  b.node("Conv", {"images", "w", "b"}, {"y"}, "conv");
  const std::string model = dir.path("bias.onnx");
  write_file(model, b.bytes());
  CalibrationTable table;
  table.algorithm = "MinMaxCalibration";
  table.scales = {{"images", scale_from_amax(1.0)}};
  const std::string cache = dir.path("bias.cache");
  ASSERT_TRUE(write_calibration_cache(cache, table).is_ok());
  ASSERT_TRUE(save_png(dir.path("gray.png"), Image(16, 16, 128)).is_ok());
  BuildOptions o;
  o.precision = Precision::kInt8;
  o.calibration_file = cache;
  BiasCorrectionReport rep;
  auto w = correct_biases(model, o, {}, {dir.path("gray.png")}, 16, 16, 1, /*measure_after=*/true, &rep);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  // The weights 0.25 are q = 127 on their grid, computed as 127 (or 128 where the CPU halves them:
  // cpu::int8_conv_effective_weight), so the INT8 conv reads x times k = q_eff / 127.
  const double k = cpu::int8_conv_effective_weight(127) / 127.0;
  const double d = 64.0 / 127 * k - 128.0 / 255;
  ASSERT_EQ(rep.convs, 1);
  ASSERT_EQ(rep.mean_abs_shift.size(), 2u);
  EXPECT_NEAR(rep.mean_abs_shift[0], 0.75 * d, 1e-6);
  EXPECT_NEAR(rep.mean_abs_shift[1], 0.0, 1e-6);  // the check pass after the correction
  ASSERT_EQ(w->count("b"), 1u);
  EXPECT_NEAR(w->at("b").data<float>()[0], 0.1 - 0.75 * d, 1e-7);
  EXPECT_EQ(w->count("w"), 0u);  // weights untouched

  auto corrected = build_engine_with_weights(model, o, *w);
  ASSERT_TRUE(corrected.is_ok()) << corrected.status().to_string();
  Tensor x(DataType::kFloat32, {1, 3, 16, 16});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = 128.f / 255.f;
  Tensor y;
  ASSERT_TRUE((*(*corrected)->create_context())->run(x, y).is_ok());
  EXPECT_NEAR(y.data<float>()[0], 0.75 * 128.0 / 255 + 0.1, 1e-6);
}

TEST(WeightOverrides, FileRoundTripAndErrors) {
  TempDir dir;
  WeightOverrides w = {{"a", Tensor::from_vector<float>({2, 1}, {1.5f, -2.f})},
                       {"b/c", Tensor::from_vector<float>({1}, {0.25f})}};
  ASSERT_TRUE(write_weight_overrides(dir.path("w.qw"), w).is_ok());
  auto r = read_weight_overrides(dir.path("w.qw"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ(r->at("a").shape(), (Shape{2, 1}));
  EXPECT_EQ(r->at("a").data<float>()[1], -2.f);
  EXPECT_EQ(r->at("b/c").data<float>()[0], 0.25f);
  std::string bytes = format_weight_overrides(w);
  std::string flipped = bytes;
  flipped[30] ^= 1;
  EXPECT_EQ(parse_weight_overrides(flipped, "f").status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(parse_weight_overrides(bytes.substr(0, 20), "t").status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(read_weight_overrides(dir.path("missing.qw")).status().code(), StatusCode::kNotFound);
}

// Overrides reach the engine, survive save/load (engine format 3), and a name the model lacks is
// an error naming it.
TEST(WeightOverrides, StoredInTheEngineFile) {
  TempDir dir;
  OnnxBuilder b;
  b.input("x", {1, 1, 2, 2});
  b.output("y", {1, 1, 2, 2});
  b.initializer("w", {1, 1, 1, 1}, {2.f});
  b.node("Conv", {"x", "w"}, {"y"}, "conv");
  const std::string model = dir.path("one.onnx");
  write_file(model, b.bytes());
  WeightOverrides w = {{"w", Tensor::from_vector<float>({1, 1, 1, 1}, {3.f})}};
  ASSERT_TRUE(write_weight_overrides(dir.path("w.qw"), w).is_ok());
  BuildOptions o;
  o.weights_file = dir.path("w.qw");
  auto e = Engine::build(model, o);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  ASSERT_TRUE((*e)->save(dir.path("one.qengine")).is_ok());
  fs::remove(dir.path("w.qw"));  // the engine file carries the weights
  auto loaded = Engine::load(dir.path("one.qengine"));
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  Tensor x = Tensor::from_vector<float>({1, 1, 2, 2}, {1.f, 2.f, 3.f, 4.f}), y;
  ASSERT_TRUE((*(*loaded)->create_context())->run(x, y).is_ok());
  EXPECT_EQ(y.data<float>()[3], 12.f);  // 3 * 4, not 2 * 4

  WeightOverrides other = {{"nope", Tensor::from_vector<float>({1}, {1.f})}};
  auto bad = build_engine_with_weights(model, {}, other);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("'nope'"), std::string::npos) << bad.status().to_string();
  WeightOverrides shape = {{"w", Tensor::from_vector<float>({2}, {1.f, 1.f})}};
  EXPECT_FALSE(build_engine_with_weights(model, {}, shape).is_ok());
}

// BuildOptions::weight_clip: chosen at build on the INT8 convs and stored in the engine file (a
// loaded engine runs the stored weights); off (the default), no override: max-abs scales.
TEST(WeightClip, BuildOptionStoresTheClipOnce) {
  TempDir dir;
  const OutlierChannel c = outlier_channel();
  OnnxBuilder b;
  b.input("x", {1, 64, 8, 8});
  b.output("y", {1, 1, 8, 8});
  b.initializer("w", {1, 64, 1, 1}, c.w);
  b.node("Conv", {"x", "w"}, {"y"}, "conv");
  const std::string model = dir.path("clip.onnx");
  write_file(model, b.bytes());
  CalibrationTable table;
  table.algorithm = "MinMaxCalibration";
  table.scales = {{"x", scale_from_amax(1.0)}};
  ASSERT_TRUE(write_calibration_cache(dir.path("c.cache"), table).is_ok());
  BuildOptions o;
  o.precision = Precision::kInt8;
  o.calibration_file = dir.path("c.cache");
  auto plain = Engine::build(model, o);
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
  EXPECT_TRUE((*plain)->impl().weight_overrides.empty());  // off by default
  o.weight_clip = true;
  auto clipped = Engine::build(model, o);
  ASSERT_TRUE(clipped.is_ok()) << clipped.status().to_string();
  ASSERT_EQ((*clipped)->impl().weight_overrides.count("w"), 1u);
  const Tensor& w = (*clipped)->impl().weight_overrides.at("w");
  EXPECT_EQ(w.data<float>()[63], c.alpha0);  // the outlier, clamped to the hand-computed alpha0
  EXPECT_EQ(w.data<float>()[0], c.w[0]);     // the others untouched
  ASSERT_TRUE((*clipped)->save(dir.path("c.qengine")).is_ok());
  auto loaded = Engine::load(dir.path("c.qengine"));
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  ASSERT_EQ((*loaded)->impl().weight_overrides.size(), 1u);
  EXPECT_EQ(std::memcmp((*loaded)->impl().weight_overrides.at("w").raw(), w.raw(), w.nbytes()), 0);
}

// qyolo compare --split on y = 1.0 x0 + 0.3 x1 (1x1 conv) at x = (0.5, 1.0), input scale 1/127:
// the INT8 weights are 127/127 and round(38.1) = 38/127 (weight error (38/127 - 0.3) x1), the INT8
// input reads x0 as round(63.5) = 64/127 (activation error 64/127 - 0.5), x1 exactly.
TEST(ErrorSplit, SeparatesWeightAndActivationErrorByHand) {
  TempDir dir;
  OnnxBuilder b;
  b.input("x", {1, 2, 1, 1});
  b.output("y", {1, 1, 1, 1});
  b.initializer("w", {1, 2, 1, 1}, {1.f, 0.3f});
  b.node("Conv", {"x", "w"}, {"y"}, "conv");
  const std::string model = dir.path("split.onnx");
  write_file(model, b.bytes());
  CalibrationTable table;
  table.algorithm = "MinMaxCalibration";
  table.scales = {{"x", scale_from_amax(1.0)}};
  ASSERT_TRUE(write_calibration_cache(dir.path("s.cache"), table).is_ok());
  BuildOptions o;
  o.precision = Precision::kInt8;
  o.calibration_file = dir.path("s.cache");
  auto rows = split_int8_error(model, o, {}, {Tensor::from_vector<float>({1, 2, 1, 1}, {0.5f, 1.f})}, "");
  ASSERT_TRUE(rows.is_ok()) << rows.status().to_string();
  ASSERT_EQ(rows->size(), 2u);  // the whole network, then the conv
  const double y = 0.8, y_w = 0.5 + 38.0 / 127, dw = 38.0 / 127 - 0.3;
  // The INT8 conv computes with weights 127 and 38 (128 and 38 where the CPU halves them:
  // cpu::int8_conv_effective_weight); the weight part of the split is the int8 grid's own.
  const double y_both = 64.0 / 127 * cpu::int8_conv_effective_weight(127) / 127 +
                        1.0 * cpu::int8_conv_effective_weight(38) / 127;
  const double da = y_both - y_w, d_both = y_both - y;  // 64/127 - 0.5 and da + dw with VNNI
  for (const ErrorSplit& r : *rows) {
    SCOPED_TRACE(r.node);
    EXPECT_NEAR(r.nsr_weights, dw * dw / (y * y), 1e-3 * dw * dw / (y * y));
    EXPECT_NEAR(r.nsr_activations, da * da / (y_w * y_w), 1e-3 * da * da / (y_w * y_w));
    EXPECT_NEAR(r.nsr_both, d_both * d_both / (y * y), 1e-3 * d_both * d_both / (y * y));
  }
  EXPECT_EQ((*rows)[1].node, "conv");
}
