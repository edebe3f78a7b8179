// The CUDA kernels of the ops beyond YOLOv5 (issue 16: Softmax, MatMul, Gemm, the Reduce family,
// Floor/Ceil/Round/Erf, Pad, GatherElements, LayerNormalization, ArgMax, TopK, ConvTranspose)
// against the CPU backend on random inputs, in every precision/layout configuration, outputs and
// arena poisoned first. Where a kernel's result jumps with its input (rounding, argmax, top-k),
// inputs are multiples of 1/16 (exact in half, ties included) so fp16 runs compare exactly too.
#include <gtest/gtest.h>

#include "gpu_test_support.h"

using namespace qyolo;
using namespace qyolo::gputest;

namespace {

using Attrs = std::map<std::string, AttrValue>;

// Conv(x -> out) 3x3 pad 1 with random weights and bias: puts an NHWC producer in front in the
// NHWC configurations, so the kernels' inputs go through the executor's layout conversion.
void add_conv(GraphSpec& spec, std::mt19937& rng, const std::string& x, const std::string& out, int64_t c,
              int64_t k) {
  const float s = 1.0f / std::sqrt(static_cast<float>(c * 9));
  spec.constants[out + "_w"] = random_tensor({k, c, 3, 3}, rng, -s, s);
  spec.constants[out + "_b"] = random_tensor({k}, rng, -0.5f, 0.5f);
  spec.nodes.push_back(
      make_node("Conv", {x, out + "_w", out + "_b"}, {out},
                {{"kernel_shape", std::vector<int64_t>{3, 3}}, {"pads", std::vector<int64_t>{1, 1, 1, 1}}}));
}

// lo16/16 .. hi16/16 in steps of 1/16 (exact in half for |lo16|, |hi16| < 2048): step functions of them
// (floor, argmax, top-k) agree in every precision.
Tensor sixteenths(const Shape& shape, std::mt19937& rng, int lo16, int hi16) {
  Tensor t(DataType::kFloat32, shape);
  std::uniform_int_distribution<int> d(lo16, hi16);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(d(rng)) / 16.f;
  return t;
}

Tensor int_tensor(const Shape& shape, std::mt19937& rng, int64_t lo, int64_t hi) {
  std::vector<int64_t> v(static_cast<size_t>(shape_numel(shape)));
  std::uniform_int_distribution<int64_t> d(lo, hi);
  for (auto& x : v) x = d(rng);
  return Tensor::from_vector<int64_t>(shape, v);
}

TEST(CudaOps, Softmax) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 101);
  GraphSpec spec;
  // The YOLOv8 DFL: conv -> [1, 4, 16, A] -> transpose -> softmax over the 16 bins (axis 1).
  spec.inputs = {{"x", {1, 16, 10, 12}}, {"r", {3, 5, 300}}, {"m", {2, 3, 4, 5}}};
  add_conv(spec, rng, "x", "c", 16, 64);
  spec.constants["dfl_shape"] = ints({1, 4, 16, 120});
  spec.nodes.push_back(make_node("Reshape", {"c", "dfl_shape"}, {"d"}));
  spec.nodes.push_back(make_node("Transpose", {"d"}, {"dt"}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}}));
  spec.nodes.push_back(make_node("Softmax", {"dt"}, {"dfl"}, {{"axis", int64_t{1}}}));
  spec.nodes.push_back(make_node("Softmax", {"r"}, {"rows"}));  // last axis: warp per row
  spec.nodes.push_back(make_node("Softmax", {"m"}, {"mid"}, {{"axis", int64_t{-2}}}));  // inner 5
  spec.nodes.push_back(make_node("Softmax", {"c"}, {"chan"}, {{"axis", int64_t{1}}}));  // NHWC producer
  spec.outputs = {"dfl", "rows", "mid", "chan"};
  expect_gpu_matches_cpu(spec, -4.f, 4.f);
}

