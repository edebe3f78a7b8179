// The CPU layout plans and concat in place (plan_channels_last_decode / _float, passes.h;
// CpuExecutor::place_concats): the head convs write channels-last, the (AVX-512) decodes read it
// and write their rows straight into the detect output. The output must be the float-for-float
// output of the unfused tail (NCHW head conv outputs, Reshape/Transpose/Sigmoid/.../Concat), at
// batch 2 (batch items of a placed decode sit a whole detect output apart), FP32 and INT8; an
// observer sees every channels-last value NCHW (equal to the NCHW run's) and placed ones dense.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "backends/cpu/cpu_executor.h"
#include "calib/calib_cache.h"
#include "calibration_support.h"
#include "ir/npy.h"
#include "ir/ops/yolo_decode.h"
#include "passes/passes.h"
#include "quant/calibrate_model.h"
#include "quant/int8_dataflow.h"
#include "quant/quantize_graph.h"
#include "runtime/engine_impl.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::shared_dir;

namespace {

const Shape kBatch2{2, 3, 640, 640};

// bus_input.npy and a brighter copy of it, batch 2.
Tensor batch2_input() {
  auto one = read_npy((shared_dir() / "reference/bus_input.npy").string());
  EXPECT_TRUE(one.is_ok());
  Tensor t(DataType::kFloat32, kBatch2);
  const int64_t per = one->numel();
  for (int64_t i = 0; i < per; ++i) {
    t.data<float>()[i] = one->data<float>()[i];
    t.data<float>()[per + i] = std::min(1.f, one->data<float>()[i] * 1.25f);
  }
  return t;
}

std::map<std::string, Tensor> run(SpecializedGraph sg, const Tensor& input,
                                  const ValueObserver& observer = nullptr) {
  auto ex = CpuExecutor::build(std::move(sg));
  EXPECT_TRUE(ex.is_ok()) << ex.status().to_string();
  if (!ex) return {};
  std::map<std::string, Tensor> out;
  Status st = (*ex)->run({{"images", input}}, out, observer);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return out;
}

// The engine's graph with the tail unfused (so no decode is channels-last or placed), as prepare()
// builds it otherwise; INT8 without the float layout plan either (its float values NCHW: the
// int8 integers and float outputs must not depend on it).
SpecializedGraph unfused_graph(const Engine& engine, const Shape& shape) {
  const Engine::Impl& impl = engine.impl();
  auto sg = specialize(impl.graph, {{impl.info.input_name, shape}});
  EXPECT_TRUE(sg.is_ok());
  PassOptions p;
  p.fuse_yolo_decode = false;
  EXPECT_TRUE(run_default_passes(*sg, p).is_ok());
  if (engine.options().precision == Precision::kInt8) {
    QuantizeOptions qo;
    qo.asymmetric_activations = engine.options().asymmetric_activations;  // the engine's plan rule
    EXPECT_TRUE(quantize_graph(*sg, impl.activation_scales, qo).is_ok());
    EXPECT_TRUE(plan_int8_dataflow(*sg, impl.activation_scales).is_ok());
  } else {
    EXPECT_TRUE(plan_channels_last_float(*sg).is_ok());  // the same layouts up to the head
  }
  return std::move(sg).value();
}

// Head convs: channels-last outputs that decodes read.
std::vector<std::string> head_convs(const SpecializedGraph& sg) {
  std::vector<std::string> heads;
  for (const Node& n : sg.graph.nodes)
    if (n.op_type == kYoloDecodeOp && n.has_attr(kChannelsLastInputAttr))
      for (const Node& p : sg.graph.nodes)
        if (p.outputs[0] == n.inputs[0] && p.has_attr(kChannelsLastOutputAttr)) heads.push_back(n.inputs[0]);
  return heads;
}

// Bit for bit on AVX-512, where oneDNN runs the same kernel for a head conv's channels-last and
// blocked outputs. Without AVX-512 (AVX2) those are two JIT kernels that sum in another order, so
// there the floats may differ in their last bits: counted only beyond 4e-6 of the tensor's
// largest magnitude (seen on an AVX2 EPYC: at most 7.5e-7; a layout mistake moves values by O(1)).
int64_t count_differences(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return -1;
  double amax = 0;
  for (int64_t i = 0; i < b.numel(); ++i) amax = std::max(amax, std::fabs(double(b.data<float>()[i])));
  const double tol = __builtin_cpu_supports("avx512f") ? 0.0 : 4e-6 * amax;
  int64_t diff = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const float x = a.data<float>()[i], y = b.data<float>()[i];
    diff += tol == 0.0 ? std::memcmp(&x, &y, sizeof(float)) != 0 : !(std::fabs(double(x) - y) <= tol);
  }
  return diff;
}

