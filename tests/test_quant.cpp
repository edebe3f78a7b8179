// INT8: the oneDNN int8 conv against a scalar integer reference, Q/DQ import, export-qdq round trip,
// calibration input errors.
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "backends/cpu/conv2d_int8.h"
#include "backends/cpu/cpu_executor.h"
#include "calib/calib_cache.h"
#include "calibration_support.h"
#include "onnx/onnx_import.h"
#include "onnx_builder.h"
#include "quant/calibrate_model.h"
#include "quant/export_qdq.h"
#include "quant/precision_plan_pass.h"
#include "quant/quant_params.h"
#include "quant/quantize_graph.h"
#include "qyolo/calibration.h"
#include "runtime/detector.h"
#include "runtime/engine_impl.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::OnnxBuilder;
using qyolo::testing::shared_dir;

namespace {

std::vector<float> random_values(size_t n, unsigned seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

struct Int8ConvCase {
  int64_t n, cin, h, w, cout, k, stride, pad, group;
  bool silu, residual;
};

// Straightforward integer reference: quantise, accumulate in int32, requantise per channel.
std::vector<float> reference_int8_conv(const Int8ConvCase& c, const std::vector<float>& x,
                                       const std::vector<float>& w, const std::vector<float>& b,
                                       const std::vector<float>& r, float sx, int64_t oh, int64_t ow,
                                       std::vector<float>* lsb) {
  const int64_t cin_g = c.cin / c.group, cout_g = c.cout / c.group, per = cin_g * c.k * c.k;
  std::vector<int8_t> xq(x.size());
  std::vector<int32_t> wq(w.size());
  for (size_t i = 0; i < x.size(); ++i) xq[i] = quantize_int8(x[i], sx);
  std::vector<float> sw(static_cast<size_t>(c.cout));
  for (int64_t o = 0; o < c.cout; ++o) {
    float amax = 0;
    for (int64_t j = 0; j < per; ++j) amax = std::max(amax, std::fabs(w[o * per + j]));
    sw[o] = scale_from_amax(amax);
    for (int64_t j = 0; j < per; ++j) {
      wq[o * per + j] = quantize_int8(w[o * per + j], sw[o]);
      // As the CPU computes: halved to a 7-bit grid without VNNI (cpu::int8_conv_weight_adjust).
      wq[o * per + j] = cpu::int8_conv_effective_weight(static_cast<int8_t>(wq[o * per + j]));
    }
  }
  lsb->assign(static_cast<size_t>(c.cout), 0.f);
  std::vector<float> y(static_cast<size_t>(c.n * c.cout * oh * ow));
  for (int64_t n = 0; n < c.n; ++n)
    for (int64_t o = 0; o < c.cout; ++o) {
      (*lsb)[o] = sx * sw[o];
      const int64_t g = o / cout_g;
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          int32_t acc = 0;
          for (int64_t ci = 0; ci < cin_g; ++ci)
            for (int64_t ky = 0; ky < c.k; ++ky)
              for (int64_t kx = 0; kx < c.k; ++kx) {
                int64_t iy = oy * c.stride - c.pad + ky, ix = ox * c.stride - c.pad + kx;
                if (iy < 0 || ix < 0 || iy >= c.h || ix >= c.w) continue;
                int64_t xi = ((n * c.cin + g * cin_g + ci) * c.h + iy) * c.w + ix;
                acc += static_cast<int32_t>(xq[xi]) * wq[(o * cin_g + ci) * c.k * c.k + ky * c.k + kx];
              }
          float v = static_cast<float>(acc) * sx * sw[o] + b[o];
          if (c.silu) v = v / (1.f + std::exp(-v));
          size_t yi = static_cast<size_t>(((n * c.cout + o) * oh + oy) * ow + ox);
          if (c.residual) v += r[yi];
          y[yi] = v;
        }
    }
  return y;
}

class Int8Conv : public ::testing::TestWithParam<Int8ConvCase> {};

TEST_P(Int8Conv, MatchesScalarIntegerReferenceWithin1Lsb) {
  const Int8ConvCase c = GetParam();
  const int64_t oh = (c.h + 2 * c.pad - c.k) / c.stride + 1, ow = (c.w + 2 * c.pad - c.k) / c.stride + 1;
  auto x = random_values(static_cast<size_t>(c.n * c.cin * c.h * c.w), 1, -1.5f, 3.f);
  auto w = random_values(static_cast<size_t>(c.cout * (c.cin / c.group) * c.k * c.k), 2, -0.4f, 0.4f);
  auto b = random_values(static_cast<size_t>(c.cout), 3, -0.5f, 0.5f);
  auto r = random_values(static_cast<size_t>(c.n * c.cout * oh * ow), 4, -1.f, 1.f);
  const float sx = 3.f / 127.f;
  OnnxBuilder ob;
  ob.input("x", {c.n, c.cin, c.h, c.w});
  if (c.residual) ob.input("r", {c.n, c.cout, oh, ow});
  ob.output("y");
  ob.initializer("w", {c.cout, c.cin / c.group, c.k, c.k}, w);
  ob.initializer("b", {c.cout}, b);
  auto* conv = ob.node("Conv", {"x", "w", "b"}, {"y"}, "conv");
  OnnxBuilder::attr_ints(conv, "pads", {c.pad, c.pad, c.pad, c.pad});
  OnnxBuilder::attr_ints(conv, "strides", {c.stride, c.stride});
  auto* grp = conv->add_attribute();
  grp->set_name("group");
  grp->set_type(onnx::AttributeProto::INT);
  grp->set_i(c.group);
  auto g = import_onnx_bytes(ob.bytes(), "int8conv.onnx", ".");
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  Node& node = g->nodes[0];
  node.attrs["qyolo_input_scale"] = sx;
  if (c.silu) node.attrs["qyolo_activation"] = std::string("silu");
  if (c.residual) node.inputs.push_back("r");
  std::map<std::string, Shape> shapes{{"x", {c.n, c.cin, c.h, c.w}}};
  if (c.residual) shapes["r"] = {c.n, c.cout, oh, ow};
  auto sg = specialize(*g, shapes);
  ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
  auto ex = CpuExecutor::build(std::move(sg).value());
  ASSERT_TRUE(ex.is_ok()) << ex.status().to_string();
  std::map<std::string, Tensor> in{{"x", Tensor::from_vector<float>({c.n, c.cin, c.h, c.w}, x)}}, out;
  if (c.residual) in["r"] = Tensor::from_vector<float>({c.n, c.cout, oh, ow}, r);
  ASSERT_TRUE((*ex)->run(in, out).is_ok());
  std::vector<float> lsb;
  auto ref = reference_int8_conv(c, x, w, b, r, sx, oh, ow, &lsb);
  const Tensor& y = out.at("y");
  ASSERT_EQ(y.numel(), static_cast<int64_t>(ref.size()));
  double worst_lsb = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    const int64_t o = (i / (oh * ow)) % c.cout;
    // SiLU's slope is < 1.1, so an accumulator LSB moves the output by at most ~1.1 LSB.
    double err_lsb =
        std::fabs(y.data<float>()[i] - ref[static_cast<size_t>(i)]) / lsb[static_cast<size_t>(o)];
    worst_lsb = std::max(worst_lsb, err_lsb);
  }
  EXPECT_LE(worst_lsb, 1.0) << "worst error " << worst_lsb << " LSB";
}