TEST(CudaOps, MatMulBatchedAndBroadcast) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 102);
  GraphSpec spec;
  spec.inputs = {{"a", {2, 3, 4, 5}}, {"b", {5, 6}},    {"p", {2, 1, 7, 5}}, {"q", {3, 5, 9}},
                 {"v", {5}},          {"w", {2, 5, 3}}, {"m", {4, 5}},       {"qk", {1, 2, 40, 32}}};
  spec.constants["wc"] = random_tensor({6, 33}, rng);
  spec.nodes.push_back(make_node("MatMul", {"a", "b"}, {"ab"}));     // batched x 2-D
  spec.nodes.push_back(make_node("MatMul", {"p", "q"}, {"pq"}));     // [2,1] x [3] batch broadcast
  spec.nodes.push_back(make_node("MatMul", {"v", "w"}, {"vw"}));     // 1-D x batched: [2, 3]
  spec.nodes.push_back(make_node("MatMul", {"m", "v"}, {"mv"}));     // 2-D x 1-D: [4]
  spec.nodes.push_back(make_node("MatMul", {"ab", "wc"}, {"abw"}));  // constant weight, k 6 < tile
  // C2PSA attention: q^T k, softmax, v q (k 32 and 40: two tiles and a partial one).
  spec.nodes.push_back(make_node("Transpose", {"qk"}, {"qt"}, {{"perm", std::vector<int64_t>{0, 1, 3, 2}}}));
  spec.nodes.push_back(make_node("MatMul", {"qt", "qk"}, {"att"}));
  spec.nodes.push_back(make_node("Softmax", {"att"}, {"att_s"}, {{"axis", int64_t{-1}}}));
  spec.nodes.push_back(make_node("MatMul", {"qk", "att_s"}, {"ctx"}));
  spec.outputs = {"ab", "pq", "vw", "mv", "abw", "att", "ctx"};
  expect_gpu_matches_cpu(spec);
}

TEST(CudaOps, Gemm) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 103);
  GraphSpec spec;
  spec.inputs = {{"a", {20, 37}}, {"at", {37, 20}}, {"cm", {20, 1}}};
  spec.constants["w"] = random_tensor({18, 37}, rng);  // transB: a classifier's [out, in] weight
  spec.constants["wn"] = random_tensor({37, 18}, rng);
  spec.constants["bias"] = random_tensor({18}, rng);
  spec.constants["full"] = random_tensor({20, 18}, rng);
  spec.nodes.push_back(make_node("Gemm", {"a", "w", "bias"}, {"fc"}, {{"transB", int64_t{1}}}));
  spec.nodes.push_back(make_node("Gemm", {"at", "wn", "full"}, {"ta"},
                                 {{"transA", int64_t{1}}, {"alpha", 0.5f}, {"beta", 2.f}}));
  spec.nodes.push_back(make_node("Gemm", {"a", "wn", "cm"}, {"col"}, {{"beta", -1.f}}));  // C [M, 1]
  spec.nodes.push_back(
      make_node("Gemm", {"at", "w"}, {"both"}, {{"transA", int64_t{1}}, {"transB", int64_t{1}}}));
  spec.outputs = {"fc", "ta", "col", "both"};
  expect_gpu_matches_cpu(spec);
}

TEST(CudaOps, ReduceFamily) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 104);
  GraphSpec spec;
  spec.opset = 13;  // ReduceSum takes axes as an input, the others as an attribute
  spec.inputs = {{"x", {2, 3, 4, 5}}, {"big", {2, 3000}}, {"f", {2, 8, 6, 5}}};
  add_conv(spec, rng, "f", "c", 8, 8);
  spec.constants["ax02"] = ints({0, 2});
  spec.nodes.push_back(make_node("ReduceMax", {"x"}, {"max1"}, {{"axes", std::vector<int64_t>{1}}}));
  spec.nodes.push_back(make_node("ReduceMin", {"x"}, {"min_last"},
                                 {{"axes", std::vector<int64_t>{-1}}, {"keepdims", int64_t{0}}}));
  spec.nodes.push_back(make_node("ReduceMean", {"c"}, {"mean_hw"}, {{"axes", std::vector<int64_t>{2, 3}}}));
  spec.nodes.push_back(make_node("ReduceSum", {"x", "ax02"}, {"sum02"}, {{"keepdims", int64_t{0}}}));
  spec.nodes.push_back(make_node("ReduceSumSquare", {"x"}, {"ssq_all"}));  // no axes: all
  spec.nodes.push_back(make_node("ReduceSum", {"x"}, {"noop"}, {{"noop_with_empty_axes", int64_t{1}}}));
  spec.nodes.push_back(make_node("ReduceMax", {"big"}, {"big_max"}, {{"axes", std::vector<int64_t>{1}}}));
  spec.nodes.push_back(make_node("ReduceMean", {"big"}, {"big_mean"}, {{"axes", std::vector<int64_t>{0}}}));
  spec.outputs = {"max1", "min_last", "mean_hw", "sum02", "ssq_all", "noop", "big_max", "big_mean"};
  expect_gpu_matches_cpu(spec);
}

TEST(CudaOps, RoundingAndErf) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 105);
  GraphSpec spec;
  spec.inputs = {{"x", {2, 3, 7, 9}}, {"f", {1, 4, 6, 6}}};
  add_conv(spec, rng, "f", "c", 4, 8);
  for (const char* op : {"Floor", "Ceil", "Round", "Erf"}) {
    spec.nodes.push_back(make_node(op, {"x"}, {std::string("y_") + op}));
    spec.outputs.push_back(std::string("y_") + op);
  }
  spec.nodes.push_back(make_node("Erf", {"c"}, {"erf_nhwc"}));  // after an NHWC producer
  spec.outputs.push_back("erf_nhwc");
  // x: multiples of 1/16 in [-4, 4], halves (the ties Round sends to even) and integers included.
  expect_gpu_matches_cpu(spec, -2.f, 2.f, 1.0, {{"x", sixteenths({2, 3, 7, 9}, rng, -64, 64)}});
}

