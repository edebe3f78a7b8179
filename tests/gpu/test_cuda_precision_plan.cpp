// The precision plan on the GPU: the CUDA executor lowers a given plan (CudaBuildOptions::plan)
// as it is, with no per-layer INT8/FP16 timing; a cuda `--int8 --fp16` engine stores the choice
// its build made as its plan, and a loaded engine's executors (at the opt shape and others) run
// exactly that plan; an edited plan in the file is what runs; a plan the backend cannot run is an
// error naming the conv. Model: QYOLO_SHARED/models/yolov5n-dynamic.onnx, data/samples (the two images device-check.sh bundles) for a
// 2-image min-max cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "calib/calib_cache.h"
#include "gpu_test_support.h"
#include "quant/calibrate_model.h"
#include "quant/quant_params.h"
#include "runtime/engine_impl.h"

namespace fs = std::filesystem;
using namespace qyolo;
using namespace qyolo::gputest;

namespace {

void add_int8_silu_conv(GraphSpec& spec, std::mt19937& rng, const std::string& x, const std::string& y,
                        int64_t c, int64_t k, int64_t ks, float amax) {
  const float ws = 1.0f / std::sqrt(static_cast<float>(c * ks * ks));
  spec.constants[y + "_w"] = random_tensor({k, c, ks, ks}, rng, -ws, ws);
  spec.constants[y + "_b"] = random_tensor({k}, rng, -0.2f, 0.2f);
  const int64_t p = ks / 2;
  spec.nodes.push_back(make_node("Conv", {x, y + "_w", y + "_b"}, {y},
                                 {{"kernel_shape", std::vector<int64_t>{ks, ks}},
                                  {"pads", std::vector<int64_t>{p, p, p, p}},
                                  {"qyolo_activation", std::string("silu")},
                                  {"qyolo_input_scale", scale_from_amax(amax)}}));
}

bool has_choice_tactics(const std::map<std::string, std::vector<int64_t>>& t) {
  return std::any_of(t.begin(), t.end(), [](const auto& kv) {
    return kv.first.rfind("convtime:", 0) == 0 || kv.first.rfind("engine-precision:", 0) == 0;
  });
}

std::map<std::string, NodePrecision> conv_plan(const PrecisionPlan& plan, const SpecializedGraph& sg) {
  std::map<std::string, NodePrecision> m;
  for (const auto& n : sg.graph.nodes)
    if (n.op_type == "Conv") m[n.name] = plan.precision_of(n.name);
  return m;
}

// Four marked convs (as quantize_graph marks them), --int8 --fp16.
TEST(CudaPrecisionPlan, ExecutorLowersTheGivenPlanWithoutTiming) {
  QYOLO_REQUIRE_INT8_GPU();
  std::mt19937 rng(test_seed() + 41);
  GraphSpec spec;
  spec.inputs = {{"x", {2, 16, 40, 40}}};
  add_int8_silu_conv(spec, rng, "x", "a", 16, 32, 3, 2.0f);
  add_int8_silu_conv(spec, rng, "a", "b", 32, 32, 1, 2.0f);
  add_int8_silu_conv(spec, rng, "b", "c", 32, 32, 3, 2.0f);
  add_int8_silu_conv(spec, rng, "c", "y", 32, 16, 1, 2.0f);
  spec.outputs = {"y"};
  auto sg = specialize_spec(spec);
  ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
  std::map<std::string, Tensor> inputs{{"x", random_tensor({2, 16, 40, 40}, rng, -2.f, 2.f)}}, out;
  CudaBuildOptions opt;
  opt.precision = CudaPrecision::kInt8;
  opt.int8_fp16 = true;
  // The per-layer choice: it reports what it chose.
  auto chosen = CudaExecutor::build(*sg, opt);
  ASSERT_TRUE(chosen.is_ok()) << chosen.status().to_string();
  EXPECT_TRUE(has_choice_tactics((*chosen)->tactics()));
  ASSERT_EQ((*chosen)->conv_precisions().size(), 4u);
  // Every assignment of INT8 to a, b, c, y given as a plan runs as given, with nothing timed for
  // the choice.
  for (int mask = 0; mask < 16; ++mask) {
    SCOPED_TRACE("mask " + std::to_string(mask));
    PrecisionPlan plan;
    plan.float_precision = NodePrecision::kFp16;
    const char* names[] = {"Conv_a", "Conv_b", "Conv_c", "Conv_y"};
    std::map<std::string, NodePrecision> want;
    for (int i = 0; i < 4; ++i)
      want[names[i]] = plan.nodes[names[i]] = (mask >> i & 1) ? NodePrecision::kInt8 : NodePrecision::kFp16;
    CudaBuildOptions given = opt;
    given.plan = plan;
    given.tactics = (*chosen)->tactics();  // kernel tactics reused: only the lowering differs
    auto ex = CudaExecutor::build(*sg, given);
    ASSERT_TRUE(ex.is_ok()) << ex.status().to_string();
    EXPECT_EQ((*ex)->conv_precisions(), want);
    EXPECT_EQ(count_in((*ex)->summary(), "[int8 "), static_cast<size_t>(__builtin_popcount(mask)))
        << (*ex)->summary();
    ASSERT_TRUE(run_gpu_poisoned(**ex, inputs, out).is_ok());
    const Tensor& y = out.at("y");
    EXPECT_EQ(
        std::count_if(y.data<float>(), y.data<float>() + y.numel(), [](float v) { return std::isnan(v); }),
        0);
    if (mask == 0) {
      CudaBuildOptions fresh = opt;  // no tactics: nothing of the choice gets timed
      fresh.plan = plan;
      auto f = CudaExecutor::build(*sg, fresh);
      ASSERT_TRUE(f.is_ok()) << f.status().to_string();
      EXPECT_FALSE(has_choice_tactics((*f)->tactics()));
    }
  }
  // The choice given back as a plan is the same engine, bit for bit.
  PrecisionPlan same;
  same.float_precision = NodePrecision::kFp16;
  for (const auto& [name, p] : (*chosen)->conv_precisions()) same.nodes[name] = p;
  CudaBuildOptions again = opt;
  again.plan = same;
  again.tactics = (*chosen)->tactics();
  auto rebuilt = CudaExecutor::build(*sg, again);
  ASSERT_TRUE(rebuilt.is_ok()) << rebuilt.status().to_string();
  std::map<std::string, Tensor> a, b;
  ASSERT_TRUE(run_gpu_poisoned(**chosen, inputs, a).is_ok());
  ASSERT_TRUE(run_gpu_poisoned(**rebuilt, inputs, b).is_ok());
  EXPECT_EQ(compare(a.at("y"), b.at("y")).max_abs_err, 0.0);
  // A conv without an input scale cannot run INT8: the plan asking for it is an error naming it.
  GraphSpec unscaled = spec;
  unscaled.nodes[2].attrs.erase("qyolo_input_scale");
  auto sg2 = specialize_spec(unscaled);
  ASSERT_TRUE(sg2.is_ok());
  PrecisionPlan bad = same;
  bad.nodes["Conv_c"] = NodePrecision::kInt8;
  CudaBuildOptions wrong = opt;
  wrong.plan = bad;
  auto e = CudaExecutor::build(*sg2, wrong);
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("Conv node 'Conv_c'"), std::string::npos) << e.status().to_string();
}

