// ONNX import details: external data, opset range, ultralytics metadata; and the val500 mAP of the
// FP32 engine against the reference accuracy in ../shared/models/MODELS.md.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "onnx/onnx_import.h"
#include "onnx_builder.h"
#include "runtime/engine_impl.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::OnnxBuilder;
using qyolo::testing::shared_dir;

namespace {

TEST(OnnxImport, ReadsExternalData) {
  fs::path dir = fs::temp_directory_path() / ("qyolo_ext_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::vector<float> w = {1.5f, -2.f, 3.25f, 4.f};
  {
    std::ofstream f(dir / "weights.bin", std::ios::binary);
    f.write("PADDING!", 8);
    f.write(reinterpret_cast<const char*>(w.data()), 16);
  }
  OnnxBuilder b;
  b.input("x", {1, 4});
  b.output("y");
  auto* t = b.model().mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(1);
  t->add_dims(4);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto add_kv = [&](const char* k, const char* v) {
    auto* e = t->add_external_data();
    e->set_key(k);
    e->set_value(v);
  };
  add_kv("location", "weights.bin");
  add_kv("offset", "8");
  add_kv("length", "16");
  b.node("Add", {"x", "w"}, {"y"});
  {
    std::ofstream f(dir / "model.onnx", std::ios::binary);
    f << b.bytes();
  }
  auto g = import_onnx((dir / "model.onnx").string());
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  const Tensor& loaded = g->initializers.at("w");
  ASSERT_EQ(loaded.numel(), 4);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(loaded.data<float>()[i], w[static_cast<size_t>(i)]);
  // A missing external file is a clear error naming it.
  fs::remove(dir / "weights.bin");
  auto bad = import_onnx((dir / "model.onnx").string());
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("weights.bin"), std::string::npos) << bad.status().to_string();
  fs::remove_all(dir);
}

TEST(OnnxImport, RejectsOpsetOutsideRange) {
  OnnxBuilder b(99);
  b.input("x", {1});
  b.output("y");
  b.node("Relu", {"x"}, {"y"});
  auto g = import_onnx_bytes(b.bytes(), "future.onnx", ".");
  ASSERT_FALSE(g.is_ok());
  EXPECT_NE(g.status().message().find("opset 99"), std::string::npos) << g.status().to_string();
}

TEST(OnnxImport, RejectsUnknownAndInternalOps) {
  for (const char* op : {"NotAnOnnxOp", "QyoloYoloDecode"}) {
    OnnxBuilder b(13);
    b.input("x", {1, 255, 4, 4});
    b.output("y");
    b.node(op, {"x"}, {"y"}, "n0");
    auto g = import_onnx_bytes(b.bytes(), "odd.onnx", ".");
    ASSERT_FALSE(g.is_ok()) << op;
    EXPECT_EQ(g.status().code(), StatusCode::kUnsupported);
    EXPECT_NE(g.status().message().find(std::string("operator '") + op + "' is not supported"), std::string::npos)
        << g.status().to_string();
  }
}

TEST(OnnxImport, ParsesUltralyticsClassNames) {
  auto names = parse_class_names("{0: 'person', 1: 'bicycle', 2: \"traffic light\", 10: 'x'}");
  ASSERT_EQ(names.size(), 11u);
  EXPECT_EQ(names[0], "person");
  EXPECT_EQ(names[2], "traffic light");
  EXPECT_EQ(names[10], "x");
  EXPECT_EQ(names[5], "");
}

TEST(OnnxImport, SharedModelsHaveClassNamesAndStride) {
  QYOLO_REQUIRE_SHARED("models/yolov5s-dynamic.onnx");
  auto e = Engine::build((shared_dir() / "models/yolov5s-dynamic.onnx").string(), {});
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ((*e)->info().class_names.size(), 80u);
  EXPECT_EQ((*e)->info().class_names[5], "bus");
  EXPECT_EQ((*e)->info().stride, 32);
  EXPECT_EQ((*e)->info().input_dims, (std::vector<int64_t>{-1, 3, -1, -1}));
}

// `qyolo eval` of the FP32 yolov5n on val500: mAP50-95 within 0.01 of MODELS.md's 0.283.
TEST(EvalVal500, Yolov5nFp32MatchesReferenceMap) {
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  QYOLO_REQUIRE_SHARED("data/val500/instances.json");
  fs::path json = fs::temp_directory_path() / ("qyolo_eval_" + std::to_string(::getpid()) + ".json");
  std::string cmd = std::string(QYOLO_CLI_PATH) + " eval -q --model " + (shared_dir() / "models/yolov5n.onnx").string() +
                    " --data " + (shared_dir() / "data/val500").string() + " --json " + json.string() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  std::ifstream f(json);
  auto j = nlohmann::json::parse(f);
  fs::remove(json);
  std::printf("yolov5n FP32 val500: mAP50-95 %.4f mAP50 %.4f (%.1f images/s)\n", j["map50_95"].get<double>(),
              j["map50"].get<double>(), j["images_per_s"].get<double>());
  EXPECT_NEAR(j["map50_95"].get<double>(), 0.283, 0.01);
  EXPECT_NEAR(j["map50"].get<double>(), 0.459, 0.015);
  EXPECT_EQ(j["images"].get<int>(), 500);
}

}  // namespace
