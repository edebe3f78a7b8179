// Elementwise / shape ops beyond the ONNX node tests: broadcasting layouts (including the parallel
// paths), the polynomial Sigmoid against std::exp on a large tensor, Q/DQ rounding, and the node
// tests whose shape-determining inputs are graph inputs, run with those inputs bound as constants.
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>

#include "backends/cpu/cpu_executor.h"
#include "ir/op_registry.h"
#include "onnx/onnx_import.h"
#include "passes/specialize.h"
#include "test_support.h"

using namespace qyolo;
namespace fs = std::filesystem;

namespace {

Node make_node(const std::string& op, size_t n_inputs, std::map<std::string, AttrValue> attrs = {}) {
  Node n;
  n.name = "test_" + op;
  n.op_type = op;
  for (size_t i = 0; i < n_inputs; ++i) n.inputs.push_back("in" + std::to_string(i));
  n.outputs = {"out"};
  n.attrs = std::move(attrs);
  return n;
}

// Infers and runs one node on the CPU; inputs are treated as runtime values (not constants) unless
// listed in `constant`.
Result<Tensor> run_node(const Node& node, const std::vector<Tensor>& inputs, int64_t opset = 17,
                        std::vector<bool> constant = {}) {
  std::vector<ValueDesc> descs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    ValueDesc d{inputs[i].dtype(), inputs[i].shape(), std::nullopt};
    if (i < constant.size() && constant[i]) d.value = inputs[i];
    descs.push_back(d);
  }
  InferContext ctx{node, opset, {}, {}};
  for (auto& d : descs) ctx.inputs.push_back(&d);
  QYOLO_RETURN_IF_ERROR(infer_node(ctx));
  // evaluate_node_cpu reads the tensors from the descs' values.
  std::vector<ValueDesc> with_values = descs;
  for (size_t i = 0; i < inputs.size(); ++i) with_values[i].value = inputs[i];
  std::vector<const ValueDesc*> ptrs;
  for (auto& d : with_values) ptrs.push_back(&d);
  QYOLO_ASSIGN_OR_RETURN(auto outs, evaluate_node_cpu(node, ptrs, ctx.outputs));
  return outs[0];
}

Tensor random_tensor(const Shape& s, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t(DataType::kFloat32, s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

// Reference broadcasting index: the input element feeding output element `flat`.
int64_t bcast_index(const Shape& out, const Shape& in, int64_t flat) {
  int64_t idx = 0, stride = 1;
  for (size_t d = out.size(); d-- > 0;) {
    int64_t i = flat % out[d];
    flat /= out[d];
    size_t off = out.size() - in.size();
    if (d >= off) {
      int64_t dim = in[d - off];
      if (dim != 1) idx += i * stride;
      stride *= dim;
    }
  }
  return idx;
}

void check_binary_broadcast(const std::string& op, const Shape& a_shape, const Shape& b_shape) {
  SCOPED_TRACE(op + " " + shape_str(a_shape) + " , " + shape_str(b_shape));
  Tensor a = random_tensor(a_shape, -2.f, 2.f, 1);
  Tensor b = random_tensor(b_shape, 0.5f, 2.f, 2);
  auto out = run_node(make_node(op, 2), {a, b});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  auto out_shape = broadcast_shapes(a_shape, b_shape);
  ASSERT_TRUE(out_shape.is_ok());
  ASSERT_EQ(out->shape(), *out_shape);
  for (int64_t i = 0; i < out->numel(); ++i) {
    float x = a.data<float>()[bcast_index(*out_shape, a_shape, i)];
    float y = b.data<float>()[bcast_index(*out_shape, b_shape, i)];
    float ref = op == "Add" ? x + y : op == "Sub" ? x - y : op == "Mul" ? x * y : x / y;
    ASSERT_EQ(out->data<float>()[i], ref) << "element " << i;
  }
}

}  // namespace

TEST(Elementwise, BinaryBroadcastLayouts) {
  check_binary_broadcast("Add", {2, 3, 4, 5}, {3, 1, 5});
  check_binary_broadcast("Sub", {3, 1, 5}, {2, 3, 4, 5});
  check_binary_broadcast("Mul", {1, 3, 80, 80, 2}, {1, 3, 1, 1, 2});  // YOLOv5 anchor-style
  check_binary_broadcast("Div", {7, 1}, {1, 9});
  check_binary_broadcast("Add", {4096, 2}, {2});                        // many short runs
  check_binary_broadcast("Mul", {1, 16, 160, 160}, {1, 16, 1, 1});      // per channel, parallel
  check_binary_broadcast("Add", {1, 16, 160, 160}, {1, 16, 160, 160});  // same shape, parallel
  check_binary_broadcast("Mul", {1, 16, 160, 160}, {});                 // scalar, parallel
  check_binary_broadcast("Sub", {}, {1, 16, 160, 160});
  check_binary_broadcast("Add", {2, 1, 3}, {1, 4, 1});
  check_binary_broadcast("Add", {0, 3}, {1, 3});  // empty
}

TEST(Elementwise, VariadicMaxBroadcasts) {
  Tensor a = Tensor::from_vector<float>({3, 1}, {1, 5, 3});
  Tensor b = Tensor::from_vector<float>({1, 2}, {2, 4});
  Tensor c = Tensor::from_vector<float>({}, {3.5f});
  auto out = run_node(make_node("Max", 3), {a, b, c});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(out->shape(), (Shape{3, 2}));
  EXPECT_EQ(out->to_float_vector(), (std::vector<float>{3.5f, 4, 5, 5, 3.5f, 4}));
}

TEST(Elementwise, SigmoidMatchesStdExpOnLargeTensor) {
  Tensor x = random_tensor({1, 32, 160, 160}, -30.f, 30.f, 3);
  float* xs = x.data<float>();
  const float specials[] = {0.f,   -0.f,   1e-8f, -1e-8f, 88.f,  -88.f,
                            100.f, -100.f, 1e30f, -1e30f, 15.9f, -16.1f};
  for (size_t i = 0; i < std::size(specials); ++i) xs[i] = specials[i];
  auto out = run_node(make_node("Sigmoid", 1), {x});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  double max_rel = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    double ref = 1.0 / (1.0 + std::exp(-static_cast<double>(xs[i])));
    double got = out->data<float>()[i];
    ASSERT_TRUE(std::isfinite(got)) << "x=" << xs[i];
    if (ref < 1e-30) {
      ASSERT_LT(got, 1e-30) << "x=" << xs[i];
      continue;
    }
    max_rel = std::max(max_rel, std::fabs(got - ref) / ref);
  }
  EXPECT_LT(max_rel, 1e-6);  // a few float ulps
}