// yolov5n --int8 --fp16 on cuda (profile 1..2 x 3x320x320, opt batch 1).
class CudaPlanEngine : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_int8_gpu() || !fs::exists(model()) || !fs::exists(shared_dir() / "data/samples")) return;
    dir_ = fs::temp_directory_path() / ("qyolo_cuda_plan_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    BuildOptions f;
    f.profile = kProfile;
    auto fp32 = Engine::build(model().string(), f);
    if (!fp32) {
      error_ = fp32.status().to_string();
      return;
    }
    CalibrationOptions copt;
    copt.algo = CalibAlgo::kMinMax;
    copt.num_images = 2;
    copt.batch = 1;
    auto table = calibrate(**fp32, (shared_dir() / "data/samples").string(), copt);
    if (!table) {
      error_ = table.status().to_string();
      return;
    }
    cache_ = (dir_ / "n.cache").string();
    if (Status st = write_calibration_cache(cache_, *table); !st) {
      error_ = st.to_string();
      return;
    }
    auto e = Engine::build(model().string(), options());
    if (e)
      engine_ = *e;
    else
      error_ = e.status().to_string();
  }
  static void TearDownTestSuite() {
    engine_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override {
    QYOLO_REQUIRE_INT8_GPU();
    if (!fs::exists(model()) || !fs::exists(shared_dir() / "data/samples"))
      GTEST_SKIP() << "model or data/samples absent (set QYOLO_SHARED)";
    ASSERT_TRUE(engine_ != nullptr) << error_;
  }
  static fs::path model() { return shared_dir() / "models" / "yolov5n-dynamic.onnx"; }
  static BuildOptions options() {
    BuildOptions o;
    o.device = Device::kCuda;
    o.precision = Precision::kInt8;
    o.int8_fp16 = true;
    o.calibration_file = cache_;
    o.profile = kProfile;
    return o;
  }
  static std::string read_bytes(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), {});
  }
  static void write_bytes(const fs::path& p, const std::string& b) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << b;
  }
  static Result<std::shared_ptr<const Engine>> load_with_plan(const PrecisionPlan& plan,
                                                              const std::string& name) {
    const fs::path p = dir_ / name;
    QYOLO_RETURN_IF_ERROR(engine_->save(p.string()));
    QYOLO_ASSIGN_OR_RETURN(EngineFileContents c, parse_engine_file(read_bytes(p), p.string()));
    c.plan = plan;
    write_bytes(p, serialize_engine_file(c));
    return Engine::load(p.string());
  }
  static inline const ShapeProfile kProfile{{1, 3, 320, 320}, {1, 3, 320, 320}, {2, 3, 320, 320}};
  static inline std::shared_ptr<const Engine> engine_;
  static inline std::string error_, cache_;
  static inline fs::path dir_;
};

