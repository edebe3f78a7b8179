// The CPU int8 plan (src/quant/int8_dataflow.h): which values stay int8, and that the int8 data
// path (int8 conv outputs with fused requantisation, int8 MaxPool / nearest Resize / Concat, int8
// residuals) computes what a scalar integer reference computes, and what the float-between-layers
// INT8 path computes; yolov5n's detections agree with the float-between-layers engine and FP32.
#include <cmath>
#include <random>

#include "backends/cpu/conv2d_int8.h"
#include "backends/cpu/cpu_executor.h"
#include "calib/calib_cache.h"
#include "calibration_support.h"
#include "onnx/onnx_import.h"
#include "onnx_builder.h"
#include "passes/passes.h"
#include "quant/calibrate_model.h"
#include "quant/int8_dataflow.h"
#include "quant/quant_params.h"
#include "quant/quantize_graph.h"
#include "runtime/detector.h"
#include "runtime/engine_impl.h"
#include "test_support.h"
#include "yolo/postprocess.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::OnnxBuilder;
using qyolo::testing::shared_dir;

namespace {

std::vector<float> random_values(size_t n, unsigned seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void attr_int(onnx::NodeProto* n, const std::string& key, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(key);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void attr_string(onnx::NodeProto* n, const std::string& key, const std::string& v) {
  auto* a = n->add_attribute();
  a->set_name(key);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(v);
}

struct ConvSpec {
  int64_t cin, cout, k, stride, pad;
  std::vector<float> w, b;
};

// A small graph with every int8 mover of a YOLO neck, 1x8x12x12 in:
//   a = act(A(x))  3x3         p = MaxPool3x3(a)      d = act(D(a)) 3x3 stride 2
//   u = Resize2x(d) nearest    cat = Concat(a, p, u)  e = act(E(cat)) 1x1 + a (residual, optional)
//   y = F(e) 3x3, the float output.
struct NeckCase {
  std::string act = "relu";  // fused activation of A, D, E: relu, silu or none (bias only)
  bool residual = true;
  float s_x = 3.f / 127, s_cat = 8.f / 127, s_d = 8.f / 127, s_e = 12.f / 127;  // conv input scales
  // Zero points (asymmetric grids, src/quant/quant_params.h) of D's and E's input (a, p, d, u,
  // cat share it) and of F's (e). With one, the residual (read as int8, symmetric only) is off.
  int zp_cat = 0, zp_e = 0;
};

struct Neck {
  ConvSpec A{8, 16, 3, 1, 1, {}, {}}, D{16, 16, 3, 2, 1, {}, {}}, E{48, 16, 1, 1, 0, {}, {}},
      F{16, 8, 3, 1, 1, {}, {}};
  std::vector<float> x;
  Neck() {
    unsigned seed = 10;
    for (ConvSpec* c : {&A, &D, &E, &F}) {
      c->w = random_values(static_cast<size_t>(c->cout * c->cin * c->k * c->k), seed++, -0.25f, 0.25f);
      c->b = random_values(static_cast<size_t>(c->cout), seed++, -0.5f, 0.5f);
    }
    x = random_values(8 * 12 * 12, 1, -1.5f, 3.f);
  }

  Result<SpecializedGraph> graph(const NeckCase& nc) const {
    OnnxBuilder ob;
    ob.input("x", {1, 8, 12, 12});
    ob.output("y");
    auto conv = [&](const ConvSpec& c, const std::string& name, const std::string& in,
                    const std::string& out) {
      ob.initializer(name + "_w", {c.cout, c.cin, c.k, c.k}, c.w);
      ob.initializer(name + "_b", {c.cout}, c.b);
      auto* n = ob.node("Conv", {in, name + "_w", name + "_b"}, {out}, name);
      OnnxBuilder::attr_ints(n, "pads", {c.pad, c.pad, c.pad, c.pad});
      OnnxBuilder::attr_ints(n, "strides", {c.stride, c.stride});
    };
    conv(A, "A", "x", "a");
    auto* pool = ob.node("MaxPool", {"a"}, {"p"}, "P");
    OnnxBuilder::attr_ints(pool, "kernel_shape", {3, 3});
    OnnxBuilder::attr_ints(pool, "pads", {1, 1, 1, 1});
    conv(D, "D", "a", "d");
    ob.initializer("roi", {0}, {});
    ob.initializer("scales", {4}, {1.f, 1.f, 2.f, 2.f});
    auto* up = ob.node("Resize", {"d", "roi", "scales"}, {"u"}, "U");
    attr_string(up, "mode", "nearest");
    attr_string(up, "coordinate_transformation_mode", "asymmetric");
    attr_string(up, "nearest_mode", "floor");
    attr_int(ob.node("Concat", {"a", "p", "u"}, {"cat"}, "C"), "axis", 1);
    conv(E, "E", "cat", "e");
    conv(F, "F", "e", "y");
    QYOLO_ASSIGN_OR_RETURN(Graph g, import_onnx_bytes(ob.bytes(), "neck.onnx", "."));
    const std::map<std::string, float> in_scale{{"A", nc.s_x}, {"D", nc.s_d}, {"E", nc.s_cat}, {"F", nc.s_e}};
    for (Node& n : g.nodes) {
      if (n.op_type != "Conv") continue;
      n.attrs["qyolo_input_scale"] = in_scale.at(n.name);
      const int zp = n.name == "D" || n.name == "E" ? nc.zp_cat : n.name == "F" ? nc.zp_e : 0;
      if (zp != 0) n.attrs[kInputZeroPointAttr] = int64_t{zp};
      if (n.name != "F" && nc.act != "none") n.attrs["qyolo_activation"] = nc.act;
      if (n.name == "E" && nc.residual) n.inputs.push_back("a");
    }
    return specialize(g, {{"x", {1, 8, 12, 12}}});
  }
};

// Runs the graph; returns every value (int8 ones dequantised by the executor) and y.
std::map<std::string, Tensor> run_graph(SpecializedGraph sg, const std::vector<float>& x) {
  auto ex = CpuExecutor::build(std::move(sg));
  EXPECT_TRUE(ex.is_ok()) << ex.status().to_string();
  if (!ex.is_ok()) return {};
  std::map<std::string, Tensor> seen, out;
  auto st = (*ex)->run({{"x", Tensor::from_vector<float>({1, 8, 12, 12}, x)}}, out,
                       [&](const std::string& name, const Tensor& t) { seen[name] = t.clone(); });
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  seen["y"] = out["y"];
  return seen;
}

// ---- scalar integer reference (NCHW, batch 1) ----------------------------------------------

struct QTensor {
  int64_t c, h, w;
  std::vector<int> q;  // int8 values
  int at(int64_t ch, int64_t y, int64_t x) const { return q[static_cast<size_t>((ch * h + y) * w + x)]; }
};

// Real pre-activation of an int8 conv: s_x * s_w[o] * acc + b[o], in double. lsb: s_x * s_w[o].
// x holds codes q of real s_x * (q - zp); the padding is real 0.
std::vector<double> ref_conv(const QTensor& x, float s_x, const ConvSpec& c, int64_t& oh, int64_t& ow,
                             std::vector<double>* lsb = nullptr, int zp = 0) {
  oh = (x.h + 2 * c.pad - c.k) / c.stride + 1;
  ow = (x.w + 2 * c.pad - c.k) / c.stride + 1;
  const int64_t per = c.cin * c.k * c.k;
  std::vector<double> y(static_cast<size_t>(c.cout * oh * ow));
  if (lsb) lsb->assign(static_cast<size_t>(c.cout), 0.0);
  for (int64_t o = 0; o < c.cout; ++o) {
    float amax = 0;
    for (int64_t j = 0; j < per; ++j) amax = std::max(amax, std::fabs(c.w[o * per + j]));
    const float s_w = scale_from_amax(amax);
    if (lsb) (*lsb)[o] = static_cast<double>(s_x) * s_w;
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        int64_t acc = 0;
        for (int64_t ci = 0; ci < c.cin; ++ci)
          for (int64_t ky = 0; ky < c.k; ++ky)
            for (int64_t kx = 0; kx < c.k; ++kx) {
              const int64_t iy = oy * c.stride - c.pad + ky, ix = ox * c.stride - c.pad + kx;
              if (iy < 0 || ix < 0 || iy >= x.h || ix >= x.w) continue;
              acc +=
                  (x.at(ci, iy, ix) - zp) *
                  cpu::int8_conv_effective_weight(quantize_int8(c.w[((o * c.cin + ci) * c.k + ky) * c.k + kx], s_w));
            }
        y[static_cast<size_t>((o * oh + oy) * ow + ox)] = static_cast<double>(s_x) * s_w * acc + c.b[o];
      }
  }
  return y;
}

double act(const std::string& a, double v) {
  if (a == "none") return v;
  return a == "relu" ? std::max(0.0, v) : v / (1.0 + std::exp(-v));
}

QTensor quantize(const std::vector<double>& v, int64_t c, int64_t h, int64_t w, float s, int zp = 0) {
  QTensor t{c, h, w, {}};
  for (double r : v) t.q.push_back(quantize_int8(static_cast<float>(r), s, zp));
  return t;
}

struct NeckRef {
  std::map<std::string, QTensor> q;  // int8 values of the plan: a, p, d, u, cat, e
  std::vector<double> y, y_lsb;
};

NeckRef reference(const Neck& nk, const NeckCase& nc) {
  NeckRef r;
  std::vector<double> xr(nk.x.begin(), nk.x.end());
  const QTensor qx = quantize(xr, 8, 12, 12, nc.s_x);
  int64_t oh, ow;
  auto a = ref_conv(qx, nc.s_x, nk.A, oh, ow);
  for (auto& v : a) v = act(nc.act, v);
  // a feeds the concat (and the pool into it) and D: the plan needs s_cat == s_d.
  const QTensor qa = quantize(a, 16, 12, 12, nc.s_cat, nc.zp_cat);
  QTensor qp = qa;
  for (int64_t ch = 0; ch < 16; ++ch)
    for (int64_t y = 0; y < 12; ++y)
      for (int64_t x = 0; x < 12; ++x) {
        int m = -128;
        for (int64_t dy = -1; dy <= 1; ++dy)
          for (int64_t dx = -1; dx <= 1; ++dx)
            if (y + dy >= 0 && y + dy < 12 && x + dx >= 0 && x + dx < 12)
              m = std::max(m, qa.at(ch, y + dy, x + dx));
        qp.q[static_cast<size_t>((ch * 12 + y) * 12 + x)] = m;
      }
  auto d = ref_conv(qa, nc.s_d, nk.D, oh, ow, nullptr, nc.zp_cat);
  for (auto& v : d) v = act(nc.act, v);
  const QTensor qd = quantize(d, 16, 6, 6, nc.s_cat, nc.zp_cat);
  QTensor qu{16, 12, 12, {}};
  for (int64_t ch = 0; ch < 16; ++ch)
    for (int64_t y = 0; y < 12; ++y)
      for (int64_t x = 0; x < 12; ++x) qu.q.push_back(qd.at(ch, y / 2, x / 2));
  QTensor cat{48, 12, 12, {}};
  for (const QTensor* t : {&qa, static_cast<const QTensor*>(&qp), static_cast<const QTensor*>(&qu)})
    cat.q.insert(cat.q.end(), t->q.begin(), t->q.end());
  auto e = ref_conv(cat, nc.s_cat, nk.E, oh, ow, nullptr, nc.zp_cat);
  for (size_t i = 0; i < e.size(); ++i) {
    e[i] = act(nc.act, e[i]);
    if (nc.residual) e[i] += static_cast<double>(nc.s_cat) * qa.q[i];  // the residual is read as int8
  }
  const QTensor qe = quantize(e, 16, 12, 12, nc.s_e, nc.zp_e);
  r.y = ref_conv(qe, nc.s_e, nk.F, oh, ow, &r.y_lsb, nc.zp_e);
  r.q = {{"a", qa}, {"p", qp}, {"d", qd}, {"u", qu}, {"cat", cat}, {"e", qe}};
  return r;
}

// Integers of a value seen by the observer (dequantised int8, or float the next conv quantises).
std::vector<int> integers(const Tensor& t, float scale, int zp = 0) {
  std::vector<int> q;
  for (int64_t i = 0; i < t.numel(); ++i) q.push_back(quantize_int8(t.data<float>()[i], scale, zp));
  return q;
}

struct Agreement {
  int64_t flips = 0, elements = 0;  // int8 values off by one (rounding boundaries)
  int max_diff = 0;
};
Agreement compare_ints(const std::vector<int>& got, const std::vector<int>& want) {
  Agreement a;
  EXPECT_EQ(got.size(), want.size());
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    const int d = std::abs(got[i] - want[i]);
    a.max_diff = std::max(a.max_diff, d);
    a.flips += d != 0;
    ++a.elements;
  }
  return a;
}

// y within one LSB of F's accumulator (s_e * s_w[o]) where no upstream int8 value flipped;
// with flips, 99% of the elements.
void expect_y_close(const Tensor& y, const std::vector<double>& want, const std::vector<double>& lsb,
                    int64_t flips) {
  ASSERT_EQ(y.numel(), static_cast<int64_t>(want.size()));
  int64_t within = 0;
  double worst = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    const double err =
        std::fabs(y.data<float>()[i] - want[static_cast<size_t>(i)]) / lsb[static_cast<size_t>(i / 144)];
    worst = std::max(worst, err);
    within += err <= 1.0;
  }
  if (flips == 0)
    EXPECT_LE(worst, 1.0) << "worst " << worst << " LSB";
  else
    EXPECT_GE(within, y.numel() * 99 / 100)
        << "worst " << worst << " LSB, " << flips << " flipped int8 values";
}

}  // namespace