INSTANTIATE_TEST_SUITE_P(Cases, Int8Conv,
                         ::testing::Values(Int8ConvCase{1, 3, 17, 19, 8, 3, 1, 1, 1, false, false},
                                           Int8ConvCase{2, 16, 12, 12, 32, 3, 2, 1, 1, true, false},
                                           Int8ConvCase{1, 32, 10, 10, 32, 1, 1, 0, 1, true, true},
                                           Int8ConvCase{1, 16, 9, 9, 16, 3, 1, 1, 16, false, false},
                                           Int8ConvCase{1, 3, 20, 20, 16, 6, 2, 2, 1, true, false},
                                           // a stem-like conv at batch 2
                                           Int8ConvCase{2, 3, 70, 65, 16, 6, 2, 2, 1, true, false}));

// The ONNX Runtime Q/DQ model runs with its own scales and finds the same objects on bus.jpg as
// the PyTorch FP32 reference.
TEST(QdqImport, OrtQdqModelDetectsReferenceObjects) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-ort-qdq.onnx");
  QYOLO_REQUIRE_SHARED("reference/detections_conf025_iou045.json");
  BuildOptions o;
  o.precision = Precision::kInt8;
  auto engine = Engine::build((shared_dir() / "models/yolov5n-ort-qdq.onnx").string(), o);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  EXPECT_TRUE((*engine)->info().has_qdq);
  auto sg = (*engine)->impl().prepare({1, 3, 640, 640});
  ASSERT_TRUE(sg.is_ok());
  int int8_convs = 0;
  for (const auto& n : sg->graph.nodes) int8_convs += n.has_attr("qyolo_input_scale");
  EXPECT_EQ(int8_convs, 60);  // every conv reads a Q/DQ'd activation
  auto img = load_image((shared_dir() / "data/samples/bus.jpg").string());
  ASSERT_TRUE(img.is_ok());
  {
    // Honoured faithfully, the model's own Detect-head Q/DQ (one scale of ~5.0 for boxes and
    // scores) rounds every score to 0: the detector refuses the output, naming the step.
    auto det = Detector::create(*engine, {});
    ASSERT_TRUE(det.is_ok());
    auto dets = (*det)->detect({&*img});
    ASSERT_FALSE(dets.is_ok()) << "detected " << (*dets)[0].size() << " boxes from scores that are all 0";
    EXPECT_NE(dets.status().message().find("every score in [0, 1] rounds to 0"), std::string::npos)
        << dets.status().message();
  }
  {
    // --float-output drops only output0's own pair: the concat still carries the head's step-5.6
    // grids (its per-level Q/DQ), so it is refused as well, pointing to --float-layers.
    BuildOptions fo;
    fo.float_outputs = true;
    auto e = Engine::build((shared_dir() / "models/yolov5n-ort-qdq.onnx").string(), fo);
    ASSERT_TRUE(e.is_ok()) << e.status().to_string();
    auto det = Detector::create(*e, {});
    ASSERT_TRUE(det.is_ok());
    auto dets = (*det)->detect({&*img});
    ASSERT_FALSE(dets.is_ok()) << "detected " << (*dets)[0].size() << " boxes from scores that are all 0";
    EXPECT_NE(dets.status().message().find("--float-layers"), std::string::npos) << dets.status().message();
  }
  // Keeping the Detect head's Q/DQ in float (--float-layers) recovers the reference objects.
  o.float_layers_regex = "^/model\\.24/|^output0";
  engine = Engine::build((shared_dir() / "models/yolov5n-ort-qdq.onnx").string(), o);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  auto det = Detector::create(*engine, {});
  ASSERT_TRUE(det.is_ok());
  auto dets = (*det)->detect({&*img});
  ASSERT_TRUE(dets.is_ok()) << dets.status().to_string();
  // Reference (yolov5n FP32): 3 persons and the bus. Each must be found again, same class, IoU > 0.8.
  const float ref[4][5] = {
      {219, 408, 349, 863, 0}, {52, 399, 207, 895, 0}, {681, 377, 810, 870, 0}, {49, 237, 810, 772, 5}};
  for (const auto& r : ref) {
    bool found = false;
    for (const auto& d : (*dets)[0]) {
      if (d.class_id != static_cast<int>(r[4])) continue;
      float ix = std::max(0.f, std::min(d.x2, r[2]) - std::max(d.x1, r[0]));
      float iy = std::max(0.f, std::min(d.y2, r[3]) - std::max(d.y1, r[1]));
      float inter = ix * iy, u = (d.x2 - d.x1) * (d.y2 - d.y1) + (r[2] - r[0]) * (r[3] - r[1]) - inter;
      if (inter / u > 0.8f) found = true;
    }
    EXPECT_TRUE(found) << "reference box " << r[0] << "," << r[1] << " class " << r[4] << " not found";
  }
}

class CalibrationFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qyolo_quant_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(CalibrationFixture, BadCalibrationDataGivesClearErrors) {
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  auto engine = Engine::build((shared_dir() / "models/yolov5n.onnx").string(), {});
  ASSERT_TRUE(engine.is_ok());
  CalibrationOptions opt;
  opt.num_images = 2;
  opt.batch = 1;
  // Empty folder.
  fs::create_directories(dir_ / "empty");
  auto r = calibrate(**engine, (dir_ / "empty").string(), opt);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("no .jpg"), std::string::npos) << r.status().to_string();
  // Unreadable image.
  fs::create_directories(dir_ / "bad");
  { std::ofstream(dir_ / "bad/a.jpg") << "garbage"; }
  { std::ofstream(dir_ / "bad/b.jpg") << "garbage"; }
  r = calibrate(**engine, (dir_ / "bad").string(), opt);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("a.jpg"), std::string::npos) << r.status().to_string();
  // Wrong count.
  opt.num_images = 1000;
  r = calibrate(**engine, (shared_dir() / "data/samples").string(), opt);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("1000"), std::string::npos) << r.status().to_string();
}

TEST_F(CalibrationFixture, CacheForAnotherModelIsRejected) {
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  CalibrationTable t;
  t.algorithm = "EntropyCalibration2";
  t.scales = {{"/backbone/layer1/relu_output", 0.01f}, {"input_1", 0.008f}};
  ASSERT_TRUE(write_calibration_cache(dir_ / "other.cache", t).is_ok());
  BuildOptions o;
  o.precision = Precision::kInt8;
  o.calibration_file = (dir_ / "other.cache").string();
  auto e = Engine::build((shared_dir() / "models/yolov5n.onnx").string(), o);
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("does not belong"), std::string::npos) << e.status().to_string();
}

