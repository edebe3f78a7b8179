// Per-channel activation equalisation (src/passes/equalize_activations.cpp,
// src/quant/activation_equalization.h): the factors and the weight folding by hand, the float
// network unchanged against the un-rewritten FP32 engine, and the INT8 error of a tensor with one
// large-range channel falling once equalised.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "calib/calib_cache.h"
#include "equalization_model.h"
#include "onnx/onnx_import.h"
#include "onnx_builder.h"
#include "passes/passes.h"
#include "quant/activation_equalization.h"
#include "quant/calibrate_model.h"
#include "quant/precision_plan_pass.h"
#include "quant/quantize_graph.h"
#include "runtime/engine_impl.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::OnnxBuilder;
using qyolo::testing::ScratchDir;
using qyolo::testing::two_reader_model;
using qyolo::testing::uniform_values;

namespace {

std::string write_model(const ScratchDir& dir, const std::string& name, const std::string& bytes) {
  const std::string path = dir.path(name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

Tensor run_engine(const Engine& e, const Tensor& x) {
  Tensor y;
  auto ctx = e.create_context();
  EXPECT_TRUE(ctx.is_ok());
  Status st = (*ctx)->run(x, y);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return y;
}

// sum (a - ref)^2 / sum ref^2
double nsr(const Tensor& a, const Tensor& ref) {
  double e = 0, s = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double d = a.data<float>()[i] - ref.data<float>()[i];
    e += d * d;
    s += static_cast<double>(ref.data<float>()[i]) * ref.data<float>()[i];
  }
  return e / s;
}

}  // namespace

TEST(ActivationEqualization, FactorsByHand) {
  // max a = 4: (a / 4)^0.5 = 1, 0.5, 0.25, then 0 clamped to the minimum 1/64.
  const auto s = equalization_factors({4.f, 1.f, 0.25f, 0.f}, 0.5, 1.0 / 64);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_FLOAT_EQ(s[0], 1.f);
  EXPECT_FLOAT_EQ(s[1], 0.5f);
  EXPECT_FLOAT_EQ(s[2], 0.25f);
  EXPECT_FLOAT_EQ(s[3], 1.f / 64);
  const auto s1 = equalization_factors({4.f, 1.f, 0.25f, 0.f}, 1.0, 1.0 / 32);
  EXPECT_FLOAT_EQ(s1[1], 0.25f);
  EXPECT_FLOAT_EQ(s1[2], 0.0625f);  // above the minimum 1/32: kept
  EXPECT_FLOAT_EQ(s1[3], 1.f / 32);
  EXPECT_EQ(equalization_factors({0.f, 0.f}, 0.5, 0.01), (std::vector<float>{1.f, 1.f}));
}

TEST(ActivationEqualization, FoldsFactorsIntoReadersByHand) {
  const auto wa = uniform_values(72, 1, -1.f, 1.f);
  const std::vector<float> wb = {1.f, 2.f, 3.f, 4.f};
  auto g = import_onnx_bytes(two_reader_model({1.f, 1.f, 1.f, 1.f}, wa, wb), "eq.onnx", ".");
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  for (bool fuse : {false, true}) {
    auto sg = specialize(*g, {{"x", {1, 4, 8, 8}}});
    ASSERT_TRUE(sg.is_ok());
    ASSERT_TRUE(run_default_passes(*sg).is_ok());
    EXPECT_EQ(equalizable_tensors(*sg), std::vector<std::string>{"t"});
    const std::vector<float> s = {1.f, 0.5f, 0.25f, 2.f};
    auto n = equalize_activations(*sg, {{"t", s}}, fuse);
    ASSERT_TRUE(n.is_ok()) << n.status().to_string();
    EXPECT_EQ(*n, 1);
    const Graph& eg = sg->graph;
    // convA: W[o, c, k] * s_c.
    const float* a = eg.initializers.at("wa").data<float>();
    for (int o = 0; o < 2; ++o)
      for (int c = 0; c < 4; ++c)
        for (int k = 0; k < 9; ++k)
          EXPECT_FLOAT_EQ(a[(o * 4 + c) * 9 + k], wa[static_cast<size_t>((o * 4 + c) * 9 + k)] * s[c]);
    // convB, group 2: output 0 reads channels 0, 1; output 1 reads channels 2, 3.
    const float* bw = eg.initializers.at("wb").data<float>();
    EXPECT_FLOAT_EQ(bw[0], 1.f * 1.f);
    EXPECT_FLOAT_EQ(bw[1], 2.f * 0.5f);
    EXPECT_FLOAT_EQ(bw[2], 3.f * 0.25f);
    EXPECT_FLOAT_EQ(bw[3], 4.f * 2.f);
    const std::string t2 = std::string("t") + kEqualizedSuffix;
    int readers = 0;
    const Node* producer = nullptr;
    for (const auto& node : eg.nodes) {
      if (node.op_type == "Conv" && node.inputs[0] == t2) ++readers;
      if (node.name == "conv0") producer = &node;
    }
    EXPECT_EQ(readers, 2);
    ASSERT_NE(producer, nullptr);
    const std::vector<float> mult = {1.f, 2.f, 4.f, 0.5f};
    if (fuse) {
      EXPECT_EQ(producer->outputs[0], t2);
      auto m = producer->attr_floats(kOutputMultiplierAttr);
      ASSERT_TRUE(m.is_ok());
      EXPECT_EQ(*m, mult);
    } else {
      EXPECT_EQ(producer->outputs[0], "t");
      EXPECT_EQ(eg.initializers.at("t/qyolo_equalize_multiplier").to_float_vector(), mult);
      EXPECT_EQ(eg.producer_of(t2), eg.producer_of("t") + 1);
    }
  }
}

TEST(ActivationEqualization, RejectsOtherTensorsAndWrongChannelCounts) {
  auto g = import_onnx_bytes(
      two_reader_model({1.f, 1.f, 1.f, 1.f}, uniform_values(72, 1, -1.f, 1.f), {1, 2, 3, 4}), "eq.onnx", ".");
  ASSERT_TRUE(g.is_ok());
  auto sg = specialize(*g, {{"x", {1, 4, 8, 8}}});
  ASSERT_TRUE(sg.is_ok());
  ASSERT_TRUE(run_default_passes(*sg).is_ok());
  SpecializedGraph copy = *sg;
  EXPECT_FALSE(equalize_activations(copy, {{"a", {1, 1}}}, false).is_ok());  // a residual input
  copy = *sg;
  EXPECT_FALSE(equalize_activations(copy, {{"y", {1, 1}}}, false).is_ok());  // a graph output
  copy = *sg;
  EXPECT_FALSE(equalize_activations(copy, {{"t", {1, 1, 1}}}, false).is_ok());  // 3 factors, 4 channels
  copy = *sg;
  EXPECT_FALSE(equalize_activations(copy, {{"t", {1, 0, 1, 1}}}, false).is_ok());  // a zero factor
}

// The equalised float network (both the explicit Mul and, where the backend runs it, the fused
// multiplier) against the un-rewritten FP32 engine.
TEST(ActivationEqualization, KeepsTheFp32Outputs) {
  ScratchDir dir("qyolo_equalize_");
  const std::string model = write_model(
      dir, "eq.onnx",
      two_reader_model({8.f, 0.5f, 0.2f, 1.f}, uniform_values(72, 2, -0.5f, 0.5f), {1, -2, 0.5f, 3}));
  auto plain = Engine::build(model, BuildOptions{});
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
  const WeightOverrides w = with_equalization({}, {{"t", {1.f, 0.3f, 0.05f, 2.5f}}});
  auto eq = build_engine_with_weights(model, BuildOptions{}, w);
  ASSERT_TRUE(eq.is_ok()) << eq.status().to_string();
  const Tensor x = Tensor::from_vector<float>({1, 4, 8, 8}, uniform_values(256, 3, -1.f, 1.f));
  const Tensor ref = run_engine(**plain, x), y = run_engine(**eq, x);
  ASSERT_EQ(ref.shape(), y.shape());
  for (int64_t i = 0; i < ref.numel(); ++i)
    EXPECT_NEAR(y.data<float>()[i], ref.data<float>()[i], 1e-5f + 1e-5f * std::fabs(ref.data<float>()[i]))
        << i;
}

// t's channel 0 has 40x the range of the others, which the readers weigh as much: with one
// per-tensor scale (minmax), channels 1-3 get a few int8 steps; equalised (alpha 1) each channel
// spans the grid. The INT8 output error against FP32 must fall severalfold.
TEST(ActivationEqualization, Int8ErrorOfALargeRangeChannelFalls) {
  ScratchDir dir("qyolo_equalize_");
  std::vector<float> wa = uniform_values(72, 4, -0.5f, 0.5f);
  for (int o = 0; o < 2; ++o)
    for (int k = 0; k < 9; ++k) wa[static_cast<size_t>(o * 36 + k)] *= 0.025f;  // channel 0's weights
  const std::string model =
      write_model(dir, "eq.onnx", two_reader_model({40.f, 1.f, 1.f, 1.f}, wa, {0.025f, 1.f, 1.f, -1.f}));
  auto fp32 = Engine::build(model, BuildOptions{});
  ASSERT_TRUE(fp32.is_ok()) << fp32.status().to_string();
  auto batches = [](unsigned seed) {
    auto i = std::make_shared<unsigned>(0);
    return [=]() -> Result<Tensor> {
      if (*i >= 8) return Tensor();
      return Tensor::from_vector<float>({1, 4, 8, 8}, uniform_values(256, seed + (*i)++, -1.f, 1.f));
    };
  };
  EqualizeOptions eo;
  eo.alpha = 1.0;
  EqualizeReport rep;
  auto factors = choose_activation_equalization(**fp32, {1, 4, 8, 8}, batches(100), eo, &rep);
  ASSERT_TRUE(factors.is_ok()) << factors.status().to_string();
  EXPECT_EQ(rep.tensors, 1);
  EXPECT_EQ(rep.images, 8);
  ASSERT_EQ(factors->count("t"), 1u);
  EXPECT_FLOAT_EQ(factors->at("t")[0], 1.f);
  for (int c = 1; c < 4; ++c) EXPECT_LT(factors->at("t")[static_cast<size_t>(c)], 0.1f);
  const WeightOverrides w = with_equalization({}, *factors);

  // Calibrate (minmax) the plain and the equalised FP32 networks on the same batches.
  auto cache_for = [&](const Engine& e, const std::string& name) {
    CalibrationOptions co;
    co.algo = CalibAlgo::kMinMax;
    co.num_images = 0;
    auto table = calibrate_from_batches(e, batches(100), co);
    EXPECT_TRUE(table.is_ok()) << table.status().to_string();
    const std::string path = dir.path(name);
    EXPECT_TRUE(write_calibration_cache(path, *table).is_ok());
    return std::make_pair(path, *table);
  };
  auto eq_fp32 = build_engine_with_weights(model, BuildOptions{}, w);
  ASSERT_TRUE(eq_fp32.is_ok());
  const auto [plain_cache, plain_table] = cache_for(**fp32, "plain.cache");
  const auto [eq_cache, eq_table] = cache_for(**eq_fp32, "eq.cache");
  // The equalised calibration keeps t's own scale (a TensorRT cache needs it) beside t''s.
  ASSERT_EQ(eq_table.scales.count("t"), 1u);
  EXPECT_FLOAT_EQ(eq_table.scales.at("t"), plain_table.scales.at("t"));
  ASSERT_EQ(eq_table.scales.count(std::string("t") + kEqualizedSuffix), 1u);

  BuildOptions q;
  q.precision = Precision::kInt8;
  q.calibration_file = plain_cache;
  auto int8_plain = Engine::build(model, q);
  ASSERT_TRUE(int8_plain.is_ok()) << int8_plain.status().to_string();
  // The plain cache has no scale for t': refused, not run with float readers.
  auto mismatched = build_engine_with_weights(model, q, w);
  ASSERT_FALSE(mismatched.is_ok());
  EXPECT_NE(mismatched.status().message().find("no scale for 't/qyolo_equalized'"), std::string::npos)
      << mismatched.status().to_string();
  q.calibration_file = eq_cache;
  auto int8_eq = build_engine_with_weights(model, q, w);
  ASSERT_TRUE(int8_eq.is_ok()) << int8_eq.status().to_string();
  double e_plain = 0, e_eq = 0;
  for (unsigned k = 0; k < 4; ++k) {
    const Tensor x = Tensor::from_vector<float>({1, 4, 8, 8}, uniform_values(256, 500 + k, -1.f, 1.f));
    const Tensor ref = run_engine(**fp32, x);
    e_plain += nsr(run_engine(**int8_plain, x), ref);
    e_eq += nsr(run_engine(**int8_eq, x), ref);
  }
  EXPECT_LT(e_eq, 0.25 * e_plain) << "plain " << e_plain << ", equalised " << e_eq;
  // The engine file keeps the factors (weight overrides) and the T' scale: same outputs on load.
  const std::string engine_file = dir.path("eq.qengine");
  ASSERT_TRUE((*int8_eq)->save(engine_file).is_ok());
  auto loaded = Engine::load(engine_file);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  const Tensor x = Tensor::from_vector<float>({1, 4, 8, 8}, uniform_values(256, 600, -1.f, 1.f));
  const Tensor y0 = run_engine(**int8_eq, x), y1 = run_engine(**loaded, x);
  for (int64_t i = 0; i < y0.numel(); ++i) ASSERT_EQ(y1.data<float>()[i], y0.data<float>()[i]) << i;
  std::printf("INT8 output NSR: per-tensor %.3g, equalised %.3g\n", e_plain / 4, e_eq / 4);
}

// The fused multiplier (ConvAttrs::output_multiplier: SiLU through our INT8 epilogue, ReLU folded
// into the INT8 output scales, the float conv's own pass) computes what the explicit Mul computes:
// the same engine prepared both ways, FP32 and INT8 (int8 between the convs on the CPU). A producer
// without activation keeps the explicit Mul (see can_fuse_into).
TEST(ActivationEqualization, FusedMultiplierMatchesTheExplicitMul) {
  ScratchDir dir("qyolo_equalize_");
  for (const std::string act : {"silu", "relu", "none"}) {
    const int fused = act == "none" ? 0 : 1;
    const std::string model = write_model(
        dir, "eq_" + act + ".onnx",
        two_reader_model({8.f, 0.5f, 0.2f, 1.f}, uniform_values(72, 5, -0.5f, 0.5f), {1, -2, 0.5f, 3}, act));
    const WeightOverrides w = with_equalization({}, {{"t", std::vector<float>{1.f, 0.3f, 0.05f, 0.5f}}});
    CalibrationTable table;
    table.algorithm = "MinMaxCalibration";
    table.scales = {{"x", 1.f / 127},
                    {"t", 9.f / 127},
                    {std::string("t") + kEqualizedSuffix, 11.f / 127},
                    {"a", 4.f / 127},
                    {"bb", 4.f / 127}};
    const std::string cache = dir.path("eq_" + act + ".cache");
    ASSERT_TRUE(write_calibration_cache(cache, table).is_ok());
    BuildOptions q;
    q.precision = Precision::kInt8;
    q.calibration_file = cache;
    // Symmetric grids: the explicit Mul leaves its output without the lower bound that gives the
    // fused graph's T' a zero point (the multiplier's equivalence is what is tested here).
    q.asymmetric_activations = false;
    for (const BuildOptions& o : {BuildOptions{}, q}) {
      auto e = build_engine_with_weights(model, o, w);
      ASSERT_TRUE(e.is_ok()) << e.status().to_string();
      const Tensor x = Tensor::from_vector<float>({1, 4, 8, 8}, uniform_values(256, 6, -1.f, 1.f));
      std::map<std::string, Tensor> outs[2];
      for (bool fuse : {false, true}) {
        PassOptions p;
        p.fuse_equalization = fuse;
        // The engine's precision plan is made on the fused graph; the explicit-Mul graph (what
        // calibration runs) gets its own plan by the same CPU INT8 rules.
        const Engine::Impl& impl = (*e)->impl();
        auto sg = fuse ? impl.prepare({1, 4, 8, 8}, p) : impl.prepare_float({1, 4, 8, 8}, p);
        ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
        if (!fuse && o.precision == Precision::kInt8) {
          PlanRules rules;
          rules.int8 = rules.cpu_int8_dataflow = true;
          auto plan = make_precision_plan(*sg, impl.activation_scales, rules);
          ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
          ASSERT_TRUE(apply_precision_plan(*sg, *plan, "explicit Mul").is_ok());
          ASSERT_TRUE(apply_int8_storage(*sg, *plan, "explicit Mul").is_ok());
        }
        int multipliers = 0;
        for (const auto& n : sg->graph.nodes) multipliers += n.has_attr(kOutputMultiplierAttr);
        EXPECT_EQ(multipliers, fuse ? fused : 0) << act;
        auto ex = CpuExecutor::build(std::move(sg).value());
        ASSERT_TRUE(ex.is_ok()) << ex.status().to_string();
        ASSERT_TRUE((*ex)->run({{"x", x}}, outs[fuse]).is_ok());
      }
      const Tensor& a = outs[0].at("y");
      const Tensor& b = outs[1].at("y");
      for (int64_t i = 0; i < a.numel(); ++i)
        ASSERT_NEAR(b.data<float>()[i], a.data<float>()[i], 1e-5f + 1e-5f * std::fabs(a.data<float>()[i]))
            << act << (o.precision == Precision::kInt8 ? " int8 " : " fp32 ") << i;
    }
  }
}

// --equalize-concat: a Concat output read only by a conv is a candidate only when asked for, and
// its explicit Mul leaves the float network unchanged (against the un-rewritten FP32 engine).
TEST(ActivationEqualization, ConcatOutputsByExplicitMul) {
  ScratchDir dir("qyolo_equalize_");
  OnnxBuilder b;
  b.input("x", {1, 4, 8, 8});
  b.output("y", {1, 2, 8, 8});
  b.initializer("wp", {2, 4, 1, 1}, uniform_values(8, 11, -1.f, 1.f));
  b.initializer("wq", {2, 4, 1, 1}, uniform_values(8, 12, -4.f, 4.f));
  b.node("Conv", {"x", "wp"}, {"p0"}, "convP");
  b.node("Sigmoid", {"p0"}, {"ps"});
  b.node("Mul", {"p0", "ps"}, {"p"});
  b.node("Conv", {"x", "wq"}, {"q0"}, "convQ");
  b.node("Sigmoid", {"q0"}, {"qs"});
  b.node("Mul", {"q0", "qs"}, {"q"});
  auto* cat = b.node("Concat", {"p", "q"}, {"c"}, "cat");
  auto* axis = cat->add_attribute();
  axis->set_name("axis");
  axis->set_type(onnx::AttributeProto::INT);
  axis->set_i(1);
  b.initializer("wr", {2, 4, 3, 3}, uniform_values(72, 13, -0.5f, 0.5f));
  auto* cr = b.node("Conv", {"c", "wr"}, {"y"}, "convR");
  OnnxBuilder::attr_ints(cr, "pads", {1, 1, 1, 1});
  const std::string model = write_model(dir, "cat.onnx", b.bytes());

  auto g = import_onnx(model);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  auto sg = specialize(*g, {{"x", {1, 4, 8, 8}}});
  ASSERT_TRUE(sg.is_ok());
  ASSERT_TRUE(run_default_passes(*sg).is_ok());
  EXPECT_TRUE(equalizable_tensors(*sg).empty());  // p and q are read by the Concat
  EXPECT_EQ(equalizable_tensors(*sg, /*with_concat=*/true), std::vector<std::string>{"c"});

  auto plain = Engine::build(model, BuildOptions{});
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
  auto eq = build_engine_with_weights(model, BuildOptions{},
                                      with_equalization({}, {{"c", {1.f, 0.5f, 0.1f, 2.f}}}));
  ASSERT_TRUE(eq.is_ok()) << eq.status().to_string();
  const Tensor x = Tensor::from_vector<float>({1, 4, 8, 8}, uniform_values(256, 14, -1.f, 1.f));
  const Tensor ref = run_engine(**plain, x), y = run_engine(**eq, x);
  ASSERT_EQ(ref.shape(), y.shape());
  for (int64_t i = 0; i < ref.numel(); ++i)
    EXPECT_NEAR(y.data<float>()[i], ref.data<float>()[i], 1e-5f + 1e-5f * std::fabs(ref.data<float>()[i]))
        << i;
}
