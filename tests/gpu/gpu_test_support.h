// Helpers for the GPU tests (binary qyolo_gpu_tests, run on the device machine only): skipping
// without a GPU, one-node graphs, CPU-vs-GPU comparison with poisoned outputs and arena.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_executor.h"
#include "backends/cuda/cuda_executor.h"
#include "passes/specialize.h"
#include "qyolo/detection.h"
#include "qyolo/engine.h"

namespace qyolo::gputest {

inline bool have_gpu() { return cuda::device_count() > 0; }

// A GPU with INT8 tensor cores (sm_80+), as the INT8 convolution kernels need.
inline bool have_int8_gpu() {
  if (!have_gpu()) return false;
  cudaDeviceProp prop{};
  return cudaGetDeviceProperties(&prop, 0) == cudaSuccess && prop.major >= 8;
}

// QYOLO_SHARED, else ../shared next to the source tree (the device machine has no ../shared:
// device-check.sh points QYOLO_SHARED into the carried folder).
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("QYOLO_SHARED"); env && *env) return env;
#ifdef QYOLO_SOURCE_DIR
  return std::filesystem::path(QYOLO_SOURCE_DIR) / ".." / "shared";
#else
  return std::filesystem::path("..") / "shared";
#endif
}

// A fresh seed per process (printed on failure through SCOPED_TRACE by the callers).
inline uint32_t test_seed() {
  static const uint32_t seed = [] {
    if (const char* env = std::getenv("QYOLO_TEST_SEED"); env && *env) return static_cast<uint32_t>(std::atoi(env));
    return static_cast<uint32_t>(std::random_device{}());
  }();
  return seed;
}

inline Tensor random_tensor(const Shape& shape, std::mt19937& rng, float lo = -2.f, float hi = 2.f) {
  Tensor t(DataType::kFloat32, shape);
  std::uniform_real_distribution<float> d(lo, hi);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = d(rng);
  return t;
}

// Builds a graph of the given nodes; `inputs` are runtime inputs, `constants` initializers.
struct GraphSpec {
  std::vector<std::pair<std::string, Shape>> inputs;
  std::map<std::string, Tensor> constants;
  std::vector<Node> nodes;
  std::vector<std::string> outputs;
  int64_t opset = 13;
};

inline Node make_node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
                      std::map<std::string, AttrValue> attrs = {}) {
  Node n;
  n.op_type = op;
  n.name = op + "_" + (out.empty() ? std::string() : out[0]);
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.attrs = std::move(attrs);
  return n;
}

inline Result<SpecializedGraph> specialize_spec(const GraphSpec& s) {
  Graph g;
  g.source_path = "<test graph>";
  g.opset = s.opset;
  std::map<std::string, Shape> shapes;
  for (const auto& [name, shape] : s.inputs) {
    ValueInfo vi;
    vi.name = name;
    vi.dtype = DataType::kFloat32;
    for (int64_t d : shape) vi.dims.push_back(Dim{d, ""});
    g.inputs.push_back(vi);
    shapes[name] = shape;
  }
  g.initializers = s.constants;
  g.nodes = s.nodes;
  for (const auto& o : s.outputs) {
    ValueInfo vi;
    vi.name = o;
    g.outputs.push_back(vi);
  }
  QYOLO_RETURN_IF_ERROR(g.toposort());
  return specialize(g, shapes);
}

// CPU backend outputs of a graph: the reference the GPU results are compared with.
inline void cpu_reference(const SpecializedGraph& sg, const std::map<std::string, Tensor>& inputs,
                          std::map<std::string, Tensor>& ref) {
  auto cpu = CpuExecutor::build(sg);
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  ASSERT_TRUE((*cpu)->run(inputs, ref).is_ok());
}

// INT8 build with every eligible conv on the INT8 kernel (no per-layer INT8/FP16 choice), fp16 or
// fp32 between layers.
inline CudaBuildOptions all_int8_options(bool fp16) {
  CudaBuildOptions opt;
  opt.precision = CudaPrecision::kInt8;
  opt.int8_fp16 = fp16;
  opt.int8_fp16_choose = false;
  return opt;
}

