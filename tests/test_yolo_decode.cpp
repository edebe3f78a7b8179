// QyoloYoloDecode and the fuse_yolo_decode pass: the fused graph computes what the unfused graph
// computes (real YOLOv5 models on the reference input, and small hand-built tails), and tails that
// differ in any way are left alone.
#include <cmath>
#include <random>

#include "backends/cpu/cpu_executor.h"
#include "ir/npy.h"
#include "ir/ops/yolo_decode.h"
#include "onnx/onnx_import.h"
#include "passes/passes.h"
#include "test_support.h"

using namespace qyolo;

namespace {

Tensor random_tensor(const Shape& shape, unsigned seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  Tensor t(DataType::kFloat32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}
Tensor ints(const std::vector<int64_t>& v) { return Tensor::from_vector<int64_t>({static_cast<int64_t>(v.size())}, v); }
Tensor scalar(float v) { return Tensor::from_vector<float>({}, {v}); }

Node make_node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
               std::map<std::string, AttrValue> attrs = {}) {
  Node n;
  n.op_type = op;
  n.name = op + "_" + out[0];
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.attrs = std::move(attrs);
  return n;
}

int count_op(const Graph& g, const std::string& op) {
  int k = 0;
  for (const auto& n : g.nodes) k += n.op_type == op;
  return k;
}

// What the hand-built tail looks like; the defaults are the YOLOv5 export.
struct Tail {
  int64_t n = 2, a = 3, c = 7, h = 4, w = 5;
  std::vector<int64_t> perm = {0, 1, 3, 4, 2};
  int64_t s0 = 2, s1 = 2;        // split sizes [s0, s1, c - s0 - s1]
  bool split_attr = false;       // opset 12 'split' attribute instead of the input
  bool commuted = false;         // Mul(c, x) / Add(grid, x) operand order
  bool grid_is_input = false;    // GRID a runtime input, not a constant
  bool sub_half = false;         // YOLOv5 v7 TorchScript: xy * 2 - 0.5 + grid
  bool sigmoid_is_output = false;
  float c3 = 2.f;
  Shape stride_shape = {};
};

struct Built {
  Graph g;
  std::map<std::string, Shape> shapes;
  std::map<std::string, Tensor> inputs;
};

Built build_tail(const Tail& t) {
  Built b;
  Graph& g = b.g;
  g.source_path = "<yolo tail>";
  g.opset = t.split_attr ? 12 : 13;
  auto add_input = [&](const std::string& name, const Shape& s, Tensor v) {
    ValueInfo vi;
    vi.name = name;
    for (int64_t d : s) vi.dims.push_back(Dim{d, ""});
    g.inputs.push_back(vi);
    b.shapes[name] = s;
    b.inputs[name] = std::move(v);
  };
  const Shape xs{t.n, t.a * t.c, t.h, t.w};
  add_input("x", xs, random_tensor(xs, 1, -6.f, 6.f));
  Shape r5{t.n, t.a, t.c, t.h, t.w};
  Shape tshape(5);
  for (int i = 0; i < 5; ++i) tshape[static_cast<size_t>(i)] = r5[static_cast<size_t>(t.perm[static_cast<size_t>(i)])];
  const Shape gshape{1, t.a, tshape[2], tshape[3], t.s0}, ashape{1, t.a, tshape[2], tshape[3], t.s1};
  Tensor grid = random_tensor(gshape, 2, -0.5f, 7.5f);
  if (t.grid_is_input) add_input("grid", gshape, grid);
  else g.initializers["grid"] = grid;
  g.initializers["anchor"] = random_tensor(ashape, 3, 10.f, 100.f);
  g.initializers["shape5"] = ints(r5);
  g.initializers["shape3"] = ints({t.n, -1, t.c});
  g.initializers["split"] = ints({t.s0, t.s1, t.c - t.s0 - t.s1});
  g.initializers["two"] = scalar(2.f);
  g.initializers["c3"] = scalar(t.c3);
  g.initializers["half"] = scalar(0.5f);
  g.initializers["stride"] = Tensor::from_vector<float>(t.stride_shape, std::vector<float>(
      static_cast<size_t>(shape_numel(t.stride_shape)), 8.f));
  auto bin = [&](const std::string& op, const std::string& x, const std::string& k, const std::string& out) {
    g.nodes.push_back(t.commuted ? make_node(op, {k, x}, {out}) : make_node(op, {x, k}, {out}));
  };
  g.nodes.push_back(make_node("Reshape", {"x", "shape5"}, {"r"}));
  g.nodes.push_back(make_node("Transpose", {"r"}, {"t"}, {{"perm", t.perm}}));
  g.nodes.push_back(make_node("Sigmoid", {"t"}, {"s"}));
  if (t.split_attr)
    g.nodes.push_back(make_node("Split", {"s"}, {"xy", "wh", "conf"},
                                {{"axis", int64_t{4}}, {"split", std::vector<int64_t>{t.s0, t.s1, t.c - t.s0 - t.s1}}}));
  else
    g.nodes.push_back(make_node("Split", {"s", "split"}, {"xy", "wh", "conf"}, {{"axis", int64_t{4}}}));
  bin("Mul", "xy", "two", "xy2");
  std::string xy = "xy2";
  if (t.sub_half) {
    g.nodes.push_back(make_node("Sub", {"xy2", "half"}, {"xy2h"}));
    xy = "xy2h";
  }
  bin("Add", xy, "grid", "xy3");
  bin("Mul", "xy3", "stride", "xy4");
  bin("Mul", "wh", "two", "wh2");
  g.nodes.push_back(make_node("Pow", {"wh2", "c3"}, {"wh3"}));
  bin("Mul", "wh3", "anchor", "wh4");
  g.nodes.push_back(make_node("Concat", {"xy4", "wh4", "conf"}, {"cat"}, {{"axis", int64_t{4}}}));
  g.nodes.push_back(make_node("Reshape", {"cat", "shape3"}, {"y"}));
  ValueInfo out;
  out.name = "y";
  g.outputs.push_back(out);
  if (t.sigmoid_is_output) {
    ValueInfo so;
    so.name = "s";
    g.outputs.push_back(so);
  }
  EXPECT_TRUE(g.toposort().is_ok());
  return b;
}

// Runs `b` with the default passes, with or without the decode fusion; returns the outputs and
// the number of decode nodes.
std::map<std::string, Tensor> run(const Built& b, bool fuse, int* decodes = nullptr) {
  auto sg = specialize(b.g, b.shapes);
  EXPECT_TRUE(sg.is_ok()) << sg.status().to_string();
  if (!sg) return {};
  PassOptions opt;
  opt.fuse_yolo_decode = fuse;
  Status st = run_default_passes(*sg, opt);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  if (decodes) *decodes = count_op(sg->graph, kYoloDecodeOp);
  auto ex = CpuExecutor::build(std::move(sg).value());
  EXPECT_TRUE(ex.is_ok()) << ex.status().to_string();
  if (!ex) return {};
  std::map<std::string, Tensor> out;
  st = (*ex)->run(b.inputs, out);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return out;
}

// max |a - b| / max |b|
double rel_err(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  auto av = a.to_float_vector(), bv = b.to_float_vector();
  double err = 0, ref = 0;
  for (size_t i = 0; i < av.size() && i < bv.size(); ++i) {
    if (std::isnan(av[i]) != std::isnan(bv[i])) return INFINITY;
    err = std::max(err, static_cast<double>(std::fabs(av[i] - bv[i])));
    ref = std::max(ref, static_cast<double>(std::fabs(bv[i])));
  }
  return ref > 0 ? err / ref : err;
}

void expect_fused(const Tail& t, int expected) {
  Built b = build_tail(t);
  int fused = -1, unfused = -1;
  auto ref = run(b, false, &unfused);
  auto got = run(b, true, &fused);
  EXPECT_EQ(unfused, 0);
  EXPECT_EQ(fused, expected);
  ASSERT_TRUE(ref.count("y") && got.count("y"));
  EXPECT_LE(rel_err(got.at("y"), ref.at("y")), 1e-6);
}

TEST(YoloDecode, HandBuiltTailFuses) { expect_fused(Tail{}, 1); }

TEST(YoloDecode, SplitAttributeOpset12Fuses) {
  Tail t;
  t.split_attr = true;
  expect_fused(t, 1);
}

TEST(YoloDecode, CommutedOperandsFuse) {
  Tail t;
  t.commuted = true;
  expect_fused(t, 1);
}

TEST(YoloDecode, GeneralExponentAndBroadcastScalarFuse) {
  Tail t;
  t.c3 = 1.5f;
  t.stride_shape = {1, 1, 1, 1, 1};
  expect_fused(t, 1);
}

TEST(YoloDecode, FusedGraphHasOneNodeForTheTail) {
  Built b = build_tail(Tail{});
  auto sg = specialize(b.g, b.shapes);
  ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
  auto n = fuse_yolo_decode(*sg);
  ASSERT_TRUE(n.is_ok());
  EXPECT_EQ(*n, 1);
  ASSERT_EQ(sg->graph.nodes.size(), 2u);  // decode + the final Reshape
  const Node& d = sg->graph.nodes[0];
  EXPECT_EQ(d.op_type, kYoloDecodeOp);
  EXPECT_EQ(d.inputs, (std::vector<std::string>{"x", "grid", "anchor"}));
  EXPECT_EQ(std::get<int64_t>(d.attrs.at("num_anchors")), 3);
  EXPECT_EQ(std::get<float>(d.attrs.at("stride")), 8.f);
  EXPECT_EQ(sg->values.at("cat").shape, (Shape{2, 3, 4, 5, 7}));
  // Intermediates and unused scalars are gone from the value table; what is left is consistent.
  EXPECT_FALSE(sg->values.count("s"));
  EXPECT_FALSE(sg->values.count("two"));
  EXPECT_TRUE(sg->values.count("grid"));
  // Idempotent.
  auto again = fuse_yolo_decode(*sg);
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(*again, 0);
}

void expect_not_fused(const Tail& t) {
  Built b = build_tail(t);
  int fused = -1;
  auto ref = run(b, false);
  auto got = run(b, true, &fused);
  EXPECT_EQ(fused, 0);
  for (const auto& [name, r] : ref) {
    ASSERT_TRUE(got.count(name));
    EXPECT_EQ(rel_err(got.at(name), r), 0.0) << name;
  }
}

TEST(YoloDecode, DifferentPermIsNotFused) {
  Tail t;
  t.h = t.w = 4;
  t.perm = {0, 1, 4, 3, 2};  // [N, A, W, H, C]: same shapes, other order
  expect_not_fused(t);
}

TEST(YoloDecode, DifferentSplitIsNotFused) {
  Tail t;
  t.s0 = 1;
  t.s1 = 3;
  expect_not_fused(t);
}

TEST(YoloDecode, NonConstantGridIsNotFused) {
  Tail t;
  t.grid_is_input = true;
  expect_not_fused(t);
}

TEST(YoloDecode, ExtraOpInTheChainIsNotFused) {
  Tail t;
  t.sub_half = true;  // xy * 2 - 0.5 + grid
  expect_not_fused(t);
}

TEST(YoloDecode, IntermediateGraphOutputIsNotFused) {
  Tail t;
  t.sigmoid_is_output = true;
  expect_not_fused(t);
}

TEST(YoloDecode, NonScalarStrideIsNotFused) {
  Tail t;
  t.stride_shape = {1, 1, 1, 1, 2};  // per-coordinate stride: a different computation
  expect_not_fused(t);
}

TEST(YoloDecode, InferRejectsBadInputs) {
  Node n = make_node(kYoloDecodeOp, {"x", "g", "a"}, {"y"},
                     {{"num_anchors", int64_t{3}}, {"stride", 8.f}, {"c1", 2.f}, {"c2", 2.f}, {"c3", 2.f}});
  ValueDesc x{DataType::kFloat32, {1, 21, 4, 5}, std::nullopt};
  ValueDesc g{DataType::kFloat32, {1, 3, 4, 5, 2}, std::nullopt};
  ValueDesc bad{DataType::kFloat32, {1, 3, 5, 4, 2}, std::nullopt};
  InferContext ok{n, 13, {&x, &g, &g}, {}};
  ASSERT_TRUE(infer_node(ok).is_ok());
  EXPECT_EQ(ok.outputs[0].shape, (Shape{1, 3, 4, 5, 7}));
  EXPECT_EQ(ok.outputs[0].dtype, DataType::kFloat32);
  InferContext wrong_grid{n, 13, {&x, &bad, &g}, {}};
  EXPECT_FALSE(infer_node(wrong_grid).is_ok());
  ValueDesc x_odd{DataType::kFloat32, {1, 20, 4, 5}, std::nullopt};
  InferContext wrong_c{n, 13, {&x_odd, &g, &g}, {}};
  EXPECT_FALSE(infer_node(wrong_c).is_ok());
  Node no_attr = n;
  no_attr.attrs.erase("stride");
  InferContext missing{no_attr, 13, {&x, &g, &g}, {}};
  EXPECT_FALSE(infer_node(missing).is_ok());
}

// The exported models: three levels fuse, and the output is the unfused graph's.
void check_model(const std::string& rel) {
  QYOLO_REQUIRE_SHARED(rel);
  QYOLO_REQUIRE_SHARED("reference/bus_input.npy");
  auto g = import_onnx((::qyolo::testing::shared_dir() / rel).string());
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  auto input = read_npy((::qyolo::testing::shared_dir() / "reference/bus_input.npy").string());
  ASSERT_TRUE(input.is_ok()) << input.status().to_string();
  Built b;
  b.g = *g;
  b.shapes[g->inputs[0].name] = input->shape();
  b.inputs[g->inputs[0].name] = *input;
  int fused = -1;
  auto ref = run(b, false);
  auto got = run(b, true, &fused);
  EXPECT_EQ(fused, 3);
  ASSERT_FALSE(ref.empty());
  for (const auto& [name, r] : ref) {
    ASSERT_TRUE(got.count(name)) << name;
    const double e = rel_err(got.at(name), r);
    EXPECT_LE(e, 1e-6) << name;
    std::printf("%s %s: fused vs unfused max rel err %.3g\n", rel.c_str(), name.c_str(), e);
  }
}

TEST(YoloDecode, Yolov5nFusesThreeLevelsWithSameOutput) { check_model("models/yolov5n.onnx"); }
TEST(YoloDecode, Yolov5sFusesThreeLevelsWithSameOutput) { check_model("models/yolov5s.onnx"); }
TEST(YoloDecode, Yolov5nDynamicFusesThreeLevelsWithSameOutput) { check_model("models/yolov5n-dynamic.onnx"); }

}  // namespace