TEST(Int8Dataflow, PlanKeepsTheNeckInt8WithConsumerScales) {
  Neck nk;
  NeckCase nc;
  nc.s_d = nc.s_cat;  // a's consumers (pool, concat, D) agree
  auto sg = nk.graph(nc);
  ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
  Int8DataflowOptions int8_residual;
  int8_residual.int8_residual = true;
  auto n = plan_int8_dataflow(*sg, {}, int8_residual);
  ASSERT_TRUE(n.is_ok()) << n.status().to_string();
  EXPECT_EQ(*n, 6);
  auto out_scale = [&](const std::string& node) -> float {
    for (const Node& n : sg->graph.nodes)
      if (n.name == node) return n.attr_float(kInt8OutputScaleAttr, 0.f).value();
    return -1.f;
  };
  for (const char* v : {"a", "p", "d", "u", "cat", "e"}) {
    const ValueDesc& d = sg->values.at(v);
    EXPECT_EQ(d.dtype, DataType::kInt8) << v;
    EXPECT_EQ(d.shape.size(), 4u) << v;  // logical NCHW shape kept
  }
  for (const char* n : {"A", "P", "D", "U", "C"}) EXPECT_EQ(out_scale(n), nc.s_cat) << n;
  EXPECT_EQ(out_scale("E"), nc.s_e);
  EXPECT_EQ(out_scale("F"), 0.f);
  for (const Node& n : sg->graph.nodes) {
    if (n.name == "E") {
      EXPECT_EQ(n.attr_float(kInt8ResidualScaleAttr, 0.f).value(), nc.s_cat);
    }
  }
  EXPECT_EQ(sg->values.at("y").dtype, DataType::kFloat32);  // graph output
  EXPECT_EQ(sg->values.at("x").dtype, DataType::kFloat32);
  // By default a fused residual is read in float: a (E's residual) stays float, so do the pool of
  // it and E (a conv with a float residual writes float); the rest stays int8.
  auto dflt = nk.graph(nc);
  ASSERT_TRUE(dflt.is_ok());
  ASSERT_TRUE(plan_int8_dataflow(*dflt, {}).is_ok());
  for (const char* v : {"a", "p", "e"}) EXPECT_EQ(dflt->values.at(v).dtype, DataType::kFloat32) << v;
  for (const char* v : {"d", "u", "cat"}) EXPECT_EQ(dflt->values.at(v).dtype, DataType::kInt8) << v;
}