// A float_layers_regex naming exactly the convs `plan` keeps out of INT8 (names escaped and
// anchored: the option is searched), so that a CPU INT8 reference runs a GPU engine's plan ("" when
// every conv is INT8).
inline std::string float_layers_of(const EnginePlan& plan) {
  std::string re;
  for (const auto& n : plan.nodes) {
    if (n.precision == "int8") continue;
    re += re.empty() ? "^" : "|^";
    for (char ch : n.name) {
      if (std::strchr(".^$|()[]{}*+?\\", ch)) re += '\\';
      re += ch;
    }
    re += "$";
  }
  return re;
}

// Intersection over union of two detections' boxes.
inline float iou(const Detection& a, const Detection& b) {
  const float w = std::max(0.f, std::min(a.x2, b.x2) - std::max(a.x1, b.x1));
  const float h = std::max(0.f, std::min(a.y2, b.y2) - std::max(a.y1, b.y1));
  const float inter = w * h;
  const float uni = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  return uni > 0 ? inter / uni : 0.f;
}

// How often `needle` occurs in `text` (engine summaries: steps of a kind).
inline size_t count_in(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) ++n;
  return n;
}

// Runs through enqueue with outputs and arena poisoned (0xFF bytes: NaN in float and half).
inline Status run_gpu_poisoned(CudaExecutor& ex, const std::map<std::string, Tensor>& inputs,
                               std::map<std::string, Tensor>& outputs) {
  QYOLO_RETURN_IF_ERROR(ex.debug_fill_arena(0xFF));
  std::vector<cuda::DeviceBuffer> in_bufs, out_bufs;
  std::vector<const void*> in_ptrs;
  std::vector<void*> out_ptrs;
  for (const auto& b : ex.inputs()) {
    auto it = inputs.find(b.name);
    if (it == inputs.end()) return invalid_argument("missing input " + b.name);
    QYOLO_ASSIGN_OR_RETURN(auto buf, cuda::DeviceBuffer::allocate(b.nbytes()));
    QYOLO_RETURN_IF_ERROR(buf.upload(it->second.raw(), b.nbytes()));
    in_ptrs.push_back(buf.get());
    in_bufs.push_back(std::move(buf));
  }
  for (const auto& b : ex.outputs()) {
    QYOLO_ASSIGN_OR_RETURN(auto buf, cuda::DeviceBuffer::allocate(b.nbytes()));
    if (cudaMemset(buf.get(), 0xFF, b.nbytes()) != cudaSuccess) return device_error("memset");
    out_ptrs.push_back(buf.get());
    out_bufs.push_back(std::move(buf));
  }
  // The memsets ran on the legacy default stream, which a non-blocking stream does not wait for.
  if (cudaDeviceSynchronize() != cudaSuccess) return device_error("sync after poisoning failed");
  QYOLO_ASSIGN_OR_RETURN(auto stream, cuda::make_stream());
  QYOLO_RETURN_IF_ERROR(ex.enqueue(in_ptrs, out_ptrs, stream.get()));
  if (cudaStreamSynchronize(stream.get()) != cudaSuccess) return device_error("sync after enqueue failed");
  outputs.clear();
  for (size_t k = 0; k < ex.outputs().size(); ++k) {
    const auto& b = ex.outputs()[k];
    Tensor t = Tensor::uninitialized(b.dtype, b.shape);
    if (cudaMemcpy(t.raw(), out_ptrs[k], b.nbytes(), cudaMemcpyDeviceToHost) != cudaSuccess)
      return device_error("download failed");
    outputs[b.name] = t;
  }
  return Status::ok();
}

// One enqueue captured into a CUDA graph and instantiated; an empty owner (and a test failure)
// where that fails.
inline cuda::GraphExec capture_enqueue(CudaExecutor& ex, const std::vector<const void*>& in,
                                       const std::vector<void*>& out, cudaStream_t s) {
  EXPECT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  const Status st = ex.enqueue(in, out, s);
  cudaGraph_t raw = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(s, &raw), cudaSuccess);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  const cuda::Graph graph(raw);
  cudaGraphExec_t exec = nullptr;
  if (!st.is_ok() || raw == nullptr || cudaGraphInstantiate(&exec, raw, 0) != cudaSuccess) {
    ADD_FAILURE() << "the enqueue could not be captured into a CUDA graph";
    return cuda::GraphExec();
  }
  return cuda::GraphExec(exec);
}