// One pass, several algorithms (the public API's "minmax,mse", qyolo calibrate --algo minmax,mse):
// each cache is byte for byte the one a run of that algorithm alone writes; several need {algo}.
TEST_F(CalibrationFixture, SeveralAlgorithmsInOnePassMatchSeparateRuns) {
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  QYOLO_REQUIRE_SHARED("data/samples");
  auto engine = Engine::build((shared_dir() / "models/yolov5n.onnx").string(), {});
  ASSERT_TRUE(engine.is_ok());
  const std::string folder = (shared_dir() / "data/samples").string();
  auto text = [](const fs::path& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  CalibrationSettings s;
  s.num_images = 2;
  s.batch = 1;
  s.algorithm = "minmax,mse";
  auto no_slot = calibrate_images(**engine, folder, s, (dir_ / "one.cache").string());
  ASSERT_FALSE(no_slot.is_ok());
  EXPECT_NE(no_slot.status().message().find("{algo}"), std::string::npos) << no_slot.status().to_string();
  auto both = calibrate_images(**engine, folder, s, (dir_ / "both.{algo}.cache").string());
  ASSERT_TRUE(both.is_ok()) << both.status().to_string();
  EXPECT_EQ(both->algorithm, "MinMaxCalibration,MseCalibration");
  EXPECT_EQ(both->caches, (std::vector<std::string>{(dir_ / "both.minmax.cache").string(),
                                                    (dir_ / "both.mse.cache").string()}));
  EXPECT_EQ(both->images, 2);
  for (const char* algo : {"minmax", "mse"}) {
    s.algorithm = algo;
    const fs::path alone = dir_ / (std::string(algo) + ".cache");
    auto single = calibrate_images(**engine, folder, s, alone.string());
    ASSERT_TRUE(single.is_ok()) << single.status().to_string();
    EXPECT_EQ(single->caches, std::vector<std::string>{alone.string()});
    const std::string expected = text(alone);
    EXPECT_GT(expected.size(), 100u);
    EXPECT_EQ(text(dir_ / ("both." + std::string(algo) + ".cache")), expected) << algo;
  }
  EXPECT_NE(text(dir_ / "both.minmax.cache"), text(dir_ / "both.mse.cache"));
}

// Calibrate (minmax, 4 images) -> export Q/DQ -> import the Q/DQ model: the explicit model runs the
// same int8 convs with the same scales, so its output matches the implicit INT8 engine closely
// (the only difference: the exported Q/DQ on residual Add inputs).
TEST_F(CalibrationFixture, ExportedQdqModelMatchesImplicitInt8Engine) {
  QYOLO_REQUIRE_8BIT_INT8_WEIGHTS();
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  QYOLO_REQUIRE_SHARED("data/coco128/images");
  const std::string model = (shared_dir() / "models/yolov5n.onnx").string();
  auto fp32 = Engine::build(model, {});
  ASSERT_TRUE(fp32.is_ok());
  const std::string cache = (dir_ / "n.cache").string();
  auto table = qyolo::testing::coco128_minmax_cache(**fp32, 4, cache);
  ASSERT_TRUE(table.is_ok()) << table.status().to_string();
  QdqExportReport rep;
  const std::string qdq = (dir_ / "n.qdq.onnx").string();
  ASSERT_TRUE(export_qdq(model, table->scales, qdq, &rep).is_ok());
  EXPECT_EQ(rep.quantized_weights, 60);
  EXPECT_EQ(rep.missing_scales, 0);
  EXPECT_GT(rep.residual_adds, 0);

  BuildOptions implicit;
  implicit.precision = Precision::kInt8;
  implicit.calibration_file = cache;
  implicit.asymmetric_activations = false;  // the symmetric export's grid
  auto e_impl = Engine::build(model, implicit);
  ASSERT_TRUE(e_impl.is_ok()) << e_impl.status().to_string();
  BuildOptions expl;
  expl.precision = Precision::kInt8;
  auto e_expl = Engine::build(qdq, expl);
  ASSERT_TRUE(e_expl.is_ok()) << e_expl.status().to_string();
  auto img = load_image((shared_dir() / "data/samples/bus.jpg").string());
  ASSERT_TRUE(img.is_ok());
  Tensor input = Detector::preprocess({&*img}, 640, 640, nullptr);
  Tensor a, b;
  ASSERT_TRUE((*(*e_impl)->create_context())->run(input, a).is_ok());
  ASSERT_TRUE((*(*e_expl)->create_context())->run(input, b).is_ok());
  ASSERT_EQ(a.shape(), b.shape());
  // Objectness/class scores (already sigmoid) agree closely on average; the residual-Add Q/DQ of
  // the explicit model adds a little rounding, so no element-wise bound is claimed.
  double sum_diff = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < a.numel(); i += 85)
    for (int k = 4; k < 85; ++k, ++count)
      sum_diff += std::fabs(a.data<float>()[i + k] - b.data<float>()[i + k]);
  EXPECT_LT(sum_diff / static_cast<double>(count), 2e-3);
  // And the detections are the same objects.
  auto da = postprocess(a, HeadKind::kYoloV5, {});
  auto db = postprocess(b, HeadKind::kYoloV5, {});
  ASSERT_TRUE(da.is_ok() && db.is_ok());
  ASSERT_EQ((*da)[0].size(), (*db)[0].size());
  for (size_t i = 0; i < (*da)[0].size(); ++i) {
    EXPECT_EQ((*da)[0][i].class_id, (*db)[0][i].class_id);
    EXPECT_NEAR((*da)[0][i].x1, (*db)[0][i].x1, 6.0);
    EXPECT_NEAR((*da)[0][i].y2, (*db)[0][i].y2, 6.0);
  }
}