TEST(Int8Dataflow, ConsumersThatDisagreeKeepAValueFloat) {
  Neck nk;
  NeckCase nc;
  nc.s_d = 5.f / 127;  // D reads a at another scale than the concat
  auto sg = nk.graph(nc);
  ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
  Int8DataflowOptions int8_residual;
  int8_residual.int8_residual = true;
  ASSERT_TRUE(plan_int8_dataflow(*sg, {}, int8_residual).is_ok());
  EXPECT_EQ(sg->values.at("a").dtype, DataType::kFloat32);
  EXPECT_EQ(sg->values.at("p").dtype, DataType::kFloat32);  // MaxPool of a float value
  EXPECT_EQ(sg->values.at("e").dtype, DataType::kFloat32);  // its residual a is float
  EXPECT_EQ(sg->values.at("cat").dtype, DataType::kInt8);   // quantises a and p itself
  EXPECT_EQ(sg->values.at("d").dtype, DataType::kInt8);
  // And it computes what the float-between-layers path computes.
  auto float_path = nk.graph(nc);
  ASSERT_TRUE(float_path.is_ok());
  auto got = run_graph(std::move(sg).value(), nk.x);
  auto want = run_graph(std::move(float_path).value(), nk.x);
  ASSERT_TRUE(got.count("y") && want.count("y"));
  const Agreement ag = compare_ints(integers(got.at("cat"), nc.s_cat), integers(want.at("cat"), nc.s_cat));
  EXPECT_EQ(ag.flips, 0);
  const Tensor &gy = got.at("y"), &wy = want.at("y");
  for (int64_t i = 0; i < gy.numel(); ++i) ASSERT_FLOAT_EQ(gy.data<float>()[i], wy.data<float>()[i]) << i;
}

