// The uint8 NHWC image input (BuildOptions::input_format, src/passes/image_input.h): the
// QyoloImageToFloat op against hand-computed values, the graph rewrite, and engines taking the
// letterboxed bytes giving exactly the float engines' outputs (FP32 and INT8, CPU), through save
// and load. The CUDA side (the direct stem reading the bytes) is in tests/gpu/test_image_input_gpu.cpp.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "calib/calib_cache.h"
#include "calibration_support.h"
#include "cli_runner.h"
#include "onnx/onnx_import.h"
#include "onnx_builder.h"
#include "passes/image_input.h"
#include "quant/calibrate_model.h"
#include "runtime/detector.h"
#include "runtime/engine_impl.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::OnnxBuilder;
using qyolo::testing::shared_dir;

namespace {

fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / ("qyolo_image_input_" + std::to_string(::getpid()) + "_" + name);
}

// y = x * 2 (per element) on a 1x3x2x4 image: the smallest model that reads its image input.
std::string write_double_model() {
  OnnxBuilder b;
  b.input("images", {1, 3, 2, 4});
  b.initializer("two", {1}, {2.f});
  b.node("Mul", {"images", "two"}, {"y"}, "double");
  b.output("y", {1, 3, 2, 4});
  const fs::path p = temp_path("double.onnx");
  std::ofstream(p, std::ios::binary) << b.bytes();
  return p.string();
}

}  // namespace

TEST(ImageInput, BytesAreScaledAndTransposedAsTheLetterboxDoes) {
  const std::string model = write_double_model();
  BuildOptions o;
  o.input_format = InputFormat::kUint8Nhwc;
  auto e = Engine::build(model, o);
  fs::remove(model);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  auto ctx = (*e)->create_context();
  ASSERT_TRUE(ctx.is_ok());
  auto bindings = (*ctx)->bindings();
  ASSERT_TRUE(bindings.is_ok()) << bindings.status().to_string();
  ASSERT_EQ(bindings->size(), 2u);
  EXPECT_EQ((*bindings)[0].name, "images");
  EXPECT_EQ((*bindings)[0].dtype, DataType::kUInt8);
  EXPECT_EQ((*bindings)[0].shape, (Shape{1, 2, 4, 3}));
  EXPECT_EQ((*bindings)[0].nbytes(), 24u);

  Tensor in(DataType::kUInt8, {1, 2, 4, 3});
  for (int64_t i = 0; i < in.numel(); ++i) in.data<uint8_t>()[i] = static_cast<uint8_t>(i * 11);
  Tensor out;
  ASSERT_TRUE((*ctx)->run(in, out).is_ok());
  ASSERT_EQ(out.shape(), (Shape{1, 3, 2, 4}));
  for (int c = 0; c < 3; ++c)
    for (int h = 0; h < 2; ++h)
      for (int w = 0; w < 4; ++w) {
        const uint8_t byte = static_cast<uint8_t>(((h * 4 + w) * 3 + c) * 11);
        EXPECT_EQ(out.data<float>()[(c * 2 + h) * 4 + w], static_cast<float>(byte) / 255.f * 2.f)
            << "c " << c << " h " << h << " w " << w;
      }
}

TEST(ImageInput, WrongInputIsAClearError) {
  const std::string model = write_double_model();
  BuildOptions o;
  o.input_format = InputFormat::kUint8Nhwc;
  auto e = Engine::build(model, o);
  fs::remove(model);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  auto ctx = (*e)->create_context();
  ASSERT_TRUE(ctx.is_ok());
  Tensor out;
  const Status f = (*ctx)->run(Tensor(DataType::kFloat32, {1, 3, 2, 4}), out);
  EXPECT_FALSE(f.is_ok());
  EXPECT_NE(f.to_string().find("must be uint8"), std::string::npos) << f.to_string();
  EXPECT_NE(f.to_string().find("uint8-nhwc"), std::string::npos) << f.to_string();
  const Status shape = (*ctx)->run(Tensor(DataType::kUInt8, {1, 2, 5, 3}), out);
  EXPECT_FALSE(shape.is_ok());
  EXPECT_NE(shape.to_string().find("profile"), std::string::npos) << shape.to_string();
  EXPECT_FALSE(parse_input_format("uint8-nchw").is_ok());
  EXPECT_EQ(*parse_input_format("uint8-nhwc"), InputFormat::kUint8Nhwc);
}

TEST(ImageInput, RewriteRefusesWhatIsNotAFloatImage) {
  OnnxBuilder b;
  b.input("images", {1, 3, 2, 4});
  b.node("Identity", {"images"}, {"y"}, "id");
  b.output("y", {1, 3, 2, 4});
  const fs::path p = temp_path("id.onnx");
  std::ofstream(p, std::ios::binary) << b.bytes();
  auto g = import_onnx(p.string());
  fs::remove(p);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  auto sg = specialize(*g, {{"images", {1, 3, 2, 4}}});
  ASSERT_TRUE(sg.is_ok());
  EXPECT_FALSE(use_uint8_image_input(*sg, "nope").is_ok());
  ASSERT_TRUE(use_uint8_image_input(*sg, "images").is_ok());
  EXPECT_EQ(sg->graph.inputs[0].dtype, DataType::kUInt8);
  EXPECT_EQ(sg->values.at("images").shape, (Shape{1, 2, 4, 3}));
  EXPECT_EQ(sg->graph.nodes.front().op_type, "QyoloImageToFloat");
  EXPECT_EQ(sg->graph.nodes.back().inputs[0], float_image_name("images"));
  // Applied twice, the input is no longer a float image.
  const Status again = use_uint8_image_input(*sg, "images");
  EXPECT_FALSE(again.is_ok());
  EXPECT_NE(again.to_string().find("'images' is uint8"), std::string::npos) << again.to_string();
}