// Programmatic dependent launch (sm_90+) against plain launches on the same engine: eager and as
// a CUDA graph replayed `replays` times, each time from a poisoned arena and outputs, every output
// byte-identical to the plain eager run. A kernel that read its input before its producer had
// finished would see the poison (NaN) or a stale value. Returns false (nothing checked) where the
// device has no programmatic launch.
inline bool expect_programmatic_launch_matches_plain(CudaExecutor& ex, const std::map<std::string, Tensor>& inputs,
                                                     int replays = 20) {
  ex.set_programmatic_launch(true);
  if (!ex.programmatic_launch()) return false;
  std::map<std::string, Tensor> plain, eager;
  ex.set_programmatic_launch(false);
  Status st = run_gpu_poisoned(ex, inputs, plain);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  ex.set_programmatic_launch(true);
  st = run_gpu_poisoned(ex, inputs, eager);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  if (!st.is_ok()) return true;
  auto same_bytes = [&](const std::map<std::string, Tensor>& got, const char* what) {
    for (const auto& [name, t] : plain)
      EXPECT_EQ(0, std::memcmp(t.raw(), got.at(name).raw(), t.nbytes())) << what << ": output " << name;
  };
  same_bytes(eager, "eager");

  std::vector<cuda::DeviceBuffer> in_bufs, out_bufs;
  std::vector<const void*> in_ptrs;
  std::vector<void*> out_ptrs;
  for (const auto& b : ex.inputs()) {
    auto buf = cuda::DeviceBuffer::allocate(b.nbytes());
    EXPECT_TRUE(buf.is_ok() && buf->upload(inputs.at(b.name).raw(), b.nbytes()).is_ok());
    in_ptrs.push_back(buf->get());
    in_bufs.push_back(std::move(buf).value());
  }
  for (const auto& b : ex.outputs()) {
    auto buf = cuda::DeviceBuffer::allocate(b.nbytes());
    EXPECT_TRUE(buf.is_ok());
    out_ptrs.push_back(buf->get());
    out_bufs.push_back(std::move(buf).value());
  }
  auto stream = cuda::make_stream();
  EXPECT_TRUE(stream.is_ok());
  cudaStream_t s = stream->get();
  const cuda::GraphExec exec = capture_enqueue(ex, in_ptrs, out_ptrs, s);
  for (int r = 0; r < replays && !::testing::Test::HasFailure(); ++r) {
    EXPECT_TRUE(ex.debug_fill_arena(0xFF).is_ok());
    for (size_t k = 0; k < out_ptrs.size(); ++k)
      EXPECT_EQ(cudaMemset(out_ptrs[k], 0xFF, ex.outputs()[k].nbytes()), cudaSuccess);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaGraphLaunch(exec.get(), s), cudaSuccess);
    EXPECT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    std::map<std::string, Tensor> replayed;
    for (size_t k = 0; k < ex.outputs().size(); ++k) {
      const auto& b = ex.outputs()[k];
      Tensor t = Tensor::uninitialized(b.dtype, b.shape);
      EXPECT_EQ(cudaMemcpy(t.raw(), out_ptrs[k], b.nbytes(), cudaMemcpyDeviceToHost), cudaSuccess);
      replayed[b.name] = t;
    }
    same_bytes(replayed, "graph replay");
  }
  return true;
}

// The precision/layout configurations every kernel is checked in, with their tolerances
// (relative to the largest reference value).
struct PrecisionConfig {
  const char* name;
  CudaPrecision precision;
  CudaLayout layout;
  bool fp32_tail;
  double tol;
  // The CUDA build options of this configuration.
  CudaBuildOptions options() const {
    CudaBuildOptions opt;
    opt.precision = precision;
    opt.layout = layout;
    opt.fp32_tail = fp32_tail;
    return opt;
  }
};

inline constexpr PrecisionConfig kPrecisionConfigs[] = {
    {"fp32_nchw", CudaPrecision::kFp32, CudaLayout::kNCHW, true, 1e-4},
    {"fp32_nhwc", CudaPrecision::kFp32, CudaLayout::kNHWC, true, 1e-4},
    {"fp16_nhwc", CudaPrecision::kFp16, CudaLayout::kNHWC, false, 2e-2},
    {"fp16_nchw", CudaPrecision::kFp16, CudaLayout::kNCHW, false, 2e-2},
    {"fp16_nhwc_tail", CudaPrecision::kFp16, CudaLayout::kNHWC, true, 2e-2},
    {"fp16_nchw_tail", CudaPrecision::kFp16, CudaLayout::kNCHW, true, 2e-2},
};