TEST(CudaOps, Pad) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 106);
  GraphSpec spec;
  spec.opset = 13;
  spec.inputs = {{"x", {2, 3, 4, 5}}, {"f", {1, 4, 6, 7}}};
  add_conv(spec, rng, "f", "c", 4, 8);
  spec.constants["p_const"] = ints({0, 0, 1, 2, 0, 1, 2, 0});
  spec.constants["value"] = floats({}, {1.5f});
  spec.constants["p_hw2"] = ints({0, 0, 2, 2, 0, 0, 2, 3});
  spec.constants["p_crop"] = ints({0, -1, 1, -2, 0, 0, -1, 3});
  spec.nodes.push_back(make_node("Pad", {"x", "p_const", "value"}, {"constant"}));
  spec.nodes.push_back(make_node("Pad", {"c", "p_hw2"}, {"reflect"}, {{"mode", std::string("reflect")}}));
  spec.nodes.push_back(make_node("Pad", {"c", "p_hw2"}, {"edge"}, {{"mode", std::string("edge")}}));
  spec.nodes.push_back(make_node("Pad", {"x", "p_hw2"}, {"wrap"}, {{"mode", std::string("wrap")}}));
  spec.nodes.push_back(make_node("Pad", {"x", "p_crop"}, {"crop"}));  // negative pads crop
  spec.outputs = {"constant", "reflect", "edge", "wrap", "crop"};
  expect_gpu_matches_cpu(spec);
}

TEST(CudaOps, PadAxesOpset18) {
  QYOLO_REQUIRE_GPU();
  GraphSpec spec;
  spec.opset = 18;
  spec.inputs = {{"x", {2, 3, 4, 5}}};
  spec.constants["pads"] = ints({1, 2, 3, 0});
  spec.constants["axes"] = ints({-1, 1});
  spec.nodes.push_back(make_node("Pad", {"x", "pads", "", "axes"}, {"y"}, {{"mode", std::string("edge")}}));
  spec.outputs = {"y"};
  expect_gpu_matches_cpu(spec);
}

TEST(CudaOps, GatherElements) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 107);
  GraphSpec spec;
  spec.inputs = {{"x", {2, 3, 4}}, {"s", {2, 50}}, {"d", {2, 50}}};
  spec.constants["i_last"] = int_tensor({2, 3, 6}, rng, -4, 3);  // negative indices count from the end
  spec.constants["i_first"] = int_tensor({1, 3, 4}, rng, -2, 1);
  spec.constants["i32"] =
      Tensor::from_vector<int32_t>({2, 2, 4}, {0, 2, 1, 1, 2, 0, 0, 1, 1, 1, 2, 2, 0, 0, 0, 2});
  spec.constants["k"] = ints({10});
  spec.nodes.push_back(make_node("GatherElements", {"x", "i_last"}, {"g_last"}, {{"axis", int64_t{-1}}}));
  spec.nodes.push_back(make_node("GatherElements", {"x", "i_first"}, {"g_first"}, {{"axis", int64_t{0}}}));
  spec.nodes.push_back(make_node("GatherElements", {"x", "i32"}, {"g_i32"}, {{"axis", int64_t{1}}}));
  // Indices computed on the device: the top-10 scores' boxes, as post-processing graphs do.
  spec.nodes.push_back(make_node("TopK", {"s", "k"}, {"top_v", "top_i"}, {{"axis", int64_t{1}}}));
  spec.nodes.push_back(make_node("GatherElements", {"d", "top_i"}, {"g_top"}, {{"axis", int64_t{1}}}));
  spec.outputs = {"g_last", "g_first", "g_i32", "top_i", "g_top"};
  expect_gpu_matches_cpu(spec, -2.f, 2.f, 1.0, {{"s", sixteenths({2, 50}, rng, -200, 200)}});
}

