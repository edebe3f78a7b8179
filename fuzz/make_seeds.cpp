// Writes the generated part of the fuzz seed corpora (issue 17) into <out>/<target>/: small models
// built with the test builders (tests/onnx_builder.h, tests/head_models.h), engine files made from
// them, calibration caches, PPQ json, images and shape specs. scripts/make-fuzz-seeds.sh adds
// files from ../shared. Nothing here is checked into git.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "calib/calib_cache.h"
#include "head_models.h"
#include "onnx_builder.h"
#include "qyolo/engine.h"
#include "qyolo/image.h"

namespace fs = std::filesystem;
using qyolo::testing::OnnxBuilder;

namespace {

void put(const fs::path& out, const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(out / target);
  std::ofstream(out / target / name, std::ios::binary) << bytes;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

void int64s(OnnxBuilder& b, const std::string& name, const std::vector<int64_t>& v) {
  auto* t = b.model().mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(static_cast<int64_t>(v.size()));
  for (int64_t x : v) t->add_int64_data(x);
}

void attr_int(onnx::NodeProto* n, const std::string& key, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(key);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

// Small models covering the ops whose shape inference does arithmetic on attributes and constants.
std::vector<std::pair<std::string, std::string>> op_models() {
  std::vector<std::pair<std::string, std::string>> out;
  {
    OnnxBuilder b;
    b.input("x", {1, 3, 8, 8});
    b.output("y");
    b.initializer("w", {4, 3, 3, 3}, std::vector<float>(108, 0.1f));
    b.initializer("bias", {4}, {0.f, 1.f, 2.f, 3.f});
    auto* n = b.node("Conv", {"x", "w", "bias"}, {"c"});
    OnnxBuilder::attr_ints(n, "pads", {1, 1, 1, 1});
    OnnxBuilder::attr_ints(n, "strides", {2, 2});
    OnnxBuilder::attr_ints(n, "dilations", {1, 1});
    auto* p = b.node("MaxPool", {"c"}, {"p"});
    OnnxBuilder::attr_ints(p, "kernel_shape", {2, 2});
    OnnxBuilder::attr_ints(p, "strides", {2, 2});
    attr_int(p, "ceil_mode", 1);
    int64s(b, "shape", {1, -1});
    b.node("Reshape", {"p", "shape"}, {"r"});
    auto* s = b.node("Softmax", {"r"}, {"y"});
    attr_int(s, "axis", 1);
    out.emplace_back("conv_pool_reshape.onnx", b.bytes());
  }
  {
    OnnxBuilder b;
    b.input("x", {1, 4, 6, 6});
    b.output("y");
    int64s(b, "starts", {1, 0});
    int64s(b, "ends", {INT64_MAX, -1});
    int64s(b, "axes", {2, 3});
    int64s(b, "steps", {2, 1});
    b.node("Slice", {"x", "starts", "ends", "axes", "steps"}, {"s"});
    int64s(b, "reps", {1, 2, 1, 1});
    b.node("Tile", {"s", "reps"}, {"t"});
    int64s(b, "split", {3, 5});
    auto* sp = b.node("Split", {"t", "split"}, {"a", "b"});
    attr_int(sp, "axis", 1);
    auto* c = b.node("Concat", {"b", "a"}, {"cat"});
    attr_int(c, "axis", 1);
    auto* tr = b.node("Transpose", {"cat"}, {"y"});
    OnnxBuilder::attr_ints(tr, "perm", {0, 2, 3, 1});
    out.emplace_back("slice_tile_split.onnx", b.bytes());
  }
  {
    OnnxBuilder b;
    b.input("x", {1, 2, 4, 4});
    b.output("y");
    b.initializer("roi", {0}, {});
    b.initializer("scales", {4}, {1.f, 1.f, 2.f, 2.f});
    auto* r = b.node("Resize", {"x", "roi", "scales"}, {"up"});
    auto* mode = r->add_attribute();
    mode->set_name("mode");
    mode->set_type(onnx::AttributeProto::STRING);
    mode->set_s("nearest");
    b.node("Shape", {"up"}, {"shp"});
    b.node("ConstantOfShape", {"shp"}, {"zeros"});
    b.node("Add", {"up", "zeros"}, {"sum"});
    int64s(b, "one", {1});
    b.node("Expand", {"sum", "shp"}, {"e"});
    auto* fl = b.node("Flatten", {"e"}, {"y"});
    attr_int(fl, "axis", 2);
    out.emplace_back("resize_shape_expand.onnx", b.bytes());
  }
  {
    OnnxBuilder b;
    b.input("x", {2, 5});
    b.output("y");
    auto* t0 = b.model().mutable_graph()->add_initializer();
    t0->set_name("start");
    t0->set_data_type(onnx::TensorProto::INT64);
    t0->add_int64_data(0);
    auto* t1 = b.model().mutable_graph()->add_initializer();
    t1->set_name("limit");
    t1->set_data_type(onnx::TensorProto::INT64);
    t1->add_int64_data(5);
    auto* t2 = b.model().mutable_graph()->add_initializer();
    t2->set_name("delta");
    t2->set_data_type(onnx::TensorProto::INT64);
    t2->add_int64_data(1);
    b.node("Range", {"start", "limit", "delta"}, {"idx"});
    auto* g = b.node("Gather", {"x", "idx"}, {"gx"});
    attr_int(g, "axis", 1);
    int64s(b, "ax", {0});
    b.node("Unsqueeze", {"gx", "ax"}, {"u"});
    b.node("Squeeze", {"u", "ax"}, {"y"});
    out.emplace_back("range_gather.onnx", b.bytes());
  }
  {
    OnnxBuilder b;
    b.input("x", {1, 2, 4, 4});
    b.output("y");
    b.initializer("s", {}, {0.05f});
    auto* zp = b.model().mutable_graph()->add_initializer();
    zp->set_name("zp");
    zp->set_data_type(onnx::TensorProto::INT8);
    zp->add_int32_data(0);
    b.node("QuantizeLinear", {"x", "s", "zp"}, {"q"});
    b.node("DequantizeLinear", {"q", "s", "zp"}, {"dq"});
    auto* ap = b.node("AveragePool", {"dq"}, {"ap"});
    OnnxBuilder::attr_ints(ap, "kernel_shape", {3, 3});
    OnnxBuilder::attr_ints(ap, "pads", {1, 1, 1, 1});
    b.node("GlobalAveragePool", {"ap"}, {"y"});
    out.emplace_back("qdq_pool.onnx", b.bytes());
  }
  return out;
}

void onnx_seeds(const fs::path& out) {
  using namespace qyolo::testing;
  put(out, "onnx", "yolov8_raw.onnx", yolov8_raw_model(32, 32, 2, false));
  put(out, "onnx", "yolov8_raw_split_dynamic.onnx", yolov8_raw_model(-1, -1, 2, true));
  put(out, "onnx", "yolov5_raw.onnx", yolov5_raw_model(32, 32, 2));
  put(out, "onnx", "yolox.onnx", yolox_model(32, 32, 2));
  put(out, "onnx", "yolov8_decoded.onnx", yolov8_decoded_model(32, 32, 2));
  for (const auto& [name, bytes] : op_models()) put(out, "onnx", name, bytes);
}

void engine_seeds(const fs::path& out, const fs::path& tmp) {
  // Engine files without their 8-byte checksum: the target appends the right one.
  const fs::path model = tmp / "tiny.onnx";
  std::ofstream(model, std::ios::binary) << qyolo::testing::yolov8_raw_model(-1, -1, 2, false);
  qyolo::BuildOptions fp32;
  fp32.profile = qyolo::ShapeProfile{{1, 3, 32, 32}, {1, 3, 32, 32}, {2, 3, 64, 64}};
  auto e = qyolo::Engine::build(model.string(), fp32);
  if (!e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.status().to_string().c_str());
    std::exit(1);
  }
  const fs::path file = tmp / "e.qengine";
  if (!(*e)->save(file.string()).is_ok()) std::exit(1);
  std::string bytes = slurp(file);
  put(out, "engine_file", "fp32.qengine", bytes.substr(0, bytes.size() - 8));
  // INT8 with a calibration cache: the file then carries activation scales.
  qyolo::CalibrationTable t;
  t.algorithm = "EntropyCalibration2";
  t.scales = {{"images", 1.f / 127.f}};
  const fs::path cache = tmp / "c.cache";
  if (!qyolo::write_calibration_cache(cache, t).is_ok()) std::exit(1);
  qyolo::BuildOptions int8 = fp32;
  int8.precision = qyolo::Precision::kInt8;
  int8.calibration_file = cache.string();
  auto q = qyolo::Engine::build(model.string(), int8);
  if (q && (*q)->save(file.string()).is_ok()) {
    bytes = slurp(file);
    put(out, "engine_file", "int8.qengine", bytes.substr(0, bytes.size() - 8));
  }
}

void calib_seeds(const fs::path& out) {
  qyolo::CalibrationTable t;
  t.algorithm = "EntropyCalibration2";
  t.scales = {{"images", 1.f / 127.f}, {"/model.0/conv/Conv_output_0", 0.0693147f}, {"odd: name", 12.5f}};
  put(out, "calib_cache", "entropy.cache", *qyolo::format_calibration_cache(t));
  put(out, "calib_cache", "trt10.cache",
      "TRT-100300-MinMaxCalibration\r\nx: 3e000000\r\n\r\n(Unnamed Layer* 3) [Activation]_output: "
      "3F800000\n");
  put(out, "ppq_json", "ranges.json",
      R"({"act_quant_info": {"images": 1.0, "/model.0/conv/Conv_output_0": 6.35, "/model.2/Concat_output_0": [-3.5, 2.0]}})");
  put(out, "ppq_json", "full.json",
      R"({"algorithm": "ppq", "act_quant_info": {"a": 0.5, "b": [0.25, 1e-3]}, "weight_quant_info": {}})");
}

void image_seeds(const fs::path& out) {
  qyolo::Image im(17, 9);
  for (int y = 0; y < im.height; ++y)
    for (int x = 0; x < im.width; ++x) {
      uint8_t* p = im.pixel(x, y);
      p[0] = static_cast<uint8_t>(x * 15);
      p[1] = static_cast<uint8_t>(y * 28);
      p[2] = static_cast<uint8_t>((x ^ y) * 9);
    }
  const fs::path dir = out / "image";
  fs::create_directories(dir);
  (void)qyolo::save_jpeg((dir / "gradient.jpg").string(), im, 90);
  (void)qyolo::save_jpeg((dir / "gradient_q10.jpg").string(), im, 10);
  (void)qyolo::save_png((dir / "gradient.png").string(), im);
  (void)qyolo::save_png((dir / "one_pixel.png").string(), qyolo::Image(1, 1, 200));
  (void)qyolo::save_jpeg((dir / "one_pixel.jpg").string(), qyolo::Image(1, 1, 30));
}

void shape_seeds(const fs::path& out) {
  const char* specs[] = {"images:1x3x640x640", "1x3x32x32", "x:1", "a:b:2x3", "input.1:64x3x4096x4096"};
  int i = 0;
  for (const char* s : specs) put(out, "shape_spec", "spec" + std::to_string(i++), s);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <out-dir>\n", argv[0]);
    return 2;
  }
  const fs::path out = argv[1];
  const fs::path tmp = out / ".tmp";
  fs::create_directories(tmp);
  onnx_seeds(out);
  engine_seeds(out, tmp);
  calib_seeds(out);
  image_seeds(out);
  shape_seeds(out);
  fs::remove_all(tmp);
  return 0;
}