TEST_F(CudaPlanEngine, LoadedEngineLowersTheStoredPlan) {
  const PrecisionPlan& plan = engine_->impl().plan;
  std::printf("built plan: %s; %s\n", engine_->impl().plan_summary.c_str(),
              engine_->impl().build_note.c_str());
  EXPECT_EQ(plan.float_precision, NodePrecision::kFp16);
  EXPECT_FALSE(has_choice_tactics(engine_->impl().tactics()));  // the plan holds the choice
  const fs::path file = dir_ / "n.qengine";
  ASSERT_TRUE(engine_->save(file.string()).is_ok());
  auto loaded = Engine::load(file.string());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ((*loaded)->impl().plan, plan);
  // Every executor of either engine, at the opt shape and at batch 2, runs the plan's precisions.
  for (const Engine* e : {engine_.get(), loaded->get()}) {
    auto ctx = e->create_context();
    ASSERT_TRUE(ctx.is_ok());
    for (const Shape& s : {kProfile.opt, Shape{2, 3, 320, 320}}) {
      auto ex = (*ctx)->impl().cuda_executor_for(s);
      ASSERT_TRUE(ex.is_ok()) << ex.status().to_string();
      EXPECT_EQ((*ex)->conv_precisions(), conv_plan(plan, (*ex)->graph())) << shape_str(s);
      EXPECT_FALSE(has_choice_tactics((*ex)->tactics())) << shape_str(s);
    }
  }
  // Same plan, same tactics: the loaded engine computes what the built one does.
  std::mt19937 rng(test_seed());
  Tensor in = random_tensor(kProfile.opt, rng, 0.f, 1.f), a, b;
  auto ca = engine_->create_context();
  auto cb = (*loaded)->create_context();
  ASSERT_TRUE(ca.is_ok() && cb.is_ok());
  ASSERT_TRUE((*ca)->run(in, a).is_ok());
  ASSERT_TRUE((*cb)->run(in, b).is_ok());
  const Diff d = compare(b, a);
  EXPECT_EQ(d.nan_count, 0);
  EXPECT_LT(d.rel(), 1e-3) << "max abs err " << d.max_abs_err;
}

TEST_F(CudaPlanEngine, AnEditedPlanIsWhatRuns) {
  // Every conv FP16 (no tensor quantised): the loaded engine runs no INT8 conv.
  PrecisionPlan fp16 = engine_->impl().plan;
  for (auto& [name, p] : fp16.nodes) p = NodePrecision::kFp16;
  fp16.tensors.clear();
  auto all16 = load_with_plan(fp16, "all_fp16.qengine");
  ASSERT_TRUE(all16.is_ok()) << all16.status().to_string();
  auto ctx = (*all16)->create_context();
  ASSERT_TRUE(ctx.is_ok());
  auto ex = (*ctx)->impl().cuda_executor_for(kProfile.opt);
  ASSERT_TRUE(ex.is_ok()) << ex.status().to_string();
  for (const auto& [name, p] : (*ex)->conv_precisions()) EXPECT_EQ(p, NodePrecision::kFp16) << name;
  EXPECT_EQ((*ex)->cost().int8_macs, 0.0);
  // The image stem in INT8 (with a scale for the image): --int8 --fp16 keeps it on the FP16 stem
  // kernel, so the backend refuses, naming the conv and the engine file.
  PrecisionPlan stem = engine_->impl().plan;
  const std::string stem_conv = "/model.0/conv/Conv";
  ASSERT_TRUE(stem.nodes.count(stem_conv));
  stem.nodes[stem_conv] = NodePrecision::kInt8;
  stem.tensors["images"] = {DataType::kFloat16, 1.0f / 127};
  auto r = load_with_plan(stem, "stem_int8.qengine");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("Conv node '" + stem_conv + "'"), std::string::npos)
      << r.status().to_string();
  EXPECT_NE(r.status().message().find("stem_int8.qengine"), std::string::npos) << r.status().to_string();
}

}  // namespace
