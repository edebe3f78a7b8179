// Activation equalisation on the GPU (src/quant/activation_equalization.h): the producing conv
// applies the per-channel multiplier after its activation (ConvAttrs::output_multiplier) in every
// CUDA conv path — our epilogue pass, cuDNN's fused FP16 and INT8 graphs, cuBLASLt + the pass, our
// INT8 kernels, the direct stem — as the CPU backend does. Checked per path on small graphs against
// the CPU executor, then on QYOLO_SHARED/models/yolov5n.onnx (reference/bus_input.npy): the
// equalised FP32 engine gives the plain one's outputs, the equalised INT8 engines the CPU INT8
// engine's.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "calib/calib_cache.h"
#include "gpu_test_support.h"
#include "ir/npy.h"
#include "passes/passes.h"
#include "quant/activation_equalization.h"
#include "quant/calibrate_model.h"
#include "quant/equalization_sidecar.h"
#include "quant/quant_params.h"
#include "runtime/engine_impl.h"

using namespace qyolo;
using namespace qyolo::gputest;
namespace fs = std::filesystem;

namespace {

Tensor run_engine(const Engine& e, const Tensor& x) {
  Tensor y;
  auto ctx = e.create_context();
  EXPECT_TRUE(ctx.is_ok()) << ctx.status().to_string();
  if (!ctx.is_ok()) return y;
  Status st = (*ctx)->run(x, y);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return y;
}

// Largest |a - b| over the score columns (objectness, classes: [0, 1]) and over the box columns;
// with min_objectness > 0 only over the rows whose objectness in b reaches it (the candidates NMS
// would see).
std::pair<double, double> score_and_box_err(const Tensor& a, const Tensor& b, float min_objectness = 0.f) {
  const int64_t c = b.shape().back();
  double score = 0, box = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    if (min_objectness > 0.f && b.data<float>()[i - i % c + 4] < min_objectness) continue;
    const double e = std::fabs(static_cast<double>(a.data<float>()[i]) - b.data<float>()[i]);
    if (i % c < 4)
      box = std::max(box, e);
    else
      score = std::max(score, e);
  }
  return {score, box};
}

// A SiLU conv (pads ks / 2), INT8-marked with input threshold `amax` when amax > 0, with the
// equalisation multiplier (uniform in [0.3, 1.6]) when `mult`.
void add_conv(GraphSpec& spec, std::mt19937& rng, const std::string& x, const std::string& y, int64_t c,
              int64_t k, int64_t ks, int64_t stride, float amax, bool mult) {
  const float ws = 1.0f / std::sqrt(static_cast<float>(c * ks * ks));
  spec.constants[y + "_w"] = random_tensor({k, c, ks, ks}, rng, -ws, ws);
  spec.constants[y + "_b"] = random_tensor({k}, rng, -0.2f, 0.2f);
  const int64_t p = ks / 2 - (stride > 1 && ks % 2 == 0 ? 1 : 0);
  std::map<std::string, AttrValue> attrs = {{"kernel_shape", std::vector<int64_t>{ks, ks}},
                                            {"strides", std::vector<int64_t>{stride, stride}},
                                            {"pads", std::vector<int64_t>{p, p, p, p}},
                                            {"qyolo_activation", std::string("silu")}};
  if (amax > 0.f) attrs["qyolo_input_scale"] = scale_from_amax(amax);
  if (mult) {
    std::uniform_real_distribution<float> u(0.3f, 1.6f);
    std::vector<float> m(static_cast<size_t>(k));
    for (float& v : m) v = u(rng);
    attrs[kOutputMultiplierAttr] = m;
  }
  spec.nodes.push_back(make_node("Conv", {x, y + "_w", y + "_b"}, {y}, attrs));
}

// stem (6x6/2 on 3 channels) -> a (3x3) -> b (1x1), b2 (3x3) -> concat -> y (1x1); every conv
// but y with a multiplier. INT8-marked when int8.
GraphSpec multiplier_graph(std::mt19937& rng, bool int8) {
  GraphSpec spec;
  spec.inputs = {{"x", {2, 3, 64, 64}}};
  const float t = int8 ? 1.f : 0.f;  // INT8 input thresholds (scaled per conv below)
  add_conv(spec, rng, "x", "s", 3, 16, 6, 2, 2.0f * t, true);
  add_conv(spec, rng, "s", "a", 16, 32, 3, 1, 2.5f * t, true);
  add_conv(spec, rng, "a", "b", 32, 32, 1, 1, 2.5f * t, true);
  add_conv(spec, rng, "a", "b2", 32, 32, 3, 1, 2.5f * t, true);
  spec.nodes.push_back(make_node("Concat", {"b", "b2"}, {"cat"}, {{"axis", int64_t{1}}}));
  add_conv(spec, rng, "cat", "y", 64, 16, 1, 1, 3.0f * t, false);
  spec.outputs = {"y"};
  return spec;
}