TEST(Elementwise, SiluPatternMatchesReference) {
  // x * Sigmoid(x) through the executor: float16 storage path as well.
  Tensor x = random_tensor({2, 3, 5}, -6.f, 6.f, 4);
  Tensor h(DataType::kFloat16, x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) h.data<uint16_t>()[i] = float_to_half(x.data<float>()[i]);
  auto s = run_node(make_node("Sigmoid", 1), {h});
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  ASSERT_EQ(s->dtype(), DataType::kFloat16);
  auto y = run_node(make_node("Mul", 2), {h, *s});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  auto hv = h.to_float_vector();
  auto yv = y->to_float_vector();
  for (size_t i = 0; i < yv.size(); ++i) EXPECT_NEAR(yv[i], hv[i] / (1 + std::exp(-hv[i])), 5e-3) << i;
}

TEST(Elementwise, QuantizeRoundsHalfToEvenAndSaturates) {
  Tensor x =
      Tensor::from_vector<float>({10}, {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 1000.f, -1000.f, 0.49f, 3.7f});
  auto q = run_node(make_node("QuantizeLinear", 3),
                    {x, Tensor::scalar<float>(1.f), Tensor::scalar<int8_t>(0)}, 13);
  ASSERT_TRUE(q.is_ok()) << q.status().to_string();
  ASSERT_EQ(q->dtype(), DataType::kInt8);
  EXPECT_EQ(q->to_int64_vector(), (std::vector<int64_t>{0, 2, 2, 0, -2, -2, 127, -128, 0, 4}));
  auto u = run_node(make_node("QuantizeLinear", 2), {x, Tensor::scalar<float>(0.5f)}, 13);
  ASSERT_TRUE(u.is_ok()) << u.status().to_string();
  ASSERT_EQ(u->dtype(), DataType::kUInt8);
  EXPECT_EQ(u->to_int64_vector(), (std::vector<int64_t>{1, 3, 5, 0, 0, 0, 255, 0, 1, 7}));
}