class Int8Neck : public ::testing::TestWithParam<NeckCase> {};

TEST_P(Int8Neck, MatchesScalarIntegerReference) {
  Neck nk;
  NeckCase nc = GetParam();
  nc.s_d = nc.s_cat;
  auto sg = nk.graph(nc);
  ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
  Int8DataflowOptions int8_residual;
  int8_residual.int8_residual = true;  // the reference reads the residual as int8
  ASSERT_TRUE(plan_int8_dataflow(*sg, {}, int8_residual).is_ok());
  // SiLU convs write the asymmetric grid themselves (int8 between layers); ReLU's values stay float.
  if (nc.zp_cat != 0)
    for (const char* v : {"a", "d", "cat"})
      EXPECT_EQ(sg->values.at(v).dtype,
                nc.act == "silu" || v == std::string("cat") ? DataType::kInt8 : DataType::kFloat32)
          << v;
  auto got = run_graph(std::move(sg).value(), nk.x);
  ASSERT_TRUE(got.count("y"));
  const NeckRef ref = reference(nk, nc);
  int64_t flips = 0;
  const std::map<std::string, float> scale{{"a", nc.s_cat}, {"p", nc.s_cat},   {"d", nc.s_cat},
                                           {"u", nc.s_cat}, {"cat", nc.s_cat}, {"e", nc.s_e}};
  for (const auto& [v, s] : scale) {
    const int zp = v == std::string("e") ? nc.zp_e : nc.zp_cat;
    const Agreement ag = compare_ints(integers(got.at(v), s, zp), ref.q.at(v).q);
    EXPECT_LE(ag.max_diff, 1) << v;
    // The reference's SiLU and ReLU scaling run in double: a value within a float ulp of a
    // rounding boundary may round the other way.
    EXPECT_LE(ag.flips, nc.act != "silu" ? ag.elements / 1000 : ag.elements / 100) << v;
    flips += ag.flips;
  }
  expect_y_close(got.at("y"), ref.y, ref.y_lsb, flips);
}