// The same graph without any multiplier must differ from the reference by far more than the
// tolerance, or the comparison would not show a multiplier that is ignored.
GraphSpec without_multipliers(GraphSpec spec) {
  for (Node& n : spec.nodes) n.attrs.erase(kOutputMultiplierAttr);
  return spec;
}

// The plan of an INT8 build with half between layers keeps the stem on the float image in FP16
// (CudaBuildOptions::int8_fp16_stem): its CPU reference has the stem in float too.
GraphSpec with_float_stem(GraphSpec spec) {
  for (Node& n : spec.nodes)
    if (n.outputs[0] == "s") n.attrs.erase("qyolo_input_scale");
  return spec;
}

void expect_paths_match_cpu(const GraphSpec& spec,
                            const std::vector<std::pair<std::string, CudaBuildOptions>>& configs,
                            double tol) {
  auto sg = specialize_spec(spec);
  ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
  std::mt19937 rng(test_seed() + 21);
  std::map<std::string, Tensor> inputs{{"x", random_tensor({2, 3, 64, 64}, rng, 0.f, 1.f)}}, ref, plain,
      ref_fp_stem;
  ASSERT_NO_FATAL_FAILURE(cpu_reference(*sg, inputs, ref));
  auto sg_fp_stem = specialize_spec(with_float_stem(spec));
  ASSERT_TRUE(sg_fp_stem.is_ok());
  ASSERT_NO_FATAL_FAILURE(cpu_reference(*sg_fp_stem, inputs, ref_fp_stem));
  auto sg_plain = specialize_spec(without_multipliers(spec));
  ASSERT_TRUE(sg_plain.is_ok());
  ASSERT_NO_FATAL_FAILURE(cpu_reference(*sg_plain, inputs, plain));
  const double moved = compare(plain.at("y"), ref.at("y")).rel();
  EXPECT_GT(moved, 5 * tol) << "the multipliers barely change this graph's output";
  for (const auto& [name, opt] : configs) {
    SCOPED_TRACE(name);
    auto gpu = CudaExecutor::build(*sg, opt);
    ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
    std::map<std::string, Tensor> got;
    ASSERT_TRUE(run_gpu_poisoned(**gpu, inputs, got).is_ok());
    const bool fp16_stem = opt.precision == CudaPrecision::kInt8 && opt.int8_fp16 && opt.int8_fp16_stem;
    const Diff d = compare(got.at("y"), (fp16_stem ? ref_fp_stem : ref).at("y"));
    // The FP16 stem multiplies half weights (the reference: fp32), and each of its output's int8
    // flips runs down the INT8 chain: twice the tolerance (CudaInt8.ImageStemRunsInt8OnTheBytes
    // allows it three times the INT8 stem's error), still well below what the multipliers move.
    const double path_tol = fp16_stem ? 2 * tol : tol;
    std::printf("output multiplier, %-34s max rel err %.3g (without multipliers: %.3g)\n", name.c_str(),
                d.rel(), moved);
    EXPECT_EQ(d.nan_count, 0) << (*gpu)->summary();
    EXPECT_LE(d.rel(), path_tol) << (*gpu)->summary();
  }
}

}  // namespace

// Every float conv path with the multiplier: the direct stem, cuDNN's fused FP16 graph, the plain
// graph + our epilogue pass, cuBLASLt + the pass (the 1x1 convs), fp32 (legacy API + the pass).
TEST(CudaEqualization, FusedMultiplierOnEveryFloatConvPath) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed() + 20);
  const GraphSpec spec = multiplier_graph(rng, /*int8=*/false);
  std::vector<std::pair<std::string, CudaBuildOptions>> configs;
  for (const PrecisionConfig& c : kPrecisionConfigs) {
    if (c.precision != CudaPrecision::kFp32) continue;
    configs.emplace_back(c.name, c.options());
  }
  CudaBuildOptions fp16 = kPrecisionConfigs[2].options();  // fp16_nhwc
  fp16.cudnn_fused_epilogue = 2;
  configs.emplace_back("fp16 nhwc, cuDNN fused epilogue", fp16);
  fp16.cudnn_fused_epilogue = 0;
  configs.emplace_back("fp16 nhwc, our epilogue pass", fp16);
  fp16.cublaslt_convs = 2;
  configs.emplace_back("fp16 nhwc, cuBLASLt 1x1 + pass", fp16);
  fp16.fp16_direct_stem = false;
  configs.emplace_back("fp16 nhwc, stem on cuDNN", fp16);
  expect_paths_match_cpu(spec, configs, 2e-2);
}