// Found by fuzz_onnx (UBSan, float-cast-overflow): a NaN quotient was cast to an integer. It
// gives the zero point now, also for 0 / 0 and inf / inf.
TEST(Elementwise, QuantizeNanGivesTheZeroPoint) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  Tensor x = Tensor::from_vector<float>({4}, {nan, 1.f, -inf, inf});
  auto q = run_node(make_node("QuantizeLinear", 3), {x, Tensor::scalar<float>(1.f), Tensor::scalar<int8_t>(3)},
                    13);
  ASSERT_TRUE(q.is_ok()) << q.status().to_string();
  EXPECT_EQ(q->to_int64_vector(), (std::vector<int64_t>{3, 4, -128, 127}));
  Tensor zeros = Tensor::from_vector<float>({2}, {0.f, 1.f});
  auto z = run_node(make_node("QuantizeLinear", 3), {zeros, Tensor::scalar<float>(0.f), Tensor::scalar<uint8_t>(7)},
                    13);
  ASSERT_TRUE(z.is_ok()) << z.status().to_string();
  EXPECT_EQ(z->to_int64_vector(), (std::vector<int64_t>{7, 255}));  // 0 / 0 -> zp; 1 / 0 = inf saturates
  // DynamicQuantizeLinear: the range ignores the NaN (scale 2 / 255, which rounds up in float, so
  // the zero point is round(1 / scale) = round(127.49999) = 127), the NaN gives the zero point.
  Node dql = make_node("DynamicQuantizeLinear", 1);
  dql.outputs = {"y", "y_scale", "y_zero_point"};
  auto d = run_node(dql, {Tensor::from_vector<float>({3}, {nan, 1.f, -1.f})}, 13);
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  EXPECT_EQ(d->to_int64_vector(), (std::vector<int64_t>{127, 254, 0}));
}

TEST(Elementwise, PerAxisQuantizeDequantizeRoundTrip) {
  Tensor x = random_tensor({2, 4, 3, 3}, -1.f, 1.f, 5);
  Tensor scale = Tensor::from_vector<float>({4}, {0.01f, 0.02f, 0.005f, 0.1f});
  Tensor zp = Tensor::from_vector<int8_t>({4}, {0, 3, -2, 0});
  auto q = run_node(make_node("QuantizeLinear", 3, {{"axis", int64_t{1}}}), {x, scale, zp}, 13);
  ASSERT_TRUE(q.is_ok()) << q.status().to_string();
  auto d = run_node(make_node("DequantizeLinear", 3, {{"axis", int64_t{1}}}), {*q, scale, zp}, 13);
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t c = (i / 9) % 4;
    float s = scale.data<float>()[c];
    float xv = x.data<float>()[i];
    float qv = std::nearbyint(xv / s) + zp.data<int8_t>()[c];
    qv = std::clamp(qv, -128.f, 127.f);
    EXPECT_EQ(q->data<int8_t>()[i], static_cast<int8_t>(qv)) << i;
    EXPECT_FLOAT_EQ(d->data<float>()[i], (qv - zp.data<int8_t>()[c]) * s) << i;
  }
  // A scale that does not match the axis is an error naming the node.
  auto bad = run_node(make_node("QuantizeLinear", 2, {{"axis", int64_t{2}}}), {x, scale}, 13);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("test_QuantizeLinear"), std::string::npos)
      << bad.status().to_string();
}

TEST(Elementwise, ShapeSubgraphFoldsToConstants) {
  // Shape carries its value, so Shape -> Gather -> ... subgraphs of dynamic exports fold.
  Node shape = make_node("Shape", 1);
  Tensor x = random_tensor({2, 3, 4}, 0.f, 1.f, 6);
  std::vector<ValueDesc> descs = {{DataType::kFloat32, x.shape(), std::nullopt}};
  InferContext ctx{shape, 15, {&descs[0]}, {}};
  ASSERT_TRUE(infer_node(ctx).is_ok());
  ASSERT_TRUE(ctx.outputs[0].value.has_value());
  EXPECT_EQ(ctx.outputs[0].value->to_int64_vector(), (std::vector<int64_t>{2, 3, 4}));
  // Reshape needs a constant shape, and says so.
  auto r = run_node(make_node("Reshape", 2), {x, Tensor::from_vector<int64_t>({2}, {6, 4})});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("constant"), std::string::npos) << r.status().to_string();
  auto ok =
      run_node(make_node("Reshape", 2), {x, Tensor::from_vector<int64_t>({2}, {-1, 4})}, 17, {false, true});
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(ok->shape(), (Shape{6, 4}));
}