// yolov5n on a real letterboxed image: the bytes engine equals the float engine bit for bit,
// in FP32 and in INT8 (its stem quantises the same float image), also after save + load.
TEST(ImageInput, Yolov5nBytesEngineEqualsFloatEngine) {
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  QYOLO_REQUIRE_SHARED("data/coco128/images");
  QYOLO_REQUIRE_SHARED("data/samples/bus.jpg");
  const std::string model = (shared_dir() / "models/yolov5n.onnx").string();
  auto img = load_image((shared_dir() / "data/samples/bus.jpg").string());
  ASSERT_TRUE(img.is_ok());
  const Tensor floats = Detector::preprocess({&*img}, 640, 640, nullptr);
  const Tensor bytes = Detector::preprocess({&*img}, 640, 640, nullptr, InputFormat::kUint8Nhwc);
  ASSERT_EQ(bytes.shape(), (Shape{1, 640, 640, 3}));
  EXPECT_EQ(Detector::model_shape(bytes, InputFormat::kUint8Nhwc), floats.shape());
  for (int64_t i : {int64_t{0}, int64_t{123457}, int64_t{640 * 640 * 3 - 1}}) {
    const int64_t px = i / 3, c = i % 3;
    EXPECT_EQ(floats.data<float>()[c * 640 * 640 + px], static_cast<float>(bytes.data<uint8_t>()[i]) / 255.f);
  }

  auto fp32 = Engine::build(model, {});
  ASSERT_TRUE(fp32.is_ok());
  const fs::path cache = temp_path("yolov5n.cache");
  auto table = qyolo::testing::coco128_minmax_cache(**fp32, 2, cache);
  ASSERT_TRUE(table.is_ok()) << table.status().to_string();

  for (Precision precision : {Precision::kFp32, Precision::kInt8}) {
    SCOPED_TRACE(precision_name(precision));
    BuildOptions o;
    o.precision = precision;
    if (precision == Precision::kInt8) o.calibration_file = cache.string();
    auto ref = Engine::build(model, o);
    o.input_format = InputFormat::kUint8Nhwc;
    auto built = Engine::build(model, o);
    ASSERT_TRUE(ref.is_ok() && built.is_ok()) << built.status().to_string();
    const fs::path saved = temp_path("bytes.qengine");
    ASSERT_TRUE((*built)->save(saved.string()).is_ok());
    auto loaded = Engine::load(saved.string());
    fs::remove(saved);
    ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
    EXPECT_EQ((*loaded)->options().input_format, InputFormat::kUint8Nhwc);

    Tensor want, got;
    ASSERT_TRUE((*(*ref)->create_context())->run(floats, want).is_ok());
    ASSERT_TRUE((*(*loaded)->create_context())->run(bytes, got).is_ok());
    ASSERT_EQ(want.shape(), got.shape());
    EXPECT_EQ(std::memcmp(want.raw(), got.raw(), want.nbytes()), 0);
  }
  fs::remove(cache);
}

// The CLI: `qyolo bench` feeds a uint8-nhwc engine bytes; `qyolo detect` letterboxes into bytes
// and finds the bus image's objects as the float engine does; a bad spelling is a clear error.
TEST(ImageInput, CliBenchAndDetectOnABytesEngine) {
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  QYOLO_REQUIRE_SHARED("data/samples/bus.jpg");
  const std::string model = " --model " + (shared_dir() / "models/yolov5n.onnx").string();
  auto bench = qyolo::testing::run_cli("bench" + model + " --input-format uint8-nhwc --warmup 1 --iterations 2");
  ASSERT_EQ(bench.exit_code, 0) << bench.output;
  EXPECT_NE(bench.output.find("latency ms"), std::string::npos) << bench.output;
  const std::string source = " --source " + (shared_dir() / "data/samples/bus.jpg").string();
  const fs::path out_bytes = temp_path("detect_bytes"), out_float = temp_path("detect_float");
  auto bytes = qyolo::testing::run_cli("detect" + model + source + " --input-format uint8-nhwc --no-images --out " +
                                       out_bytes.string());
  auto floats = qyolo::testing::run_cli("detect" + model + source + " --no-images --out " + out_float.string());
  ASSERT_EQ(bytes.exit_code, 0) << bytes.output;
  ASSERT_EQ(floats.exit_code, 0) << floats.output;
  auto read = [](const fs::path& p) {
    std::ifstream f(p);
    return std::string((std::istreambuf_iterator<char>(f)), {});
  };
  const std::string got = read(out_bytes / "detections.json"), want = read(out_float / "detections.json");
  EXPECT_FALSE(want.empty());
  EXPECT_EQ(got, want);
  fs::remove_all(out_bytes);
  fs::remove_all(out_float);
  auto bad = qyolo::testing::run_cli("bench" + model + " --input-format uint8-nchw");
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("unknown input format 'uint8-nchw'"), std::string::npos) << bad.output;
}