void expect_same_as_unfused(const Engine& engine) {
  auto planned = engine.impl().prepare(kBatch2);
  ASSERT_TRUE(planned.is_ok()) << planned.status().to_string();
  EXPECT_EQ(head_convs(*planned).size(), 3u);
  const Tensor input = batch2_input();
  const auto got = run(std::move(planned).value(), input);
  const auto want = run(unfused_graph(engine, kBatch2), input);
  ASSERT_TRUE(got.count("output0") && want.count("output0"));
  EXPECT_EQ(count_differences(got.at("output0"), want.at("output0")), 0);
}

fs::path minmax_cache(const Engine& fp32) {
  const fs::path cache =
      fs::temp_directory_path() / ("qyolo_head_layout_" + std::to_string(::getpid()) + ".cache");
  auto table = qyolo::testing::coco128_minmax_cache(fp32, 2, cache);
  EXPECT_TRUE(table.is_ok()) << table.status().to_string();
  return cache;
}

TEST(CpuHeadLayout, Fp32Batch2EqualsTheUnfusedTail) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-dynamic.onnx");
  QYOLO_REQUIRE_SHARED("reference/bus_input.npy");
  auto engine = Engine::build((shared_dir() / "models/yolov5n-dynamic.onnx").string(), {});
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  expect_same_as_unfused(**engine);
}

TEST(CpuHeadLayout, Int8Batch2EqualsTheUnfusedTail) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-dynamic.onnx");
  QYOLO_REQUIRE_SHARED("reference/bus_input.npy");
  QYOLO_REQUIRE_SHARED("data/coco128/images");
  const std::string model = (shared_dir() / "models/yolov5n-dynamic.onnx").string();
  auto fp32 = Engine::build(model, {});
  ASSERT_TRUE(fp32.is_ok());
  const fs::path cache = minmax_cache(**fp32);
  BuildOptions o;
  o.precision = Precision::kInt8;
  o.calibration_file = cache.string();
  auto int8 = Engine::build(model, o);
  fs::remove(cache);
  ASSERT_TRUE(int8.is_ok()) << int8.status().to_string();
  expect_same_as_unfused(**int8);

  // Row bands (CpuExecutor::fuse_bands): the 80x80 head conv (13 MB of float output at batch 2)
  // runs band by band inside its decode's step; the detect output is the same as with the head
  // conv run whole (QYOLO_CPU_BANDS=0), bit for bit.
  {
    const Tensor input = batch2_input();
    Tensor outs[2];
    int banded[2] = {0, 0};
    for (int bands : {0, 1}) {
      setenv("QYOLO_CPU_BANDS", bands ? "1" : "0", 1);
      auto sg = (*int8)->impl().prepare(kBatch2);
      ASSERT_TRUE(sg.is_ok());
      const std::vector<std::string> heads = head_convs(*sg);
      auto ex = CpuExecutor::build(std::move(sg).value());
      ASSERT_TRUE(ex.is_ok()) << ex.status().to_string();
      std::map<std::string, Tensor> out;
      std::vector<double> seconds;
      ASSERT_TRUE((*ex)->run({{"images", input}}, out, nullptr, &seconds).is_ok());
      outs[bands] = out.at("output0");
      const auto& nodes = (*ex)->graph().graph.nodes;
      for (size_t i = 0; i < nodes.size(); ++i)  // a banded head conv takes no time of its own
        banded[bands] +=
            std::find(heads.begin(), heads.end(), nodes[i].outputs[0]) != heads.end() && seconds[i] == 0.0;
    }
    unsetenv("QYOLO_CPU_BANDS");
    EXPECT_EQ(banded[0], 0);
    EXPECT_GE(banded[1], 1);
    EXPECT_EQ(count_differences(outs[0], outs[1]), 0);
  }

  // Batch 2 runs its int8-to-int8 SiLU convs image by image (conv2d_int8.cpp, per_item_) and
  // places two rows blocks per decode: the same floats as two batch-1 runs.
  auto ctx = (*int8)->create_context();
  ASSERT_TRUE(ctx.is_ok());
  const Tensor input = batch2_input();
  Tensor both;
  ASSERT_TRUE((*ctx)->run(input, both).is_ok());
  const int64_t per_in = input.numel() / 2, per_out = both.numel() / 2;
  for (int64_t b = 0; b < 2; ++b) {
    Tensor one = Tensor::uninitialized(DataType::kFloat32, {1, 3, 640, 640});
    std::memcpy(one.data<float>(), input.data<float>() + b * per_in,
                static_cast<size_t>(per_in) * sizeof(float));
    Tensor out;
    ASSERT_TRUE((*ctx)->run(one, out).is_ok());
    ASSERT_EQ(out.numel(), per_out);
    EXPECT_EQ(std::memcmp(out.data<float>(), both.data<float>() + b * per_out,
                          static_cast<size_t>(per_out) * sizeof(float)),
              0)
        << "batch item " << b;
  }
}