// Without the residual (the one thing the plan reads differently: quantised), the int8 path holds
// the integers the float-between-layers path feeds its convs.
TEST_P(Int8Neck, MatchesFloatBetweenLayersPath) {
  Neck nk;
  NeckCase nc = GetParam();
  nc.s_d = nc.s_cat;
  nc.residual = false;
  auto planned = nk.graph(nc), float_path = nk.graph(nc);
  ASSERT_TRUE(planned.is_ok() && float_path.is_ok());
  ASSERT_TRUE(plan_int8_dataflow(*planned, {}).is_ok());
  auto got = run_graph(std::move(planned).value(), nk.x);
  auto want = run_graph(std::move(float_path).value(), nk.x);
  ASSERT_TRUE(got.count("y") && want.count("y"));
  int64_t flips = 0;
  for (const auto& [v, s] :
       std::map<std::string, float>{{"a", nc.s_cat}, {"d", nc.s_cat}, {"cat", nc.s_cat}, {"e", nc.s_e}}) {
    const int zp = v == std::string("e") ? nc.zp_e : nc.zp_cat;
    const Agreement ag = compare_ints(integers(got.at(v), s, zp), integers(want.at(v), s, zp));
    EXPECT_LE(ag.max_diff, 1) << v;
    // SiLU keeps the float path's arithmetic: the same integers. ReLU's and the linear convs'
    // fused v * (1 / s) may round differently from v / s within an ulp of a boundary.
    EXPECT_LE(ag.flips, nc.act != "silu" ? ag.elements / 1000 : 0) << v;
    flips += ag.flips;
  }
  const NeckRef ref = reference(nk, nc);  // for F's LSB
  std::vector<double> want_y;
  for (int64_t i = 0; i < want.at("y").numel(); ++i) want_y.push_back(want.at("y").data<float>()[i]);
  expect_y_close(got.at("y"), want_y, ref.y_lsb, flips);
}

