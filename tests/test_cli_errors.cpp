// Bad input gets a clear error naming the file/node/value and a non-zero exit, never a crash.
// These run the real `qyolo` binary.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>

#include "onnx_builder.h"
#include "cli_runner.h"
#include "test_support.h"

namespace fs = std::filesystem;
using qyolo::testing::shared_dir;

using qyolo::testing::CliResult;
using qyolo::testing::run_cli;

namespace {

class CliErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qyolo_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) {
    std::ofstream f(dir_ / name, std::ios::binary);
    f << bytes;
    return (dir_ / name).string();
  }
  void expect_clean_failure(const CliResult& r, const std::string& must_mention) {
    EXPECT_FALSE(r.signalled) << r.output;
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("error"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(must_mention), std::string::npos) << "message should name '" << must_mention << "': " << r.output;
  }
  fs::path dir_;
};

TEST_F(CliErrors, MissingModelFile) {
  auto r = run_cli("info --model /nonexistent/model.onnx");
  expect_clean_failure(r, "/nonexistent/model.onnx");
}

TEST_F(CliErrors, GarbageOnnx) {
  std::string path = write("garbage.onnx", "this is not a protobuf at all \x01\x02\x03");
  expect_clean_failure(run_cli("info --model " + path), "garbage.onnx");
}

TEST_F(CliErrors, TruncatedOnnx) {
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  std::ifstream f(shared_dir() / "models/yolov5n.onnx", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  std::string path = write("truncated.onnx", bytes.substr(0, bytes.size() / 2));
  expect_clean_failure(run_cli("detect --model " + path + " --source " + (shared_dir() / "data/samples/bus.jpg").string() +
                               " --out " + (dir_ / "out").string()),
                       "truncated.onnx");
}

TEST_F(CliErrors, UnsupportedOpNamesTheNode) {
  qyolo::testing::OnnxBuilder b;
  b.input("images", {1, 3, 32, 32});
  b.output("y");
  b.node("Einsum", {"images"}, {"y"}, "my_weird_node");
  std::string path = write("unsupported.onnx", b.bytes());
  auto r = run_cli("info --model " + path);
  expect_clean_failure(r, "my_weird_node");
  EXPECT_NE(r.output.find("Einsum"), std::string::npos) << r.output;
}

TEST_F(CliErrors, WrongInputRank) {
  qyolo::testing::OnnxBuilder b;
  b.input("images", {3, 32, 32});
  b.output("y");
  b.node("Relu", {"images"}, {"y"});
  std::string path = write("rank3.onnx", b.bytes());
  auto r = run_cli("build --model " + path + " --out " + (dir_ / "x.qengine").string());
  expect_clean_failure(r, "rank 3");
  EXPECT_FALSE(fs::exists(dir_ / "x.qengine"));
}

TEST_F(CliErrors, ShapeOutsideProfile) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-dynamic.onnx");
  auto r = run_cli("detect --model " + (shared_dir() / "models/yolov5n-dynamic.onnx").string() +
                   " --min-shapes images:1x3x320x320 --opt-shapes images:1x3x320x320 --max-shapes images:1x3x480x480"
                   " --imgsz 640 --source " + (shared_dir() / "data/samples/bus.jpg").string() + " --out " +
                   (dir_ / "out").string());
  expect_clean_failure(r, "640x640");
}

TEST_F(CliErrors, CorruptImage) {
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  std::string img = write("broken.jpg", std::string("\xff\xd8\xff\xe0 not really a jpeg"));
  auto r = run_cli("detect --model " + (shared_dir() / "models/yolov5n.onnx").string() + " --source " + img +
                   " --out " + (dir_ / "out").string());
  expect_clean_failure(r, "broken.jpg");
}

TEST_F(CliErrors, MissingImageFolder) {
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  auto r = run_cli("detect --model " + (shared_dir() / "models/yolov5n.onnx").string() + " --source " +
                   (dir_ / "nope").string());
  expect_clean_failure(r, "nope");
}

// --all-int8 only means something next to --int8 --fp16 (--int8 alone runs every eligible conv
// in INT8 already): refused with the reason, and no engine file written.
TEST_F(CliErrors, AllInt8WithoutInt8Fp16) {
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  auto r = run_cli("build --model " + (shared_dir() / "models/yolov5n.onnx").string() + " --int8 --all-int8 --out " +
                   (dir_ / "a.qengine").string());
  expect_clean_failure(r, "--all-int8");
  EXPECT_NE(r.output.find("--int8 --fp16"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "a.qengine"));
}

TEST_F(CliErrors, CorruptedEngineFile) {
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  std::string engine = (dir_ / "n.qengine").string();
  auto ok = run_cli("build --model " + (shared_dir() / "models/yolov5n.onnx").string() + " --out " + engine);
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  std::string bytes;
  {
    std::ifstream f(engine, std::ios::binary);
    bytes.assign((std::istreambuf_iterator<char>(f)), {});
  }
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x5a;
  std::string bad = write("flipped.qengine", flipped);
  expect_clean_failure(run_cli("detect --engine " + bad + " --source " +
                               (shared_dir() / "data/samples/bus.jpg").string() + " --out " + (dir_ / "o").string()),
                       "checksum");
  std::string other_version = bytes;
  other_version[8] = 99;  // format version field
  std::string old = write("old.qengine", other_version);
  expect_clean_failure(run_cli("eval --engine " + old + " --data " + (shared_dir() / "data/val500").string()),
                       "version");
  std::string cut = write("cut.qengine", bytes.substr(0, 100));
  expect_clean_failure(run_cli("eval --engine " + cut + " --data " + (shared_dir() / "data/val500").string()),
                       "cut.qengine");
}

}  // namespace