// With an observer, the channels-last head conv outputs arrive NCHW and each placed decode output
// dense: equal to the unfused run's head values and to its rows of the detect output.
TEST(CpuHeadLayout, ObserverSeesNchwAndDenseValues) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-dynamic.onnx");
  QYOLO_REQUIRE_SHARED("reference/bus_input.npy");
  auto engine = Engine::build((shared_dir() / "models/yolov5n-dynamic.onnx").string(), {});
  ASSERT_TRUE(engine.is_ok());
  auto planned = (*engine)->impl().prepare(kBatch2);
  ASSERT_TRUE(planned.is_ok());
  const std::vector<std::string> heads = head_convs(*planned);
  std::vector<std::string> channels_last, decodes;
  for (const Node& n : planned->graph.nodes) {
    if (n.has_attr(kChannelsLastOutputAttr)) channels_last.push_back(n.outputs[0]);
    if (n.op_type == kYoloDecodeOp) decodes.push_back(n.outputs[0]);
  }
  ASSERT_EQ(heads.size(), 3u);
  ASSERT_EQ(decodes.size(), 3u);
  EXPECT_GT(channels_last.size(), 60u);  // the float plan: nearly every value of the network
  const Tensor input = batch2_input();
  std::map<std::string, Tensor> seen, want;
  auto keep = [](std::map<std::string, Tensor>& m) {
    return [&m](const std::string& name, const Tensor& t) { m[name] = t.clone(); };
  };
  const auto got = run(std::move(planned).value(), input, keep(seen));
  run(unfused_graph(**engine, kBatch2), input, keep(want));
  for (const auto& v : channels_last) {
    ASSERT_TRUE(seen.count(v) && want.count(v)) << v;
    EXPECT_EQ(count_differences(seen.at(v), want.at(v)), 0) << v;
  }
  // Decode k's rows of output0: [n, offset_k, offset_k + A*H*W) x C.
  const Tensor& out = got.at("output0");
  const int64_t rows = out.dim(1), c = out.dim(2);
  int64_t offset = 0;
  for (const auto& v : decodes) {
    ASSERT_TRUE(seen.count(v)) << v;
    const Tensor& d = seen.at(v);  // [N, A, H, W, C]
    const int64_t per = d.numel() / d.dim(0);
    for (int64_t n = 0; n < d.dim(0); ++n)
      EXPECT_EQ(std::memcmp(d.data<float>() + n * per, out.data<float>() + (n * rows + offset) * c,
                            static_cast<size_t>(per) * sizeof(float)),
                0)
          << v << " batch item " << n;
    offset += per / c;
  }
  EXPECT_EQ(offset, rows);
}

}  // namespace

