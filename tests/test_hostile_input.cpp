// Regression cases for issue 17 (hostile input), one per defect found by fuzzing the loaders:
// each input is generated here (OnnxBuilder or raw bytes) and must give a clear error naming the
// tensor/node/value -- no crash, no overflow, no terabyte allocation. The sanitizer build
// (scripts/sanitize-check.sh) runs these under ASan + UBSan, where the old behaviour is a finding.
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "calib/calib_cache.h"
#include "cli_runner.h"
#include "head_models.h"
#include "image/draw.h"
#include "ir/shape_arith.h"
#include "onnx/onnx_import.h"
#include "onnx_builder.h"
#include "passes/specialize.h"
#include "qyolo/engine.h"
#include "qyolo/image.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::OnnxBuilder;
using qyolo::testing::run_cli;

namespace {

constexpr int64_t k2e31 = int64_t{1} << 31;
constexpr int64_t k2e40 = int64_t{1} << 40;
constexpr int64_t k2e62 = int64_t{1} << 62;

onnx::TensorProto* add_initializer(OnnxBuilder& b, const std::string& name, const std::vector<int64_t>& dims,
                                   int elem = onnx::TensorProto::FLOAT) {
  auto* t = b.model().mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(elem);
  for (int64_t d : dims) t->add_dims(d);
  return t;
}

void add_int64s(OnnxBuilder& b, const std::string& name, const std::vector<int64_t>& v) {
  auto* t = add_initializer(b, name, {static_cast<int64_t>(v.size())}, onnx::TensorProto::INT64);
  for (int64_t x : v) t->add_int64_data(x);
}

// Import + specialise at `shape` (the declared input shape when empty); the error, or "" if none.
std::string load_error(const std::string& bytes, Shape shape = {}) {
  auto g = import_onnx_bytes(bytes, "hostile.onnx", ".");
  if (!g) return g.status().to_string();
  if (shape.empty())
    for (const auto& d : g->inputs[0].dims) shape.push_back(d.value);
  auto sg = specialize(*g, {{g->inputs[0].name, shape}});
  return sg ? "" : sg.status().to_string();
}

#define EXPECT_MENTIONS(text, needle) \
  EXPECT_NE((text).find(needle), std::string::npos) << "should mention '" << (needle) << "': " << (text)

// 2: a weight claiming 2^62 x 3 elements and no data: the element count wrapped to 0 bytes, the
// "needs N bytes" check passed and oneDNN wrote through the tiny buffer.
TEST(HostileInput, WeightWithWrappingElementCountAndNoData) {
  OnnxBuilder b;
  b.input("x", {1, 3, 8, 8});
  b.output("y");
  add_initializer(b, "w", {k2e62, 3, 1, 1});
  b.node("Conv", {"x", "w"}, {"y"});
  const std::string err = load_error(b.bytes());
  EXPECT_MENTIONS(err, "corrupt");
  EXPECT_MENTIONS(err, "tensor 'w'");
  EXPECT_MENTIONS(err, "4611686018427387904x3x1x1");
}

// 3: dims near 2^31 .. 2^62 overflowed shape_numel, for initializers and for inputs.
TEST(HostileInput, HugeInitializerAndInputDimsAreRefused) {
  OnnxBuilder b;
  b.input("x", {1, 3, 8, 8});
  b.output("y");
  add_initializer(b, "c", {k2e31, k2e31, k2e31});
  b.node("Add", {"x", "c"}, {"y"});
  std::string err = load_error(b.bytes());
  EXPECT_MENTIONS(err, "tensor 'c'");
  EXPECT_MENTIONS(err, "2147483648x2147483648x2147483648");

  OnnxBuilder in;
  in.input("images", {1, 3, k2e31, k2e31});
  in.output("y");
  in.node("Relu", {"images"}, {"y"});
  err = load_error(in.bytes());
  EXPECT_MENTIONS(err, "input 'images'");
  EXPECT_MENTIONS(err, "1x3x2147483648x2147483648");
  EXPECT_MENTIONS(err, "too large");
}

// 4: Reshape to 2^40 x 2^40 overflowed the product of the target shape.
TEST(HostileInput, ReshapeTargetOverflowNamesTheNode) {
  OnnxBuilder b;
  b.input("x", {1, 3, 4, 4});
  b.output("y");
  add_int64s(b, "target", {k2e40, k2e40});
  b.node("Reshape", {"x", "target"}, {"y"}, "bad_reshape");
  const std::string err = load_error(b.bytes());
  EXPECT_MENTIONS(err, "bad_reshape");
  EXPECT_MENTIONS(err, "1099511627776 * 1099511627776 overflows int64");
}

// 5 and 6: dims that claim terabytes (or 16 GiB) with a few bytes of data were allocated before
// the data size was checked (bad_alloc abort, or a 6 GB / 60 s hang).
TEST(HostileInput, DataSizeIsCheckedBeforeAllocating) {
  struct Case {
    std::vector<int64_t> dims;
    bool raw;
    std::string needle;
  };
  for (const Case& c : {Case{{int64_t{1} << 20, int64_t{1} << 20}, true, "too large"},
                        Case{{int64_t{1} << 32}, true, "raw_data has 64 bytes"},
                        Case{{int64_t{1} << 32}, false, "has 16 values"}}) {
    OnnxBuilder b;
    b.input("x", {1, 16});
    b.output("y");
    auto* t = add_initializer(b, "bias", c.dims);
    if (c.raw)
      t->set_raw_data(std::string(64, '\0'));
    else
      for (int i = 0; i < 16; ++i) t->add_float_data(1.f);
    b.node("Add", {"x", "bias"}, {"y"});
    const std::string err = load_error(b.bytes());
    EXPECT_MENTIONS(err, "tensor 'bias'");
    EXPECT_MENTIONS(err, c.needle);
  }
}

// 8: Conv pads = INT64_MAX overflowed the padded size.
TEST(HostileInput, ConvPadsOverflowNamesTheNode) {
  OnnxBuilder b;
  b.input("x", {1, 1, 4, 4});
  b.output("y");
  b.initializer("w", {1, 1, 1, 1}, {1.f});
  auto* n = b.node("Conv", {"x", "w"}, {"y"}, "padded_conv");
  OnnxBuilder::attr_ints(n, "pads", {std::numeric_limits<int64_t>::max(), 0, 1, 0});
  const std::string err = load_error(b.bytes());
  EXPECT_MENTIONS(err, "padded_conv");
  EXPECT_MENTIONS(err, "9223372036854775807");
  EXPECT_MENTIONS(err, "overflows int64");
}

// 9: negative input dims in a static model were accepted and `detect` ran.
TEST(HostileInput, NegativeInputDimsAreRefusedAtImport) {
  for (int64_t bad : {int64_t{-5}, int64_t{-1}}) {
    OnnxBuilder b;
    b.input("images", {1, 3, 8, 8});
    b.output("y");
    b.node("Relu", {"images"}, {"y"});
    b.model()
        .mutable_graph()
        ->mutable_input(0)
        ->mutable_type()
        ->mutable_tensor_type()
        ->mutable_shape()
        ->mutable_dim(bad == -1 ? 0 : 2)
        ->set_dim_value(bad);
    auto g = import_onnx_bytes(b.bytes(), "neg.onnx", ".");
    ASSERT_FALSE(g.is_ok());
    EXPECT_EQ(g.status().code(), StatusCode::kCorrupt);
    EXPECT_MENTIONS(g.status().message(), "'images'");
    EXPECT_MENTIONS(g.status().message(), "negative dimension " + std::to_string(bad));
  }
}

// 10: scale/amax 0, -0, denormal, inf, NaN were accepted from calibration files.
TEST(HostileInput, CalibrationScalesMustBePositiveNormalFloats) {
  for (const char* hex : {"00000000", "80000000", "1", "007fffff", "7f800000", "7fc00000"}) {
    auto t = parse_calibration_cache(std::string("TRT-8601-EntropyCalibration2\nact/out: ") + hex + "\n",
                                     "c.cache");
    ASSERT_FALSE(t.is_ok()) << hex;
    EXPECT_MENTIONS(t.status().message(), "c.cache:2");
    EXPECT_MENTIONS(t.status().message(), "tensor 'act/out'");
  }
  for (const char* amax : {"0", "-0.0", "1e-320", "[0, 0]", "[-0.0, 1e-300]", "1e300"}) {
    auto t = parse_ppq_json(std::string(R"({"act_quant_info": {"act/out": )") + amax + "}}", "p.json");
    ASSERT_FALSE(t.is_ok()) << amax;
    EXPECT_MENTIONS(t.status().message(), "p.json: tensor 'act/out'");
  }
  // The smallest accepted values: a normal float scale.
  EXPECT_TRUE(parse_calibration_cache("TRT-8601-x\na: 00800000\n", "c").is_ok());
  EXPECT_TRUE(parse_ppq_json(R"({"act_quant_info": {"a": 1e-35}})", "p").is_ok());
}

// 7: a decoded box with NaN/inf/huge coordinates overflowed the label position.
TEST(HostileInput, LabelsAtNonFiniteBoxesAreClipped) {
  const RGB bg{200, 10, 10};
  Image im(64, 64);
  const std::vector<uint8_t> blank = im.rgb;
  const float inf = std::numeric_limits<float>::infinity();
  draw_label(im, inf, inf, "person 0.91", bg);
  draw_label(im, -1e30f, 1e30f, "person 0.91", bg);
  draw_label(im, inf, -inf, std::string(100000, 'x'), bg);
  EXPECT_EQ(im.rgb, blank);
  // NaN rounds to pixel -1 like draw_box's: the label is drawn below y, clipped at the corner.
  draw_label(im, std::nanf(""), std::nanf(""), "a", bg);
  EXPECT_EQ(im.pixel(0, 0)[0], bg.r);
  EXPECT_EQ(im.pixel(0, 0)[1], bg.g);
}

// Found by fuzz_onnx: axis 0 was accepted for a rank-0 input, and Slice / per-axis QuantizeLinear
// then read dim 0 of a scalar (out of bounds).
TEST(HostileInput, AxesOfAScalarAreRefused) {
  OnnxBuilder b;
  b.input("x", {});
  b.output("y");
  add_int64s(b, "starts", {0});
  add_int64s(b, "ends", {1});
  b.node("Slice", {"x", "starts", "ends"}, {"y"}, "scalar_slice");
  std::string err = load_error(b.bytes(), Shape{});
  EXPECT_MENTIONS(err, "scalar_slice");
  EXPECT_MENTIONS(err, "axis 0 is out of range");

  OnnxBuilder q;
  q.input("x", {});
  q.output("y");
  q.initializer("s", {2}, {0.1f, 0.2f});
  auto* n = q.node("QuantizeLinear", {"x", "s"}, {"y"}, "scalar_quant");
  auto* axis = n->add_attribute();
  axis->set_name("axis");
  axis->set_type(onnx::AttributeProto::INT);
  axis->set_i(0);
  err = load_error(q.bytes(), Shape{});
  EXPECT_MENTIONS(err, "scalar_quant");
  EXPECT_MENTIONS(err, "out of range for rank 0");
}

// Found by fuzz_onnx: a required input given as "" (the marker of an omitted optional input)
// reached MaxPool's shape inference as a null pointer.
TEST(HostileInput, EmptyRequiredInputIsRefused) {
  OnnxBuilder b;
  b.input("x", {1, 1, 4, 4});
  b.output("y");
  auto* n = b.node("MaxPool", {""}, {"y"}, "pool_without_input");
  OnnxBuilder::attr_ints(n, "kernel_shape", {2, 2});
  const std::string err = load_error(b.bytes());
  EXPECT_MENTIONS(err, "pool_without_input");
  EXPECT_MENTIONS(err, "input 0 is required");
}

// The --*-shapes parser: overflowing, signed and empty dims are errors, not LLONG_MAX.
TEST(HostileInput, ShapeSpecsRejectOverflowAndJunk) {
  for (const char* spec : {"images:1x3x99999999999999999999x640", "1x3x640x", "1x+3x640x640", "1x 3", "x", "",
                           "images:", "1x3x-640x640"}) {
    auto s = parse_shape_spec(spec);
    ASSERT_FALSE(s.is_ok()) << spec;
    EXPECT_MENTIONS(s.status().message(), "bad shape");
  }
  auto ok = parse_shape_spec("images:1x3x640x640");
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(*ok, (Shape{1, 3, 640, 640}));
}

TEST(HostileInput, CheckedShapeArithmetic) {
  EXPECT_EQ(*checked_numel({2, 3, 4}, "t"), 24);
  EXPECT_EQ(*checked_numel({}, "t"), 1);
  EXPECT_EQ(*checked_numel({0, 5}, "t"), 0);
  // A zero-size tensor may not carry a huge dim either: partial products must stay countable.
  EXPECT_FALSE(checked_numel({0, k2e62}, "t").is_ok());
  EXPECT_MENTIONS(checked_numel({2, -3}, "tensor 't'").status().message(),
                  "tensor 't': negative dimension -3");
  EXPECT_EQ(*checked_nbytes({int64_t{1} << 32}, DataType::kFloat32, "t"), kMaxTensorBytes);
  EXPECT_FALSE(checked_nbytes({(int64_t{1} << 32) + 1}, DataType::kFloat32, "t").is_ok());
  ShapeArith m;
  EXPECT_EQ(m.add(m.mul(3, 4), 5), 17);
  EXPECT_TRUE(m.ok());
  m.mul(k2e62, 4);
  EXPECT_FALSE(m.ok());
  EXPECT_EQ(m.add(1, 1), 0);  // stays failed
  EXPECT_MENTIONS(m.status("node 'n'").message(), "node 'n': 4611686018427387904 * 4 overflows int64");
  EXPECT_EQ(shape_numel({k2e62, 4}), std::numeric_limits<int64_t>::max());  // saturates, no UB
}

class HostileCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qyolo_hostile_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) {
    std::ofstream f(dir_ / name, std::ios::binary);
    f << bytes;
    return (dir_ / name).string();
  }
  fs::path dir_;
};