// ONNX node tests whose shape-determining inputs (Reshape's shape, Expand's shape, Squeeze /
// Unsqueeze axes, Range's scalars, ConstantOfShape's shape) are graph inputs. qyolo needs those
// constant at specialisation time, so the generic runner cannot specialise them; here the inputs
// are bound as initializers (what an exporter produces) and the result compared to the reference.
namespace {

Status run_with_constant_inputs(const fs::path& dir, const ImportOptions& options = {}) {
  QYOLO_ASSIGN_OR_RETURN(Graph g, import_onnx((dir / "model.onnx").string(), options));
  int datasets = 0;
  for (const auto& ds : fs::directory_iterator(dir)) {
    if (!ds.is_directory()) continue;
    Graph bound = g;
    for (size_t i = 0; i < g.inputs.size(); ++i) {
      QYOLO_ASSIGN_OR_RETURN(Tensor t,
                             read_tensor_pb((ds.path() / ("input_" + std::to_string(i) + ".pb")).string()));
      bound.initializers[g.inputs[i].name] = t;
    }
    bound.inputs.clear();
    QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, specialize(bound, {}));
    QYOLO_ASSIGN_OR_RETURN(auto exec, CpuExecutor::build(std::move(sg)));
    std::map<std::string, Tensor> outputs;
    QYOLO_RETURN_IF_ERROR(exec->run({}, outputs));
    for (size_t i = 0; i < g.outputs.size(); ++i) {
      QYOLO_ASSIGN_OR_RETURN(Tensor ref,
                             read_tensor_pb((ds.path() / ("output_" + std::to_string(i) + ".pb")).string()));
      const Tensor& got = outputs[g.outputs[i].name];
      if (got.shape() != ref.shape() || got.dtype() != ref.dtype())
        return internal_error(ds.path().string() + ": got " + dtype_name(got.dtype()) + " " +
                              shape_str(got.shape()) + ", expected " + dtype_name(ref.dtype()) + " " +
                              shape_str(ref.shape()));
      auto e = ref.to_float_vector();
      auto a = got.to_float_vector();
      for (size_t k = 0; k < e.size(); ++k)
        if (!(std::fabs(a[k] - e[k]) <= 1e-7 + 1e-3 * std::fabs(e[k])))
          return internal_error(ds.path().string() + ": element " + std::to_string(k) + " is " +
                                std::to_string(a[k]) + ", expected " + std::to_string(e[k]));
    }
    ++datasets;
  }
  if (datasets == 0) return not_found(dir.string() + ": no test data sets");
  return Status::ok();
}

}  // namespace

TEST(Elementwise, NodeTestsWithShapeInputsBoundAsConstants) {
  fs::path node_dir = qyolo::testing::onnx_testdata_dir() / "node";
  if (!fs::is_directory(node_dir)) GTEST_SKIP() << "libonnx-testdata absent: " << node_dir;
  const char* prefixes[] = {"test_reshape_", "test_squeeze", "test_unsqueeze_",
                            "test_expand_",  "test_range_",  "test_constantofshape_"};
  int ran = 0;
  for (const auto& e : fs::directory_iterator(node_dir)) {
    const std::string name = e.path().filename().string();
    bool match = false;
    for (const char* p : prefixes) match |= name.rfind(p, 0) == 0;
    if (!match || name.find("_expanded") != std::string::npos) continue;
    SCOPED_TRACE(name);
    Status st = run_with_constant_inputs(e.path());
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    ++ran;
  }
  EXPECT_GE(ran, 27);
}

// The Elu / HardSigmoid / Not / Softplus node tests are opset 1 and 6 models, below the importer's
// default minimum opset (7); the ops are unchanged since, so check the kernels with a lower minimum.
TEST(Elementwise, OldOpsetNodeTests) {
  fs::path node_dir = qyolo::testing::onnx_testdata_dir() / "node";
  if (!fs::is_directory(node_dir)) GTEST_SKIP() << "libonnx-testdata absent: " << node_dir;
  const char* names[] = {"test_elu",
                         "test_elu_default",
                         "test_elu_example",
                         "test_hardsigmoid",
                         "test_hardsigmoid_default",
                         "test_hardsigmoid_example",
                         "test_not_2d",
                         "test_not_3d",
                         "test_not_4d",
                         "test_softplus",
                         "test_softplus_example"};
  ImportOptions options;
  options.min_opset = 1;
  for (const char* name : names) {
    SCOPED_TRACE(name);
    Status st = run_with_constant_inputs(node_dir / name, options);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
  }
}
