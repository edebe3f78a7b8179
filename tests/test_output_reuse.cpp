// ExecutionContext::run writes into the caller's output storage when nobody else holds it, and
// allocates new storage otherwise (tensors sharing the old storage keep their values).
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "onnx_builder.h"
#include "qyolo/engine.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::OnnxBuilder;

namespace {

// out = images * 3 (+ a second output images + 1), images [1, 2, 2, 2].
std::string scale_model() {
  OnnxBuilder b(13);
  b.input("images", {1, 2, 2, 2});
  b.initializer("three", {}, {3.f});
  b.initializer("one", {}, {1.f});
  b.node("Mul", {"images", "three"}, {"out"});
  b.node("Add", {"images", "one"}, {"plus"});
  b.output("out", {1, 2, 2, 2});
  b.output("plus", {1, 2, 2, 2});
  return b.bytes();
}

Tensor filled(float first) {
  Tensor t(DataType::kFloat32, {1, 2, 2, 2});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = first + static_cast<float>(i);
  return t;
}

void expect_scaled(const Tensor& out, float first, float factor) {
  ASSERT_EQ(out.shape(), (Shape{1, 2, 2, 2}));
  for (int64_t i = 0; i < out.numel(); ++i)
    EXPECT_EQ(out.data<float>()[i], (first + static_cast<float>(i)) * factor) << i;
}

class OutputReuse : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qyolo_output_reuse_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    const std::string path = (dir_ / "m.onnx").string();
    std::ofstream(path, std::ios::binary) << scale_model();
    auto engine = Engine::build(path, {});
    ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
    engine_ = *engine;
    auto ctx = engine_->create_context();
    ASSERT_TRUE(ctx.is_ok());
    ctx_ = std::move(*ctx);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::shared_ptr<const Engine> engine_;
  std::unique_ptr<ExecutionContext> ctx_;
};

TEST_F(OutputReuse, SoleOwnerIsWrittenInPlace) {
  Tensor out;
  ASSERT_TRUE(ctx_->run(filled(1.f), out).is_ok());
  expect_scaled(out, 1.f, 3.f);
  const void* storage = out.raw();
  ASSERT_TRUE(ctx_->run(filled(10.f), out).is_ok());
  EXPECT_EQ(out.raw(), storage);
  expect_scaled(out, 10.f, 3.f);
}

TEST_F(OutputReuse, SharedStorageIsNotOverwritten) {
  Tensor out;
  ASSERT_TRUE(ctx_->run(filled(1.f), out).is_ok());
  const Tensor copy = out;                // shares the storage
  const Tensor view = out.reshaped({8});  // so does a reshape
  ASSERT_TRUE(ctx_->run(filled(20.f), out).is_ok());
  EXPECT_NE(out.raw(), copy.raw());
  expect_scaled(out, 20.f, 3.f);
  expect_scaled(copy, 1.f, 3.f);
  EXPECT_EQ(view.data<float>()[7], (1.f + 7.f) * 3.f);
}

TEST_F(OutputReuse, WrongShapeOrTypeGetsNewStorage) {
  Tensor out(DataType::kFloat32, {1, 2, 2, 3});
  ASSERT_TRUE(ctx_->run(filled(2.f), out).is_ok());
  expect_scaled(out, 2.f, 3.f);
  Tensor ints(DataType::kInt32, {1, 2, 2, 2});
  ASSERT_TRUE(ctx_->run(filled(4.f), ints).is_ok());
  EXPECT_EQ(ints.dtype(), DataType::kFloat32);
  expect_scaled(ints, 4.f, 3.f);
}

TEST_F(OutputReuse, InputPassedAsOutput) {
  Tensor t = filled(5.f);
  ASSERT_TRUE(ctx_->run(t, t).is_ok());
  expect_scaled(t, 5.f, 3.f);
}

TEST_F(OutputReuse, ErrorKeepsTheCallersOutput) {
  Tensor out;
  ASSERT_TRUE(ctx_->run(filled(1.f), out).is_ok());
  const void* storage = out.raw();
  Tensor wrong(DataType::kFloat32, {1, 2, 2, 3});  // outside the static engine's shape
  EXPECT_FALSE(ctx_->run(wrong, out).is_ok());
  EXPECT_EQ(out.raw(), storage);
  expect_scaled(out, 1.f, 3.f);
}

TEST_F(OutputReuse, EveryOutputOfTheVectorForm) {
  std::vector<Tensor> outs;
  ASSERT_TRUE(ctx_->run(filled(1.f), outs).is_ok());
  ASSERT_EQ(outs.size(), 2u);
  const void* a = outs[0].raw();
  const void* b = outs[1].raw();
  const Tensor held = outs[1];
  ASSERT_TRUE(ctx_->run(filled(7.f), outs).is_ok());
  ASSERT_EQ(outs.size(), 2u);
  EXPECT_EQ(outs[0].raw(), a);
  EXPECT_NE(outs[1].raw(), b);
  expect_scaled(outs[0], 7.f, 3.f);
  for (int64_t i = 0; i < 8; ++i) {
    EXPECT_EQ(outs[1].data<float>()[i], 7.f + static_cast<float>(i) + 1.f);
    EXPECT_EQ(held.data<float>()[i], 1.f + static_cast<float>(i) + 1.f);
  }
}

}  // namespace