// 1: a model path and an image name with byte 0xff made `detect` abort in nlohmann's dump()
// (type_error.316); detections.json is now written with U+FFFD for the bad byte.
TEST_F(HostileCli, NonUtf8PathsInDetectionsJson) {
  const std::string model = write("m\xff.onnx", qyolo::testing::yolov8_decoded_model(64, 64, 2));
  const std::string image = (dir_ / "img\xff.jpg").string();
  ASSERT_TRUE(save_jpeg(image, Image(64, 64, 128)).is_ok());
  const fs::path out = dir_ / "out";
  auto r = run_cli("detect --model '" + model + "' --source '" + image + "' --out '" + out.string() + "'");
  EXPECT_FALSE(r.signalled) << r.output;
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream f(out / "detections.json");
  const auto doc = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(doc.is_discarded());
  EXPECT_MENTIONS(doc["model"].get<std::string>(), "m\xEF\xBF\xBD.onnx");
  EXPECT_MENTIONS(doc["results"][0]["image"].get<std::string>(), "img\xEF\xBF\xBD.jpg");
}

// Profiles from the command line go through the same checks (a 4e9 x 4e9 max shape).
TEST_F(HostileCli, HugeProfileIsAClearError) {
  const std::string model = write("dyn.onnx", qyolo::testing::yolov8_raw_model(-1, -1, 2, false));
  auto r = run_cli("build --model " + model + " --min-shapes images:1x3x32x32 --opt-shapes images:1x3x32x32" +
                   " --max-shapes images:1x3x4000000000x4000000000 --out " + (dir_ / "e.qengine").string());
  EXPECT_FALSE(r.signalled) << r.output;
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_MENTIONS(r.output, "1x3x4000000000x4000000000");
  EXPECT_MENTIONS(r.output, "too large");
  EXPECT_FALSE(fs::exists(dir_ / "e.qengine"));
}

}  // namespace