namespace {

double max_rel_err(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double err = 0, ref = 0;
  for (int64_t i = 0; i < a.numel() && a.shape() == b.shape(); ++i) {
    err = std::max(err, static_cast<double>(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
    ref = std::max(ref, static_cast<double>(std::fabs(b.data<float>()[i])));
  }
  return ref > 0 ? err / ref : err;
}

// The FP32 plan against the same graph with every value NCHW (no layout plan at all): oneDNN's
// nhwc and blocked kernels sum in other orders, so equal up to rounding; every channels-last
// value reaches the observer NCHW.
TEST(CpuHeadLayout, Fp32FloatPlanMatchesAllNchw) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-dynamic.onnx");
  QYOLO_REQUIRE_SHARED("reference/bus_input.npy");
  auto engine = Engine::build((shared_dir() / "models/yolov5n-dynamic.onnx").string(), {});
  ASSERT_TRUE(engine.is_ok());
  auto planned = (*engine)->impl().prepare(kBatch2);
  ASSERT_TRUE(planned.is_ok());
  std::vector<std::string> channels_last;
  for (const Node& n : planned->graph.nodes)
    if (n.has_attr(kChannelsLastOutputAttr)) channels_last.push_back(n.outputs[0]);
  EXPECT_GT(channels_last.size(), 60u);
  const Engine::Impl& impl = (*engine)->impl();
  auto nchw = specialize(impl.graph, {{impl.info.input_name, kBatch2}});
  ASSERT_TRUE(nchw.is_ok());
  ASSERT_TRUE(run_default_passes(*nchw).is_ok());
  const Tensor input = batch2_input();
  std::map<std::string, Tensor> seen, want;
  auto keep = [](std::map<std::string, Tensor>& m) {
    return [&m](const std::string& name, const Tensor& t) { m[name] = t.clone(); };
  };
  const auto got = run(std::move(planned).value(), input, keep(seen));
  const auto ref = run(std::move(nchw).value(), input, keep(want));
  ASSERT_TRUE(got.count("output0") && ref.count("output0"));
  EXPECT_LE(max_rel_err(got.at("output0"), ref.at("output0")), 1e-5);
  for (const auto& v : channels_last) {
    ASSERT_TRUE(seen.count(v) && want.count(v)) << v;
    EXPECT_LE(max_rel_err(seen.at(v), want.at(v)), 1e-5) << v;
  }
}

}  // namespace

namespace {

// The detect output reused run after run (ExecutionContext::run) while the decodes write into it
// in place: each run's output equals a fresh run's.
TEST(CpuHeadLayout, ReusedDetectOutputEqualsFreshRuns) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-dynamic.onnx");
  QYOLO_REQUIRE_SHARED("reference/bus_input.npy");
  auto engine = Engine::build((shared_dir() / "models/yolov5n-dynamic.onnx").string(), {});
  ASSERT_TRUE(engine.is_ok());
  auto ctx = (*engine)->create_context();
  ASSERT_TRUE(ctx.is_ok());
  const Tensor both = batch2_input();
  Tensor first = both.clone(), second = both.clone();
  std::swap_ranges(second.data<float>(), second.data<float>() + both.numel() / 2,
                   second.data<float>() + both.numel() / 2);  // the two images swapped
  Tensor out, fresh_first, fresh_second;
  ASSERT_TRUE((*ctx)->run(first, out).is_ok());
  const void* storage = out.raw();
  ASSERT_TRUE((*ctx)->run(first, fresh_first).is_ok());
  ASSERT_TRUE((*ctx)->run(second, out).is_ok());
  EXPECT_EQ(out.raw(), storage);
  ASSERT_TRUE((*ctx)->run(second, fresh_second).is_ok());
  EXPECT_EQ(count_differences(out, fresh_second), 0);
  EXPECT_GT(count_differences(out, fresh_first), 0);
}

}  // namespace