// Every INT8 path with the multiplier: our kernels (fp32 or half between layers), cuDNN's INT8
// graph, the FP16 stem writing the int8 copy. Against the CPU INT8 executor (which applies the
// multiplier in its own epilogue) within the INT8 chains' tolerance.
TEST(CudaEqualization, FusedMultiplierOnEveryInt8ConvPath) {
  QYOLO_REQUIRE_INT8_GPU();
  std::mt19937 rng(test_seed() + 20);
  const GraphSpec spec = multiplier_graph(rng, /*int8=*/true);
  std::vector<std::pair<std::string, CudaBuildOptions>> configs;
  configs.emplace_back("int8, fp32 between, our kernels", all_int8_options(false));
  CudaBuildOptions o = all_int8_options(true);
  o.cudnn_int8 = 0;
  configs.emplace_back("int8, half between, our kernels", o);
  o.cudnn_int8 = 2;
  configs.emplace_back("int8, half between, cuDNN INT8", o);
  o.int8_fp16_stem = false;
  configs.emplace_back("int8, half between, INT8 stem", o);
  o.cudnn_int8 = 0;
  configs.emplace_back("int8, half between, INT8 stem, ours", o);
  expect_paths_match_cpu(spec, configs, 3e-2);
}

TEST(CudaEqualization, Yolov5nFp32UnchangedAndInt8MatchesCpu) {
  QYOLO_REQUIRE_GPU();
  const fs::path model = shared_dir() / "models" / "yolov5n.onnx";
  const fs::path input_path = shared_dir() / "reference" / "bus_input.npy";
  if (!fs::exists(model) || !fs::exists(input_path))
    GTEST_SKIP() << "model/reference absent (set QYOLO_SHARED)";
  auto input = read_npy(input_path.string());
  ASSERT_TRUE(input.is_ok());
  auto cpu_fp32 = Engine::build(model.string(), BuildOptions{});
  ASSERT_TRUE(cpu_fp32.is_ok()) << cpu_fp32.status().to_string();
  auto one_input = [&]() {
    auto done = std::make_shared<bool>(false);
    return [=]() -> Result<Tensor> {
      if (*done) return Tensor();
      *done = true;
      return *input;
    };
  };
  EqualizeReport rep;
  auto factors =
      choose_activation_equalization(**cpu_fp32, input->shape(), one_input(), EqualizeOptions{}, &rep);
  ASSERT_TRUE(factors.is_ok()) << factors.status().to_string();
  ASSERT_GT(rep.tensors, 20);
  const WeightOverrides w = with_equalization({}, *factors);

  BuildOptions cuda;
  cuda.device = Device::kCuda;
  auto gpu_plain = Engine::build(model.string(), cuda);
  ASSERT_TRUE(gpu_plain.is_ok()) << gpu_plain.status().to_string();
  auto gpu_eq = build_engine_with_weights(model.string(), cuda, w);
  ASSERT_TRUE(gpu_eq.is_ok()) << gpu_eq.status().to_string();
  const Tensor ref = run_engine(**gpu_plain, *input), eq = run_engine(**gpu_eq, *input);
  const auto [fp_score, fp_box] = score_and_box_err(eq, ref);
  std::printf("cuda fp32 equalised vs not: max score err %.2g, max box err %.2g px\n", fp_score, fp_box);
  EXPECT_LT(fp_score, 5e-3);
  EXPECT_LT(fp_box, 0.5);

  // INT8: min-max scales of the equalised network (T and T') on the same image.
  auto cpu_eq = build_engine_with_weights(model.string(), BuildOptions{}, w);
  ASSERT_TRUE(cpu_eq.is_ok());
  CalibrationOptions co;
  co.algo = CalibAlgo::kMinMax;
  co.num_images = 0;
  auto table = calibrate_from_batches(**cpu_eq, one_input(), co);
  ASSERT_TRUE(table.is_ok()) << table.status().to_string();
  const fs::path cache =
      fs::temp_directory_path() / ("qyolo_gpu_eq_" + std::to_string(::getpid()) + ".cache");
  ASSERT_TRUE(write_calibration_cache(cache.string(), *table).is_ok());
  BuildOptions q;
  q.precision = Precision::kInt8;
  q.asymmetric_activations = false;  // CPU references on the GPU's symmetric grid
  q.calibration_file = cache.string();
  auto cpu_int8 = build_engine_with_weights(model.string(), q, w);
  q.device = Device::kCuda;
  auto gpu_int8 = build_engine_with_weights(model.string(), q, w);
  // With half between layers and every conv INT8 (what the builder keeps at batch 32), equalised
  // and plain (the cache holds the scales of T and T').
  BuildOptions q16 = q;
  q16.int8_fp16 = true;
  q16.int8_all = true;
  auto gpu_int8_fp16 = build_engine_with_weights(model.string(), q16, w);
  auto gpu_int8_fp16_plain = Engine::build(model.string(), q16);
  // Half between layers: the FP16 direct stem (on the float image) and half storage; compared with
  // the CPU INT8 engine on the same plan (the convs the GPU plan keeps out of INT8 float there too).
  ASSERT_TRUE(gpu_int8_fp16.is_ok()) << gpu_int8_fp16.status().to_string();
  const std::string float_layers = float_layers_of((*gpu_int8_fp16)->precision_plan());
  BuildOptions cq = q;
  cq.device = Device::kCpu;
  cq.float_layers_regex = float_layers;
  auto cpu_plan = build_engine_with_weights(model.string(), cq, w);
  ASSERT_TRUE(cpu_plan.is_ok()) << cpu_plan.status().to_string();
  auto cpu_plan_plain = Engine::build(model.string(), cq);
  ASSERT_TRUE(cpu_plan_plain.is_ok()) << cpu_plan_plain.status().to_string();
  // The same factors as the sidecar `qyolo calibrate` writes beside the cache: a CPU and a CUDA
  // build from the cache apply them.
  ASSERT_TRUE(write_equalization_sidecar(cache.string(), *factors).is_ok());
  BuildOptions from_cache = q;
  from_cache.device = Device::kCpu;
  auto cpu_sidecar = Engine::build(model.string(), from_cache);
  from_cache.device = Device::kCuda;
  auto gpu_sidecar = Engine::build(model.string(), from_cache);
  ASSERT_TRUE(remove_equalization_sidecar(cache.string()).is_ok());
  fs::remove(cache);
  ASSERT_TRUE(cpu_sidecar.is_ok()) << cpu_sidecar.status().to_string();
  ASSERT_TRUE(gpu_sidecar.is_ok()) << gpu_sidecar.status().to_string();
  EXPECT_FALSE((*cpu_sidecar)->impl().weight_overrides.empty());
  EXPECT_FALSE((*gpu_sidecar)->impl().weight_overrides.empty());
  ASSERT_TRUE(cpu_int8.is_ok()) << cpu_int8.status().to_string();
  ASSERT_TRUE(gpu_int8.is_ok()) << gpu_int8.status().to_string();
  const Tensor c8 = run_engine(**cpu_int8, *input), g8 = run_engine(**gpu_int8, *input);
  const auto [i8_score, i8_box] = score_and_box_err(g8, c8);
  std::printf("equalised int8 gpu vs cpu: max score err %.3g, max box err %.3g px\n", i8_score, i8_box);
  // Two valid INT8 implementations (see CudaInt8.YoloV5nMatchesCpuInt8): scores within 0.05.
  EXPECT_LT(i8_score, 0.05);
  // The sidecar build is the same engine as the explicit factors.
  const Tensor gs = run_engine(**gpu_sidecar, *input);
  EXPECT_LE(compare(gs, g8).rel(), 1e-5);

  // Half storage between INT8 layers flips values across quantisation boundaries, and the flips
  // compound (docs/gpu-accuracy.md): the yardstick is how far the plain (un-equalised) GPU engine
  // lands from its own CPU counterpart. A multiplier a path ignored would move the equalised
  // scores by up to its factors (0.2-1), far more than that.
  ASSERT_TRUE(gpu_int8_fp16_plain.is_ok()) << gpu_int8_fp16_plain.status().to_string();
  const Tensor h8 = run_engine(**gpu_int8_fp16, *input), cp8 = run_engine(**cpu_plan, *input);
  const Tensor h8p = run_engine(**gpu_int8_fp16_plain, *input), cp8p = run_engine(**cpu_plan_plain, *input);
  const auto [h_score, h_box] = score_and_box_err(h8, cp8, 0.25f);
  const auto [p_score, p_box] = score_and_box_err(h8p, cp8p, 0.25f);
  std::printf(
      "int8 + fp16 gpu vs cpu int8 on its plan (float: %s), rows with objectness >= 0.25: equalised max "
      "score err %.3g, box err %.3g px; plain %.3g, %.3g px\n",
      float_layers.empty() ? "none" : float_layers.c_str(), h_score, h_box, p_score, p_box);
  EXPECT_LE(h_score, std::max(0.1, 2 * p_score));
}
