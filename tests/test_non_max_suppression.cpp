// NonMaxSuppression (issue 16). The ONNX backend node tests (test_onnx_node.cpp runs all nine
// test_nonmaxsuppression_*) are the reference for the selection; here: its output shape depends on
// the data, so qyolo runs it on constants only (folded at build time) and refuses it, saying why,
// on a model's activations.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "onnx_builder.h"
#include "qyolo/engine.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::OnnxBuilder;

namespace {

void write_model(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f << bytes;
}

void add_int64(OnnxBuilder& b, const std::string& name, const std::vector<int64_t>& v) {
  auto* t = b.model().mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(static_cast<int64_t>(v.size()));
  for (int64_t x : v) t->add_int64_data(x);
}

class NonMaxSuppressionOp : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qyolo_nms_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// Boxes and scores from the image: K is known only at run time.
TEST_F(NonMaxSuppressionOp, OnActivationsIsRefusedAsDataDependent) {
  OnnxBuilder b(11);
  b.input("images", {1, 3, 4, 4});
  add_int64(b, "boxes_shape", {1, 12, 4});
  add_int64(b, "scores_shape", {1, 4, 12});
  add_int64(b, "max_out", {2});
  b.initializer("iou", {1}, {0.5f});
  b.node("Reshape", {"images", "boxes_shape"}, {"boxes"});
  b.node("Reshape", {"images", "scores_shape"}, {"scores"});
  b.node("NonMaxSuppression", {"boxes", "scores", "max_out", "iou"}, {"selected"}, "nms");
  b.output("selected", {-1, 3}, onnx::TensorProto::INT64);
  const fs::path p = dir_ / "nms_runtime.onnx";
  write_model(p, b.bytes());
  auto engine = Engine::build(p.string(), {});
  ASSERT_FALSE(engine.is_ok());
  EXPECT_EQ(engine.status().code(), StatusCode::kUnsupported);
  const std::string msg = engine.status().message();
  EXPECT_NE(msg.find("NonMaxSuppression node 'nms'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("data-dependent shape"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nms=False"), std::string::npos) << msg;
}

// On constants it is folded at build time. Hand-computed: box 1 overlaps box 0 with IoU
// 0.9 / 1.1 > 0.5 (suppressed), box 2 has no area (never suppressed, never suppresses), box 3 scores
// 0.3 <= score_threshold 0.4. Selected rows (0, 0, 0) and (0, 0, 2): their sum, 2, is added to the image.
TEST_F(NonMaxSuppressionOp, OnConstantsIsFoldedHandComputed) {
  OnnxBuilder b(11);
  b.input("images", {1, 1, 2, 2});
  b.initializer("boxes", {1, 4, 4},
                {0, 0, 1, 1, /**/ 0, 0.1f, 1, 1.1f, /**/ 0.5f, 0.5f, 0.5f, 0.5f, /**/ 2, 2, 3, 3});
  b.initializer("scores", {1, 1, 4}, {0.9f, 0.8f, 0.7f, 0.3f});
  add_int64(b, "max_out", {10});
  b.initializer("iou", {1}, {0.5f});
  b.initializer("score_thr", {1}, {0.4f});
  b.node("NonMaxSuppression", {"boxes", "scores", "max_out", "iou", "score_thr"}, {"selected"}, "nms");
  auto* cast = b.node("Cast", {"selected"}, {"selected_f"});
  auto* to = cast->add_attribute();
  to->set_name("to");
  to->set_type(onnx::AttributeProto::INT);
  to->set_i(onnx::TensorProto::FLOAT);
  auto* sum = b.node("ReduceSum", {"selected_f"}, {"total"});
  auto* keep = sum->add_attribute();
  keep->set_name("keepdims");
  keep->set_type(onnx::AttributeProto::INT);
  keep->set_i(0);
  b.node("Add", {"images", "total"}, {"out"});
  b.output("out", {1, 1, 2, 2});
  const fs::path p = dir_ / "nms_const.onnx";
  write_model(p, b.bytes());
  auto engine = Engine::build(p.string(), {});
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  auto ctx = (*engine)->create_context();
  ASSERT_TRUE(ctx.is_ok());
  Tensor x(DataType::kFloat32, {1, 1, 2, 2});
  for (int i = 0; i < 4; ++i) x.data<float>()[i] = static_cast<float>(i);
  Tensor y;
  ASSERT_TRUE((*ctx)->run(x, y).is_ok());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(y.data<float>()[i], static_cast<float>(i) + 2.f) << i;
}

}  // namespace