// A SiLU conv with a float residual (the default plan: residuals are not quantised) still writes
// int8: its epilogue adds the float residual as the float path does and quantises at its reader's
// scale, so every integer and F's float output equal the float-between-layers path's exactly,
// with the residual channels-last and, in a graph without that plan, NCHW (reordered first).
TEST(Int8Dataflow, SiluConvWithFloatResidualWritesTheFloatPathsIntegers) {
  Neck nk;
  NeckCase nc{"silu", true};
  nc.s_d = nc.s_cat;
  for (bool channels_last : {true, false}) {
    auto planned = nk.graph(nc), float_path = nk.graph(nc);
    ASSERT_TRUE(planned.is_ok() && float_path.is_ok());
    ASSERT_TRUE(plan_int8_dataflow(*planned, {}).is_ok());
    EXPECT_EQ(planned->values.at("e").dtype, DataType::kInt8);     // E: SiLU + float residual a
    EXPECT_EQ(planned->values.at("a").dtype, DataType::kFloat32);  // the residual itself
    bool residual_nhwc = false;
    if (channels_last) {
      ASSERT_TRUE(plan_channels_last_float(*planned).is_ok());
      ASSERT_TRUE(plan_channels_last_float(*float_path).is_ok());
      for (const Node& n : planned->graph.nodes)
        if (n.name == "E") residual_nhwc = n.has_attr(kChannelsLastResidualAttr);
      EXPECT_TRUE(residual_nhwc);
    }
    auto got = run_graph(std::move(planned).value(), nk.x);
    auto want = run_graph(std::move(float_path).value(), nk.x);
    ASSERT_TRUE(got.count("y") && want.count("y"));
    const Agreement ag = compare_ints(integers(got.at("e"), nc.s_e), integers(want.at("e"), nc.s_e));
    EXPECT_EQ(ag.flips, 0) << (channels_last ? "channels-last" : "NCHW") << " residual";
    const Tensor &gy = got.at("y"), &wy = want.at("y");
    for (int64_t i = 0; i < gy.numel(); ++i) ASSERT_EQ(gy.data<float>()[i], wy.data<float>()[i]) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Activations, Int8Neck,
    ::testing::Values(NeckCase{"relu"}, NeckCase{"silu"}, NeckCase{"silu", false}, NeckCase{"none"},
                      NeckCase{"none", false},
                      // Asymmetric grids: SiLU's (its outputs >= -0.2785 fit
                      // from code -128 up), and ReLU's (oneDNN's int8 output is
                      // symmetric: those values stay float, the readers
                      // quantise them onto the grid).
                      NeckCase{"silu", false, 3.f / 127, 8.f / 127, 8.f / 127, 12.f / 127, -120, -125},
                      NeckCase{"relu", false, 3.f / 127, 8.f / 127, 8.f / 127, 12.f / 127, -128, -128}),
    [](const auto& info) {
      return info.param.act + (info.param.residual ? "_residual" : "") +
             (info.param.zp_cat ? "_zero_points" : "");
    });

// yolov5n end to end (minmax cache from 4 coco128 images): the int8-between-layers engine finds the
// objects the float-between-layers INT8 engine finds, and those of FP32.
TEST(Int8Dataflow, Yolov5nDetectionsAgree) {
  QYOLO_REQUIRE_8BIT_INT8_WEIGHTS();
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  QYOLO_REQUIRE_SHARED("data/coco128/images");
  const std::string model = (shared_dir() / "models/yolov5n.onnx").string();
  auto fp32 = Engine::build(model, {});
  ASSERT_TRUE(fp32.is_ok());
  const fs::path cache =
      fs::temp_directory_path() / ("qyolo_int8_dataflow_" + std::to_string(::getpid()) + ".cache");
  auto table = qyolo::testing::coco128_minmax_cache(**fp32, 4, cache);
  ASSERT_TRUE(table.is_ok()) << table.status().to_string();
  // Both grids: symmetric, and the default asymmetric one (zero points on bounded conv inputs),
  // whose int8 values between layers must hold the integers each conv's own quantisation makes.
  for (bool asymmetric : {false, true}) {
    SCOPED_TRACE(asymmetric ? "asymmetric activations" : "symmetric activations");
    BuildOptions o;
    o.precision = Precision::kInt8;
    o.calibration_file = cache.string();
    o.asymmetric_activations = asymmetric;
    auto int8 = Engine::build(model, o);
    ASSERT_TRUE(int8.is_ok()) << int8.status().to_string();

    const Shape shape{1, 3, 640, 640};
    auto planned = (*int8)->impl().prepare(shape);
    // The float-between-layers INT8 graph: Engine::Impl::prepare's steps without the plan.
    const Engine::Impl& impl = (*int8)->impl();
    auto unplanned = specialize(impl.graph, {{impl.info.input_name, shape}});
    ASSERT_TRUE(planned.is_ok() && unplanned.is_ok());
    ASSERT_TRUE(run_default_passes(*unplanned).is_ok());
    QuantizeOptions qo;
    qo.asymmetric_activations = asymmetric;
    ASSERT_TRUE(quantize_graph(*unplanned, impl.activation_scales, qo).is_ok());
    int int8_outputs = 0, int8_convs = 0;
    for (const auto& n : planned->graph.nodes) {
      int8_convs += n.has_attr("qyolo_input_scale");
      int8_outputs += n.op_type == "Conv" && n.has_attr(kInt8OutputScaleAttr);
    }
    EXPECT_EQ(int8_convs, 60);
    EXPECT_GT(int8_outputs, int8_convs / 2) << "most conv outputs should stay int8";
    for (const auto& [name, d] : unplanned->values) EXPECT_NE(d.dtype, DataType::kInt8) << name;

    auto img = load_image((shared_dir() / "data/samples/bus.jpg").string());
    ASSERT_TRUE(img.is_ok());
    const Tensor input = Detector::preprocess({&*img}, 640, 640, nullptr);
    auto run = [&](SpecializedGraph sg) {
      auto ex = CpuExecutor::build(std::move(sg));
      EXPECT_TRUE(ex.is_ok()) << ex.status().to_string();
      std::map<std::string, Tensor> out;
      EXPECT_TRUE((*ex)->run({{"images", input}}, out).is_ok());
      return out.at("output0");
    };
    const Tensor a = run(std::move(planned).value()), b = run(std::move(unplanned).value());
    Tensor f;
    ASSERT_TRUE((*(*fp32)->create_context())->run(input, f).is_ok());
    auto da = postprocess(a, HeadKind::kYoloV5, {});
    auto db = postprocess(b, HeadKind::kYoloV5, {});
    auto df = postprocess(f, HeadKind::kYoloV5, {});
    ASSERT_TRUE(da.is_ok() && db.is_ok() && df.is_ok());
    auto iou = [](const Detection& p, const Detection& q) {
      const float ix = std::max(0.f, std::min(p.x2, q.x2) - std::max(p.x1, q.x1));
      const float iy = std::max(0.f, std::min(p.y2, q.y2) - std::max(p.y1, q.y1));
      const float inter = ix * iy;
      return inter / ((p.x2 - p.x1) * (p.y2 - p.y1) + (q.x2 - q.x1) * (q.y2 - q.y1) - inter);
    };
    // Every confident detection of `want` is found in `got` (same class, IoU > min_iou).
    auto expect_found = [&](const std::vector<Detection>& got, const std::vector<Detection>& want,
                            float min_iou, const char* what, int min_confident = 4) {
      int confident = 0;
      for (const auto& w : want) {
        if (w.score < 0.5f) continue;
        ++confident;
        bool found = false;
        for (const auto& g : got) found = found || (g.class_id == w.class_id && iou(g, w) > min_iou);
        EXPECT_TRUE(found) << what << ": class " << w.class_id << " at " << w.x1 << "," << w.y1 << " score "
                           << w.score;
      }
      EXPECT_GE(confident, min_confident) << what;  // bus.jpg: 4 persons and the bus
    };
    expect_found((*da)[0], (*db)[0], 0.9f, "vs float-between-layers INT8", asymmetric ? 3 : 4);
    expect_found((*da)[0], (*df)[0], 0.8f, "vs FP32");
    // The int8 values hold the integers the float-between-layers engine computes (SiLU keeps its
    // arithmetic, residuals are read in float): the outputs agree to float rounding. On the finer
    // asymmetric grids a value within an ulp of a half step can round apart (the int8 epilogue
    // decides such values with expf, the float output path's vector activation with its polynomial,
    // within 2 ulps of it: measured, one of 204,800 values of /model.8/cv2 at t = -4.5000005), and
    // the flip spreads through the later convs: there the scores agree on average.
    double max_diff = 0, score_diff = 0;
    int64_t scores = 0;
    for (int64_t i = 0; i < a.numel(); ++i) {
      const double d = std::fabs(a.data<float>()[i] - b.data<float>()[i]);
      max_diff = std::max(max_diff, d);
      if (i % 85 >= 4) score_diff += d, ++scores;
    }
    if (!asymmetric) EXPECT_LT(max_diff, 1e-3) << "largest output difference (boxes in pixels, scores)";
    EXPECT_LT(score_diff / static_cast<double>(scores), asymmetric ? 1e-3 : 1e-6) << "mean score difference";
  }
  fs::remove(cache);
}