inline Tensor ints(const std::vector<int64_t>& v) {
  return Tensor::from_vector<int64_t>({static_cast<int64_t>(v.size())}, v);
}
inline Tensor floats(const Shape& s, const std::vector<float>& v) { return Tensor::from_vector<float>(s, v); }

struct Diff {
  double max_abs_err = 0, max_abs_ref = 0;
  int64_t nan_count = 0;
  double rel() const { return max_abs_ref > 0 ? max_abs_err / max_abs_ref : max_abs_err; }
};

inline Diff compare(const Tensor& got, const Tensor& ref) {
  Diff d;
  std::vector<float> g = got.to_float_vector(), r = ref.to_float_vector();
  for (size_t i = 0; i < r.size() && i < g.size(); ++i) {
    if (std::isnan(g[i]) && !std::isnan(r[i])) {
      ++d.nan_count;
      continue;
    }
    d.max_abs_err = std::max(d.max_abs_err, static_cast<double>(std::fabs(g[i] - r[i])));
    d.max_abs_ref = std::max(d.max_abs_ref, static_cast<double>(std::fabs(r[i])));
  }
  return d;
}

// Runs `spec` on the CPU and on the GPU in every precision/layout config (outputs and arena
// poisoned first) and compares each output: float outputs within the config's tolerance (times
// tol_scale) of the largest reference value, integer outputs (indices) exactly. Inputs come from
// `given`, else uniform in [lo, hi].
inline void expect_gpu_matches_cpu(const GraphSpec& spec, float lo = -2.f, float hi = 2.f, double tol_scale = 1.0,
                                   const std::map<std::string, Tensor>& given = {}) {
  SCOPED_TRACE("seed " + std::to_string(test_seed()) + " (QYOLO_TEST_SEED to repeat)");
  auto sg = specialize_spec(spec);
  ASSERT_TRUE(sg.is_ok()) << sg.status().to_string();
  auto cpu = CpuExecutor::build(*sg);
  if (!cpu && cpu.status().code() == StatusCode::kUnsupported) GTEST_SKIP() << "CPU reference: " << cpu.status().to_string();
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  std::mt19937 rng(test_seed());
  std::map<std::string, Tensor> inputs, ref;
  for (const auto& [name, shape] : spec.inputs) {
    auto it = given.find(name);
    inputs[name] = it != given.end() ? it->second : random_tensor(shape, rng, lo, hi);
  }
  Status st = (*cpu)->run(inputs, ref);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  for (const PrecisionConfig& c : kPrecisionConfigs) {
    SCOPED_TRACE(c.name);
    auto gpu = CudaExecutor::build(*sg, c.options());
    ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
    std::map<std::string, Tensor> got;
    st = run_gpu_poisoned(**gpu, inputs, got);
    ASSERT_TRUE(st.is_ok()) << st.to_string() << "\n" << (*gpu)->summary();
    for (const auto& [name, r] : ref) {
      ASSERT_TRUE(got.count(name)) << name;
      EXPECT_EQ(got[name].shape(), r.shape());
      Diff d = compare(got[name], r);
      EXPECT_EQ(d.nan_count, 0) << name << ": unwritten or NaN elements\n" << (*gpu)->summary();
      if (r.dtype() != DataType::kFloat32 && r.dtype() != DataType::kFloat16) {
        EXPECT_EQ(got[name].dtype(), r.dtype()) << name;
        EXPECT_EQ(d.max_abs_err, 0.0) << name << ": integer output differs\n" << (*gpu)->summary();
        continue;
      }
      EXPECT_LE(d.rel(), c.tol * tol_scale) << name << ": max abs err " << d.max_abs_err << ", max abs " << d.max_abs_ref
                                            << "\n" << (*gpu)->summary();
    }
  }
}

}  // namespace qyolo::gputest

#define QYOLO_REQUIRE_GPU()                                                                     \
  do {                                                                                          \
    if (!::qyolo::gputest::have_gpu()) GTEST_SKIP() << "no CUDA device: GPU tests run on the device machine"; \
  } while (0)

#define QYOLO_REQUIRE_INT8_GPU()                                                                 \
  do {                                                                                           \
    QYOLO_REQUIRE_GPU();                                                                         \
    if (!::qyolo::gputest::have_int8_gpu()) GTEST_SKIP() << "INT8 tensor-core convolution needs sm_80+"; \
  } while (0)
