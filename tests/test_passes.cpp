// Graph passes change structure, never results: each fused graph is compared with the unfused run
// of the same model (where Sigmoid/Mul/Add/BatchNormalization execute as separate kernels).
#include <cmath>
#include <random>

#include "backends/cpu/cpu_executor.h"
#include "onnx/onnx_import.h"
#include "onnx_builder.h"
#include "passes/passes.h"
#include "test_support.h"

using namespace qyolo;
using qyolo::testing::OnnxBuilder;

namespace {

std::vector<float> random_values(size_t n, unsigned seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

Tensor run_graph(const Graph& g, const Tensor& x, bool passes, size_t* nodes_after = nullptr) {
  auto sg = specialize(g, {{"x", x.shape()}});
  EXPECT_TRUE(sg.is_ok()) << sg.status().to_string();
  if (passes) {
    EXPECT_TRUE(run_default_passes(*sg).is_ok());
  }
  if (nodes_after) *nodes_after = sg->graph.nodes.size();
  auto ex = CpuExecutor::build(std::move(sg).value());
  EXPECT_TRUE(ex.is_ok()) << ex.status().to_string();
  std::map<std::string, Tensor> out;
  Status st = (*ex)->run({{"x", x}}, out);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return out.at("y");
}

void expect_close(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i)
    ASSERT_NEAR(a.data<float>()[i], b.data<float>()[i], 1e-4f + 1e-4f * std::fabs(b.data<float>()[i])) << i;
}

TEST(Passes, SiluAndResidualFuseIntoConvWithSameResult) {
  OnnxBuilder b;
  b.input("x", {1, 4, 8, 8});
  b.output("y");
  b.initializer("w", {4, 4, 3, 3}, random_values(4 * 4 * 9, 1, -0.3f, 0.3f));
  b.initializer("bias", {4}, random_values(4, 2));
  auto* conv = b.node("Conv", {"x", "w", "bias"}, {"c"}, "conv");
  OnnxBuilder::attr_ints(conv, "pads", {1, 1, 1, 1});
  b.node("Sigmoid", {"c"}, {"s"});
  b.node("Mul", {"c", "s"}, {"silu"});
  b.node("Add", {"x", "silu"}, {"y"});
  auto g = import_onnx_bytes(b.bytes(), "silu.onnx", ".");
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  Tensor x = Tensor::from_vector<float>({1, 4, 8, 8}, random_values(256, 3));
  size_t fused_nodes = 0;
  Tensor ref = run_graph(*g, x, false);
  Tensor fused = run_graph(*g, x, true, &fused_nodes);
  EXPECT_EQ(fused_nodes, 1u);  // Conv(silu, residual) only
  expect_close(fused, ref);
}

TEST(Passes, ConvOutputWithSecondConsumerIsNotFused) {
  OnnxBuilder b;
  b.input("x", {1, 2, 5, 5});
  b.output("y");
  b.output("c");
  b.initializer("w", {2, 2, 1, 1}, random_values(4, 4));
  b.node("Conv", {"x", "w"}, {"c"}, "conv");
  b.node("Relu", {"c"}, {"y"});
  auto g = import_onnx_bytes(b.bytes(), "m.onnx", ".");
  ASSERT_TRUE(g.is_ok());
  auto sg = specialize(*g, {{"x", {1, 2, 5, 5}}});
  ASSERT_TRUE(sg.is_ok());
  auto n = fuse_conv_epilogues(*sg);
  ASSERT_TRUE(n.is_ok());
  EXPECT_EQ(*n, 0);  // "c" is a graph output: fusing would lose it
}

TEST(Passes, BatchNormFoldsIntoConv) {
  OnnxBuilder b;
  b.input("x", {2, 3, 6, 6});
  b.output("y");
  b.initializer("w", {5, 3, 3, 3}, random_values(5 * 27, 5, -0.5f, 0.5f));
  b.initializer("scale", {5}, random_values(5, 6, 0.5f, 1.5f));
  b.initializer("shift", {5}, random_values(5, 7));
  b.initializer("mean", {5}, random_values(5, 8));
  b.initializer("var", {5}, random_values(5, 9, 0.2f, 2.f));
  b.node("Conv", {"x", "w"}, {"c"}, "conv");
  b.node("BatchNormalization", {"c", "scale", "shift", "mean", "var"}, {"bn"});
  b.node("LeakyRelu", {"bn"}, {"y"});
  auto g = import_onnx_bytes(b.bytes(), "bn.onnx", ".");
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  Tensor x = Tensor::from_vector<float>({2, 3, 6, 6}, random_values(216, 10, -2.f, 2.f));
  size_t nodes = 0;
  Tensor ref = run_graph(*g, x, false);
  Tensor fused = run_graph(*g, x, true, &nodes);
  EXPECT_EQ(nodes, 1u);  // Conv with folded BN and fused LeakyRelu
  expect_close(fused, ref);
}

}  // namespace
