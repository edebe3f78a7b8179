// The public GPU API of cuda engines and their engine files: tactics chosen at build time are
// saved and reused on load (no timing again), set_input_shape + enqueue on a caller's stream (and
// in a CUDA graph) gives what ExecutionContext::run gives, shapes outside the profile are errors,
// and an engine file claiming another GPU (name / compute capability) does not load; another
// cuDNN version loads with its tactics timed again. Model: QYOLO_SHARED/models/yolov5n-dynamic.onnx.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "gpu_test_support.h"
#include "runtime/engine_impl.h"

namespace fs = std::filesystem;
using namespace qyolo;
using namespace qyolo::gputest;

namespace {

using Clock = std::chrono::steady_clock;

fs::path model_path() {
  return shared_dir() / "models" / "yolov5n-dynamic.onnx";
}

// A small opt shape keeps the tactic timing of the build short.
const ShapeProfile kProfile{{1, 3, 320, 320}, {1, 3, 320, 320}, {4, 3, 640, 640}};

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}
void write_bytes(const fs::path& p, const std::string& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << b;
}
// Recomputes the trailing checksum after an edit, so that load() reaches the GPU check.
std::string reseal(const std::string& file) {
  std::string payload = file.substr(0, file.size() - 8);
  uint64_t h = engine_file_checksum(payload);
  payload.append(reinterpret_cast<const char*>(&h), 8);
  return payload;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

class CudaEngineApi : public ::testing::Test {
 protected:
  // One fp16 build for the whole suite (it times tactics: the slow part).
  static void SetUpTestSuite() {
    if (!have_gpu() || !fs::exists(model_path())) return;
    BuildOptions o;
    o.device = Device::kCuda;
    o.precision = Precision::kFp16;
    o.profile = kProfile;
    auto t0 = Clock::now();
    auto e = Engine::build(model_path().string(), o);
    build_seconds_ = seconds_since(t0);
    if (e) {
      engine_ = *e;
    } else {
      build_error_ = e.status().to_string();
    }
  }
  static void TearDownTestSuite() { engine_.reset(); }

  void SetUp() override {
    QYOLO_REQUIRE_GPU();
    if (!fs::exists(model_path()))
      GTEST_SKIP() << "model absent: " << model_path()
                   << " (set QYOLO_SHARED; device-check.sh prepare must bundle models/yolov5n-dynamic.onnx)";
    ASSERT_TRUE(engine_ != nullptr) << "fp16 cuda build failed: " << build_error_;
    dir_ = fs::temp_directory_path() / ("qyolo_cuda_engine_api_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  static std::shared_ptr<const Engine> engine_;
  static std::string build_error_;
  static double build_seconds_;
  fs::path dir_;
};

std::shared_ptr<const Engine> CudaEngineApi::engine_;
std::string CudaEngineApi::build_error_;
double CudaEngineApi::build_seconds_ = 0;

TEST_F(CudaEngineApi, EngineRecordsThisGpu) {
  auto here = current_cuda_target();
  ASSERT_TRUE(here.is_ok()) << here.status().to_string();
  const CudaTarget& t = engine_->impl().cuda_target;
  EXPECT_TRUE(t.same_gpu(*here)) << t.str(true) << " vs " << here->str(true);
  EXPECT_EQ(t.cudnn_version, here->cudnn_version);
  EXPECT_FALSE(engine_->impl().tactics().empty());
  std::printf("built on %s with %zu tactics in %.1f s\n", t.str(true).c_str(),
              engine_->impl().tactics().size(), build_seconds_);
}

TEST_F(CudaEngineApi, SaveLoadReusesTactics) {
  const TacticMap built = engine_->impl().tactics();
  ASSERT_FALSE(built.empty());
  const std::string file = (dir_ / "n.qengine").string();
  ASSERT_TRUE(engine_->save(file).is_ok());

  auto t0 = Clock::now();
  auto loaded = Engine::load(file);
  const double load_s = seconds_since(t0);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_TRUE((*loaded)->impl().load_note.empty()) << (*loaded)->impl().load_note;
  EXPECT_EQ((*loaded)->options().precision, Precision::kFp16);
  EXPECT_EQ((*loaded)->impl().tactics(), built);

  // A context's executor at the opt shape starts from the stored tactics and needs no others.
  auto ctx = (*loaded)->create_context();
  ASSERT_TRUE(ctx.is_ok());
  t0 = Clock::now();
  auto exec = (*ctx)->impl().cuda_executor_for(kProfile.opt);
  const double ctx_s = seconds_since(t0);
  ASSERT_TRUE(exec.is_ok()) << exec.status().to_string();
  EXPECT_FALSE((*exec)->tactics().empty());
  EXPECT_EQ((*exec)->tactics(), built);
  std::printf("build %.2f s (timing %zu tactics); load %.2f s; context at opt %.2f s\n", build_seconds_,
              built.size(), load_s, ctx_s);

  // Same tactics, same kernels: the loaded engine computes what the built one does.
  std::mt19937 rng(test_seed());
  Tensor in = random_tensor(kProfile.opt, rng, 0.f, 1.f);
  auto c_built = engine_->create_context();
  ASSERT_TRUE(c_built.is_ok());
  Tensor a, b;
  ASSERT_TRUE((*c_built)->run(in, a).is_ok());
  ASSERT_TRUE((*ctx)->run(in, b).is_ok());
  Diff d = compare(b, a);
  EXPECT_EQ(d.nan_count, 0);
  EXPECT_LT(d.rel(), 1e-3) << "max abs err " << d.max_abs_err;
}

TEST_F(CudaEngineApi, EnqueueOnAUserStreamMatchesRun) {
  SCOPED_TRACE("seed " + std::to_string(test_seed()));
  const Shape shape{2, 3, 320, 480};
  std::mt19937 rng(test_seed());
  Tensor in = random_tensor(shape, rng, 0.f, 1.f);
  auto ctx = engine_->create_context();
  ASSERT_TRUE(ctx.is_ok());
  Tensor ref;
  Status st = (*ctx)->run(in, ref);
  ASSERT_TRUE(st.is_ok()) << st.to_string();

  EXPECT_TRUE((*ctx)->input_shape().empty());  // dynamic engine: none until set
  st = (*ctx)->set_input_shape(shape);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  auto io = (*ctx)->bindings();
  ASSERT_TRUE(io.is_ok()) << io.status().to_string();
  ASSERT_EQ(io->size(), 2u);
  const TensorBinding& bi = (*io)[0];
  const TensorBinding& bo = (*io)[1];
  EXPECT_TRUE(bi.is_input);
  EXPECT_FALSE(bo.is_input);
  EXPECT_EQ(bi.name, "images");
  EXPECT_EQ(bi.shape, shape);
  EXPECT_EQ(bi.dtype, DataType::kFloat32);
  EXPECT_EQ(bo.dtype, DataType::kFloat32);
  EXPECT_EQ(bo.shape, ref.shape());

  auto d_in = cuda::DeviceBuffer::allocate(bi.nbytes());
  auto d_out = cuda::DeviceBuffer::allocate(bo.nbytes());
  ASSERT_TRUE(d_in.is_ok() && d_out.is_ok());
  ASSERT_TRUE(d_in->upload(in.raw(), bi.nbytes()).is_ok());
  auto stream = cuda::make_stream();
  ASSERT_TRUE(stream.is_ok());
  auto check_output = [&](const char* what) {
    SCOPED_TRACE(what);
    ASSERT_EQ(cudaStreamSynchronize(stream->get()), cudaSuccess);
    Tensor got = Tensor::uninitialized(bo.dtype, bo.shape);
    ASSERT_EQ(cudaMemcpy(got.raw(), d_out->get(), bo.nbytes(), cudaMemcpyDeviceToHost), cudaSuccess);
    Diff d = compare(got, ref);
    std::printf("%s vs run(): max abs err %.3g / max abs %.3g\n", what, d.max_abs_err, d.max_abs_ref);
    EXPECT_EQ(d.nan_count, 0);
    EXPECT_LT(d.rel(), 1e-3);
  };

  // Output poisoned (NaN) first: everything must be written by the enqueue.
  ASSERT_EQ(cudaMemset(d_out->get(), 0xFF, bo.nbytes()), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  st = (*ctx)->enqueue({d_in->get()}, {d_out->get()}, stream->get());
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  check_output("enqueue");

  // Captured into a CUDA graph and replayed.
  ASSERT_EQ(cudaMemset(d_out->get(), 0xFF, bo.nbytes()), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(stream->get(), cudaStreamCaptureModeThreadLocal), cudaSuccess);
  st = (*ctx)->enqueue({d_in->get()}, {d_out->get()}, stream->get());
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream->get(), &graph), cudaSuccess);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  cuda::Graph g(graph);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, g.get(), 0), cudaSuccess);
  cuda::GraphExec ge(exec);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(cudaGraphLaunch(ge.get(), stream->get()), cudaSuccess);
  check_output("cuda graph");

  // Two contexts on two streams at once (one enqueue in flight per context).
  auto ctx2 = engine_->create_context();
  ASSERT_TRUE(ctx2.is_ok());
  ASSERT_TRUE((*ctx2)->set_input_shape(shape).is_ok());
  auto d_out2 = cuda::DeviceBuffer::allocate(bo.nbytes());
  auto stream2 = cuda::make_stream();
  ASSERT_TRUE(d_out2.is_ok() && stream2.is_ok());
  ASSERT_EQ(cudaMemset(d_out->get(), 0xFF, bo.nbytes()), cudaSuccess);
  ASSERT_EQ(cudaMemset(d_out2->get(), 0xFF, bo.nbytes()), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ASSERT_TRUE((*ctx)->enqueue({d_in->get()}, {d_out->get()}, stream->get()).is_ok());
  ASSERT_TRUE((*ctx2)->enqueue({d_in->get()}, {d_out2->get()}, stream2->get()).is_ok());
  ASSERT_EQ(cudaStreamSynchronize(stream2->get()), cudaSuccess);
  check_output("context 1 of 2");
  Tensor got2 = Tensor::uninitialized(bo.dtype, bo.shape);
  ASSERT_EQ(cudaMemcpy(got2.raw(), d_out2->get(), bo.nbytes(), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_LT(compare(got2, ref).rel(), 1e-3);

  // Bad calls.
  st = (*ctx)->enqueue({d_in->get()}, {}, stream->get());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("bindings()"), std::string::npos) << st.to_string();
  st = (*ctx)->enqueue({nullptr}, {d_out->get()}, stream->get());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("'images' is null"), std::string::npos) << st.to_string();
}

TEST_F(CudaEngineApi, ShapesOutsideTheProfileAreErrors) {
  auto ctx = engine_->create_context();
  ASSERT_TRUE(ctx.is_ok());
  float* dummy = nullptr;
  Status st = (*ctx)->enqueue({dummy}, {dummy}, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("set_input_shape"), std::string::npos) << st.to_string();
  for (const Shape& bad : {Shape{8, 3, 640, 640}, Shape{1, 3, 160, 160}, Shape{1, 3, 640, 1280}}) {
    st = (*ctx)->set_input_shape(bad);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
    EXPECT_NE(st.message().find(shape_str(bad)), std::string::npos) << st.to_string();
    EXPECT_NE(st.message().find("min 1x3x320x320"), std::string::npos) << st.to_string();
    EXPECT_NE(st.message().find("max 4x3x640x640"), std::string::npos) << st.to_string();
  }
  EXPECT_TRUE((*ctx)->input_shape().empty());
  // run() with such a shape errors the same way (through the executor cache).
  Tensor big(DataType::kFloat32, {8, 3, 640, 640});
  Tensor out;
  st = (*ctx)->run(big, out);
  EXPECT_NE(st.message().find("8x3x640x640"), std::string::npos) << st.to_string();
}

TEST_F(CudaEngineApi, AnotherGpuInTheEngineFileIsAClearError) {
  const std::string file = (dir_ / "n.qengine").string();
  ASSERT_TRUE(engine_->save(file).is_ok());
  const std::string bytes = read_bytes(file);
  const CudaTarget t = engine_->impl().cuda_target;
  // The GPU record: u64 length, name, u32 cc major, u32 cc minor, u32 cuDNN version.
  uint64_t n = t.gpu_name.size();
  const std::string record = std::string(reinterpret_cast<const char*>(&n), 8) + t.gpu_name;
  const size_t at = bytes.find(record);
  ASSERT_NE(at, std::string::npos);
  const size_t name_at = at + 8, cc_at = name_at + t.gpu_name.size(), cudnn_at = cc_at + 8;

  // Another GPU name (same length).
  std::string renamed = bytes;
  std::string other = t.gpu_name;
  other.back() = other.back() == 'X' ? 'Y' : 'X';
  renamed.replace(name_at, other.size(), other);
  const std::string renamed_file = (dir_ / "renamed.qengine").string();
  write_bytes(renamed_file, reseal(renamed));
  auto e = Engine::load(renamed_file);
  ASSERT_FALSE(e.is_ok());
  const Status& st = e.status();
  std::printf("%s\n", st.to_string().c_str());
  EXPECT_EQ(st.code(), StatusCode::kVersionMismatch);
  EXPECT_NE(st.message().find("was built on " + other + " (sm_"), std::string::npos) << st.to_string();
  EXPECT_NE(st.message().find("this GPU is " + t.gpu_name), std::string::npos) << st.to_string();
  EXPECT_NE(st.message().find("qyolo build --model"), std::string::npos) << st.to_string();
  EXPECT_NE(st.message().find("--fp16"), std::string::npos) << st.to_string();
  // Without resealing, the edit is caught by the checksum instead.
  write_bytes(renamed_file, renamed);
  EXPECT_NE(Engine::load(renamed_file).status().message().find("checksum"), std::string::npos);

  // Another compute capability.
  std::string cc = bytes;
  const uint32_t major = static_cast<uint32_t>(t.cc_major + 1);
  std::memcpy(cc.data() + cc_at, &major, 4);
  write_bytes(renamed_file, reseal(cc));
  auto e2 = Engine::load(renamed_file);
  ASSERT_FALSE(e2.is_ok());
  EXPECT_NE(e2.status().message().find("(sm_" + std::to_string(major) + std::to_string(t.cc_minor) + ")"),
            std::string::npos)
      << e2.status().to_string();

  // Another cuDNN version: loads, with the tactics timed again (and says so).
  std::string cudnn = bytes;
  const uint32_t v = static_cast<uint32_t>(t.cudnn_version + 1);
  std::memcpy(cudnn.data() + cudnn_at, &v, 4);
  write_bytes(renamed_file, reseal(cudnn));
  auto e3 = Engine::load(renamed_file);
  ASSERT_TRUE(e3.is_ok()) << e3.status().to_string();
  std::printf("%s\n", (*e3)->impl().load_note.c_str());
  EXPECT_NE((*e3)->impl().load_note.find("timed again"), std::string::npos) << (*e3)->impl().load_note;
  EXPECT_FALSE((*e3)->impl().tactics().empty());
  EXPECT_EQ((*e3)->impl().cuda_target.cudnn_version, t.cudnn_version);
}

}  // namespace