TEST(CudaOps, ArgMax) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 108);
  GraphSpec spec;
  spec.inputs = {{"x", {2, 7, 85}}, {"t", {3, 40}}};
  spec.nodes.push_back(make_node("ArgMax", {"x"}, {"a_last"}, {{"axis", int64_t{-1}}}));
  spec.nodes.push_back(
      make_node("ArgMax", {"x"}, {"a_mid"}, {{"axis", int64_t{1}}, {"keepdims", int64_t{0}}}));
  // t holds few distinct values: ties, first or last of the equal maxima.
  spec.nodes.push_back(make_node("ArgMax", {"t"}, {"a_first"}, {{"axis", int64_t{1}}}));
  spec.nodes.push_back(
      make_node("ArgMax", {"t"}, {"a_lastmax"}, {{"axis", int64_t{1}}, {"select_last_index", int64_t{1}}}));
  spec.outputs = {"a_last", "a_mid", "a_first", "a_lastmax"};
  expect_gpu_matches_cpu(
      spec, -2.f, 2.f, 1.0,
      {{"x", sixteenths({2, 7, 85}, rng, -2000, 2000)}, {"t", sixteenths({3, 40}, rng, 0, 4)}});
}

TEST(CudaOps, TopK) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 109);
  GraphSpec spec;
  spec.inputs = {{"x", {2, 3000}}, {"m", {2, 50, 3}}, {"t", {4, 30}}};
  spec.constants["k100"] = ints({100});
  spec.constants["k7"] = ints({7});
  spec.constants["k30"] = ints({30});
  // n 3000: several thread passes and shared-memory tiles per line.
  spec.nodes.push_back(make_node("TopK", {"x", "k100"}, {"xv", "xi"}));
  spec.nodes.push_back(
      make_node("TopK", {"m", "k7"}, {"mv", "mi"}, {{"axis", int64_t{1}}, {"largest", int64_t{0}}}));
  // Ties: equal values keep the lower index first; k = n sorts the whole line.
  spec.nodes.push_back(make_node("TopK", {"t", "k30"}, {"tv", "ti"}));
  spec.outputs = {"xv", "xi", "mv", "mi", "tv", "ti"};
  expect_gpu_matches_cpu(spec, -2.f, 2.f, 1.0,
                         {{"x", sixteenths({2, 3000}, rng, -2047, 2047)},
                          {"m", sixteenths({2, 50, 3}, rng, -400, 400)},
                          {"t", sixteenths({4, 30}, rng, 0, 5)}});
}

TEST(CudaOps, LayerNormalization) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 110);
  GraphSpec spec;
  spec.opset = 17;
  spec.inputs = {{"x", {2, 5, 64}}, {"y", {2, 3, 4, 5}}};
  spec.constants["scale"] = random_tensor({64}, rng, 0.5f, 1.5f);
  spec.constants["bias"] = random_tensor({64}, rng);
  spec.constants["scale60"] = random_tensor({3, 4, 5}, rng, 0.5f, 1.5f);
  spec.constants["bias1"] = floats({1}, {0.25f});
  spec.nodes.push_back(make_node("LayerNormalization", {"x", "scale", "bias"}, {"ln"}));
  spec.nodes.push_back(make_node("LayerNormalization", {"y", "scale60", "bias1"}, {"ln1", "mean", "inv"},
                                 {{"axis", int64_t{1}}, {"epsilon", 1e-3f}}));
  spec.nodes.push_back(make_node("LayerNormalization", {"x", "scale"}, {"ln_nobias"}));
  spec.outputs = {"ln", "ln1", "mean", "inv", "ln_nobias"};
  expect_gpu_matches_cpu(spec, -3.f, 3.f);
}

TEST(CudaOps, ConvTranspose) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 111);
  GraphSpec spec;
  spec.inputs = {{"x", {2, 8, 5, 6}}, {"z", {1, 4, 7}}};
  spec.constants["w"] = random_tensor({8, 4, 3, 3}, rng, -0.3f, 0.3f);
  spec.constants["b"] = random_tensor({4}, rng);
  spec.constants["wg"] = random_tensor({8, 2, 2, 2}, rng, -0.3f, 0.3f);
  spec.constants["w1"] = random_tensor({4, 3, 4}, rng, -0.3f, 0.3f);
  spec.nodes.push_back(make_node("ConvTranspose", {"x", "w", "b"}, {"up"},
                                 {{"strides", std::vector<int64_t>{2, 2}},
                                  {"pads", std::vector<int64_t>{1, 1, 1, 1}},
                                  {"output_padding", std::vector<int64_t>{1, 1}}}));
  // Groups: the segmentation proto upsample's 2x2 / 2 shape, two groups of 4 -> 2 channels.
  spec.nodes.push_back(make_node("ConvTranspose", {"x", "wg"}, {"up_g"},
                                 {{"strides", std::vector<int64_t>{2, 2}}, {"group", int64_t{2}}}));
  spec.nodes.push_back(
      make_node("ConvTranspose", {"z", "w1"}, {"up_1d"},
                {{"strides", std::vector<int64_t>{3}}, {"dilations", std::vector<int64_t>{2}}}));
  spec.outputs = {"up", "up_g", "up_1d"};
  expect_gpu_matches_cpu(spec);
}

}  // namespace