// The asymmetric grid (BuildOptions::asymmetric_activations) against its independent statement:
// the Q/DQ model export_qdq writes with the same bounds (uint8 QuantizeLinear/DequantizeLinear with
// zero points, run by the ONNX ops in float) — the same numbers up to the residual-Add Q/DQ of the
// export, as in the symmetric test above. And on SiLU networks it must pay: the asymmetric engine's
// scores are closer to FP32's than the symmetric engine's on the same cache.
TEST_F(CalibrationFixture, AsymmetricInt8EngineMatchesItsQdqModelAndIsCloserToFp32) {
  QYOLO_REQUIRE_8BIT_INT8_WEIGHTS();
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  QYOLO_REQUIRE_SHARED("data/coco128/images");
  const std::string model = (shared_dir() / "models/yolov5n.onnx").string();
  auto fp32 = Engine::build(model, {});
  ASSERT_TRUE(fp32.is_ok());
  const std::string cache = (dir_ / "a.cache").string();
  auto table = qyolo::testing::coco128_minmax_cache(**fp32, 4, cache);
  ASSERT_TRUE(table.is_ok()) << table.status().to_string();
  QdqExportReport rep;
  QdqExportOptions xo;
  auto imported = import_onnx(model);
  ASSERT_TRUE(imported.is_ok()) << imported.status().to_string();
  xo.lower_bounds = activation_lower_bounds(*imported);  // the bounds the CPU plan uses
  const std::string qdq = (dir_ / "a.qdq.onnx").string();
  ASSERT_TRUE(export_qdq(model, table->scales, qdq, &rep, xo).is_ok());
  EXPECT_GT(rep.asymmetric_activations, 40);
  EXPECT_LT(rep.asymmetric_activations, rep.quantized_activations);  // the image: symmetric

  BuildOptions sym;
  sym.precision = Precision::kInt8;
  sym.calibration_file = cache;
  sym.asymmetric_activations = false;
  BuildOptions asym = sym;
  asym.asymmetric_activations = true;  // the default
  auto e_sym = Engine::build(model, sym);
  auto e_asym = Engine::build(model, asym);
  auto e_qdq = Engine::build(qdq, {});  // FP32: every Q/DQ pair as written
  ASSERT_TRUE(e_sym.is_ok() && e_asym.is_ok()) << e_asym.status().to_string();
  ASSERT_TRUE(e_qdq.is_ok()) << e_qdq.status().to_string();
  auto img = load_image((shared_dir() / "data/samples/bus.jpg").string());
  ASSERT_TRUE(img.is_ok());
  Tensor input = Detector::preprocess({&*img}, 640, 640, nullptr);
  Tensor f, s, a, q;
  ASSERT_TRUE((*(*fp32)->create_context())->run(input, f).is_ok());
  ASSERT_TRUE((*(*e_sym)->create_context())->run(input, s).is_ok());
  ASSERT_TRUE((*(*e_asym)->create_context())->run(input, a).is_ok());
  ASSERT_TRUE((*(*e_qdq)->create_context())->run(input, q).is_ok());
  ASSERT_EQ(a.shape(), q.shape());
  // Mean absolute difference of the objectness and class scores (already sigmoid).
  auto score_diff = [](const Tensor& x, const Tensor& y) {
    double sum = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < x.numel(); i += 85)
      for (int k = 4; k < 85; ++k, ++count) sum += std::fabs(x.data<float>()[i + k] - y.data<float>()[i + k]);
    return sum / static_cast<double>(count);
  };
  EXPECT_LT(score_diff(a, q), 2e-3);
  const double err_sym = score_diff(s, f), err_asym = score_diff(a, f);
  EXPECT_LT(err_asym, 0.8 * err_sym) << "asymmetric " << err_asym << " vs symmetric " << err_sym;
  std::printf(
      "[asymmetric] mean |score - FP32|: symmetric %.3g, asymmetric %.3g; asymmetric vs its Q/DQ model "
      "%.3g\n",
      err_sym, err_asym, score_diff(a, q));
}

}  // namespace
