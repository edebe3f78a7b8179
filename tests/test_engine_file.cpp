// Engine files (format version 4) at the library level, the ExecutionContext shape/binding API on
// CPU engines, and `qyolo bench` on the CPU. The CLI-level corrupt/old/cut cases are in
// test_cli_errors.cpp; the GPU side (tactics reuse, GPU-name check, enqueue) in
// tests/gpu/test_cuda_engine_api.cpp.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/engine_impl.h"
#include "cli_runner.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::shared_dir;

using qyolo::testing::CliResult;
using qyolo::testing::run_cli;

namespace {

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

void write_bytes(const fs::path& p, const std::string& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << b;
}

// Replaces the trailing checksum so that a deliberately edited payload passes the checksum check
// (to reach the field checks behind it).
std::string reseal(std::string payload) {
  uint64_t h = engine_file_checksum(payload);
  payload.append(reinterpret_cast<const char*>(&h), 8);
  return payload;
}
std::string payload_of(const std::string& file) {
  return file.substr(0, file.size() - 8);
}

// Walks the version-4 layout (independently of the reader in engine.cpp): the test fails if the
// writer's layout drifts from the documented one.
struct Parsed {
  uint32_t version = 0;
  std::string qyolo_version, source, regex, gpu_name, plan, onnx;
  uint32_t device = 9, precision = 9, int8_fp16 = 9, cc_major = 9, cc_minor = 9, cudnn = 9;
  Shape min, opt, max;
  std::map<std::string, float> scales;
  std::map<std::string, std::vector<float>> weights;  // weight overrides, flattened
  std::map<std::string, Shape> weight_shapes;
  std::map<std::string, std::vector<int64_t>> tactics;
  size_t device_offset = 0, weights_offset = 0, gpu_offset = 0, plan_offset = 0, onnx_offset = 0;
  uint64_t checksum = 0;
};

class Walker {
 public:
  explicit Walker(const std::string& b) : b_(b) {}
  template <typename T>
  T get() {
    T v{};
    EXPECT_LE(pos_ + sizeof(T), b_.size());
    if (pos_ + sizeof(T) <= b_.size()) std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str() {
    uint64_t n = get<uint64_t>();
    EXPECT_LE(pos_ + n, b_.size());
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  Shape shape() {
    Shape s(get<uint32_t>());
    for (auto& d : s) d = static_cast<int64_t>(get<uint64_t>());
    return s;
  }
  size_t pos() const { return pos_; }
  void skip(size_t n) { pos_ += n; }

 private:
  const std::string& b_;
  size_t pos_ = 0;
};

Parsed parse(const std::string& b) {
  Parsed p;
  Walker w(b);
  EXPECT_EQ(b.substr(0, 8), "QYOLOENG");
  w.skip(8);
  p.version = w.get<uint32_t>();
  p.qyolo_version = w.str();
  p.source = w.str();
  p.device_offset = w.pos();
  p.device = w.get<uint32_t>();
  p.precision = w.get<uint32_t>();
  p.int8_fp16 = w.get<uint32_t>();
  p.regex = w.str();
  p.min = w.shape();
  p.opt = w.shape();
  p.max = w.shape();
  for (uint64_t n = w.get<uint64_t>(); n > 0; --n) {
    std::string name = w.str();
    p.scales[name] = w.get<float>();
  }
  p.weights_offset = w.pos();
  for (uint64_t n = w.get<uint64_t>(); n > 0; --n) {
    std::string name = w.str();
    Shape s = w.shape();
    std::vector<float> v(static_cast<size_t>(shape_numel(s)));
    for (auto& x : v) x = w.get<float>();
    p.weights[name] = v;
    p.weight_shapes[name] = s;
  }
  p.gpu_offset = w.pos();
  p.gpu_name = w.str();
  p.cc_major = w.get<uint32_t>();
  p.cc_minor = w.get<uint32_t>();
  p.cudnn = w.get<uint32_t>();
  for (uint64_t n = w.get<uint64_t>(); n > 0; --n) {
    std::string key = w.str();
    std::vector<int64_t> v(w.get<uint64_t>());
    for (auto& x : v) x = static_cast<int64_t>(w.get<uint64_t>());
    p.tactics[key] = v;
  }
  p.plan_offset = w.pos();
  p.plan = w.str();  // the precision plan section (format 4; its layout: test_precision_plan.cpp)
  p.onnx_offset = w.pos();
  p.onnx = w.str();
  EXPECT_EQ(w.pos() + 8, b.size()) << "bytes between the model and the checksum";
  p.checksum = w.get<uint64_t>();
  return p;
}

// u64-length-prefixed string, as the writer lays it out.
std::string enc_str(const std::string& s) {
  uint64_t n = s.size();
  return std::string(reinterpret_cast<const char*>(&n), 8) + s;
}
std::string enc_u32(uint32_t v) {
  return std::string(reinterpret_cast<const char*>(&v), 4);
}

class EngineFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qyolo_engine_file_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // yolov5n-dynamic on the CPU with a small profile (fast to validate and run).
  static BuildOptions small_profile() {
    BuildOptions o;
    o.profile = ShapeProfile{{1, 3, 64, 64}, {1, 3, 96, 128}, {2, 3, 160, 160}};
    return o;
  }
  Result<std::shared_ptr<const Engine>> build_small() {
    return Engine::build((shared_dir() / "models/yolov5n-dynamic.onnx").string(), small_profile());
  }
  // Builds, saves and returns the file's bytes.
  std::string saved_bytes() {
    auto e = build_small();
    EXPECT_TRUE(e.is_ok()) << e.status().to_string();
    if (!e) return {};
    Status st = (*e)->save(path("n.qengine"));
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    return read_bytes(path("n.qengine"));
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  Status load_bytes(const std::string& name, const std::string& bytes) {
    write_bytes(path(name), bytes);
    return Engine::load(path(name)).status();
  }
  fs::path dir_;
};

TEST_F(EngineFile, LayoutOfACpuEngine) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-dynamic.onnx");
  const std::string bytes = saved_bytes();
  ASSERT_FALSE(bytes.empty());
  Parsed p = parse(bytes);
  EXPECT_EQ(p.version, kEngineFormatVersion);
  EXPECT_EQ(p.version, 4u);
  EXPECT_EQ(p.qyolo_version, QYOLO_VERSION_STRING);
  EXPECT_EQ(p.device, 0u);
  EXPECT_EQ(p.precision, 0u);
  EXPECT_EQ(p.int8_fp16, 0u);
  EXPECT_EQ(p.min, (Shape{1, 3, 64, 64}));
  EXPECT_EQ(p.opt, (Shape{1, 3, 96, 128}));
  EXPECT_EQ(p.max, (Shape{2, 3, 160, 160}));
  EXPECT_TRUE(p.scales.empty());
  EXPECT_TRUE(p.weights.empty());
  // A CPU engine has an empty GPU record and no tactics.
  EXPECT_EQ(p.gpu_name, "");
  EXPECT_EQ(p.cc_major, 0u);
  EXPECT_EQ(p.cc_minor, 0u);
  EXPECT_EQ(p.cudnn, 0u);
  EXPECT_TRUE(p.tactics.empty());
  // The plan of an FP32 engine: every conv fp32, nothing quantised.
  auto plan = parse_precision_plan(p.plan, "test");
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  EXPECT_EQ(plan->float_precision, NodePrecision::kFp32);
  EXPECT_EQ(plan->nodes.size(), 60u);
  for (const auto& [name, prec] : plan->nodes) EXPECT_EQ(prec, NodePrecision::kFp32) << name;
  EXPECT_TRUE(plan->tensors.empty());
  EXPECT_EQ(p.onnx, read_bytes(shared_dir() / "models/yolov5n-dynamic.onnx"));
  EXPECT_EQ(p.checksum, engine_file_checksum(payload_of(bytes)));
}

TEST_F(EngineFile, RoundTripRunsIdentically) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-dynamic.onnx");
  auto built = build_small();
  ASSERT_TRUE(built.is_ok()) << built.status().to_string();
  ASSERT_TRUE((*built)->save(path("rt.qengine")).is_ok());
  EXPECT_FALSE(fs::exists(path("rt.qengine.tmp")));
  auto loaded = Engine::load(path("rt.qengine"));
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  const Engine& a = **built;
  const Engine& b = **loaded;
  EXPECT_EQ(b.options().device, Device::kCpu);
  EXPECT_EQ(b.options().precision, Precision::kFp32);
  EXPECT_EQ(b.profile().min, a.profile().min);
  EXPECT_EQ(b.profile().opt, a.profile().opt);
  EXPECT_EQ(b.profile().max, a.profile().max);
  EXPECT_EQ(b.info().input_name, a.info().input_name);
  EXPECT_EQ(b.info().class_names, a.info().class_names);
  EXPECT_TRUE(b.impl().tactics().empty());
  // Saving the loaded engine again gives the same bytes.
  ASSERT_TRUE(b.save(path("rt2.qengine")).is_ok());
  EXPECT_EQ(read_bytes(path("rt.qengine")), read_bytes(path("rt2.qengine")));

  Tensor in(DataType::kFloat32, {2, 3, 64, 96});
  for (int64_t i = 0; i < in.numel(); ++i)
    in.data<float>()[i] = static_cast<float>((i * 7919) % 1000) / 1000.f;
  Tensor oa, ob;
  auto ca = a.create_context();
  auto cb = b.create_context();
  ASSERT_TRUE(ca.is_ok() && cb.is_ok());
  ASSERT_TRUE((*ca)->run(in, oa).is_ok());
  ASSERT_TRUE((*cb)->run(in, ob).is_ok());
  ASSERT_EQ(oa.shape(), ob.shape());
  EXPECT_EQ(std::memcmp(oa.raw(), ob.raw(), oa.nbytes()), 0);
}

TEST_F(EngineFile, OtherFormatVersionsAreAClearError) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-dynamic.onnx");
  const std::string bytes = saved_bytes();
  ASSERT_FALSE(bytes.empty());
  for (uint32_t v : {1u, 2u, 3u, 5u, 99u}) {
    std::string other = bytes;
    std::memcpy(other.data() + 8, &v, 4);
    // Version before checksum: an old file is reported as old, not as corrupted.
    Status st = load_bytes("v.qengine", other);
    ASSERT_FALSE(st.is_ok());
    EXPECT_EQ(st.code(), StatusCode::kVersionMismatch) << st.to_string();
    EXPECT_NE(st.message().find("format version " + std::to_string(v)), std::string::npos) << st.to_string();
    EXPECT_NE(st.message().find("reads version 4"), std::string::npos) << st.to_string();
    EXPECT_NE(st.message().find("qyolo build"), std::string::npos) << st.to_string();
    // Same when resealed (a genuine file of that version).
    st = load_bytes("v.qengine", reseal(payload_of(other)));
    EXPECT_EQ(st.code(), StatusCode::kVersionMismatch) << st.to_string();
  }
  // Another qyolo version string (same format).
  Parsed p = parse(bytes);
  std::string payload = payload_of(bytes);
  std::string fake = std::string(p.qyolo_version.size(), '9');
  payload.replace(8 + 4 + 8, p.qyolo_version.size(), fake);
  Status st = load_bytes("qv.qengine", reseal(payload));
  EXPECT_EQ(st.code(), StatusCode::kVersionMismatch) << st.to_string();
  EXPECT_NE(st.message().find("built by qyolo " + fake), std::string::npos) << st.to_string();
}

TEST_F(EngineFile, TruncatedFilesAreAClearError) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-dynamic.onnx");
  const std::string bytes = saved_bytes();
  ASSERT_FALSE(bytes.empty());
  const Parsed p = parse(bytes);
  // Cut anywhere: the checksum (or the magic) catches it.
  for (size_t cut : {size_t{0}, size_t{7}, size_t{12}, size_t{19}, p.gpu_offset, p.onnx_offset + 100,
                     bytes.size() / 2, bytes.size() - 9, bytes.size() - 1}) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    Status st = load_bytes("cut.qengine", bytes.substr(0, cut));
    ASSERT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find("cut.qengine"), std::string::npos) << st.to_string();
    EXPECT_TRUE(st.code() == StatusCode::kCorrupt) << st.to_string();
  }
  // Cut inside each section but resealed (a writer that died mid-way): "truncated".
  for (size_t cut : {size_t{8 + 4 + 3}, p.device_offset + 2, p.gpu_offset + 4, p.gpu_offset + 8 + 2, p.plan_offset + 4,
                     p.plan_offset + 8 + 6,
                     p.onnx_offset + 4, p.onnx_offset + 1000}) {
    SCOPED_TRACE("resealed cut at " + std::to_string(cut));
    Status st = load_bytes("cut2.qengine", reseal(bytes.substr(0, cut)));
    ASSERT_FALSE(st.is_ok());
    EXPECT_EQ(st.code(), StatusCode::kCorrupt) << st.to_string();
    EXPECT_NE(st.message().find("truncated"), std::string::npos) << st.to_string();
  }
  // Bytes after the model (resealed): not silently ignored.
  Status st = load_bytes("long.qengine", reseal(payload_of(bytes) + "extra"));
  EXPECT_EQ(st.code(), StatusCode::kCorrupt) << st.to_string();
  EXPECT_NE(st.message().find("5 unexpected bytes"), std::string::npos) << st.to_string();
}

TEST_F(EngineFile, CorruptFilesAreAClearError) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-dynamic.onnx");
  const std::string bytes = saved_bytes();
  ASSERT_FALSE(bytes.empty());
  const Parsed p = parse(bytes);
  // Any flipped byte after the version field fails the checksum, including in the GPU record.
  for (size_t at : {p.device_offset, p.gpu_offset, p.gpu_offset + 9, p.onnx_offset + 20, bytes.size() - 3}) {
    std::string flipped = bytes;
    flipped[at] ^= 0x5a;
    Status st = load_bytes("flip.qengine", flipped);
    EXPECT_EQ(st.code(), StatusCode::kCorrupt) << st.to_string();
    EXPECT_NE(st.message().find("checksum"), std::string::npos) << "at " << at << ": " << st.to_string();
  }
  std::string magic = bytes;
  magic[0] = 'X';
  Status st = load_bytes("magic.qengine", magic);
  EXPECT_NE(st.message().find("bad magic"), std::string::npos) << st.to_string();
  // Resealed nonsense in checked fields.
  std::string payload = payload_of(bytes);
  std::string bad_device = payload;
  const uint32_t seven = 7;
  std::memcpy(bad_device.data() + p.device_offset, &seven, 4);
  st = load_bytes("dev.qengine", reseal(bad_device));
  EXPECT_NE(st.message().find("bad device/precision field"), std::string::npos) << st.to_string();
  std::string bad_cc = payload;
  const uint32_t huge = 123456;
  std::memcpy(bad_cc.data() + p.gpu_offset + 8 + p.gpu_name.size(), &huge, 4);
  st = load_bytes("cc.qengine", reseal(bad_cc));
  EXPECT_NE(st.message().find("bad GPU record"), std::string::npos) << st.to_string();
}

// A cuda engine from some other GPU: a clear error on any machine (without CUDA: this qyolo has
// no CUDA; with CUDA but no GPU: no device; with a GPU: another GPU model).
TEST_F(EngineFile, CudaEngineFromAnotherGpuIsAClearError) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-dynamic.onnx");
  const std::string bytes = saved_bytes();
  ASSERT_FALSE(bytes.empty());
  const Parsed p = parse(bytes);
  std::string payload = payload_of(bytes);
  const uint32_t cuda = 1;
  std::memcpy(payload.data() + p.device_offset, &cuda, 4);
  // Replace the (empty) GPU record: name, sm_99, cuDNN 9.9.0, one tactic.
  std::string gpu = enc_str("Fake GPU 9000") + enc_u32(9) + enc_u32(9) + enc_u32(90900);
  uint64_t n_tactics = 1, m = 2;
  int64_t t0 = 3, t1 = -1;
  std::string tactics = std::string(reinterpret_cast<const char*>(&n_tactics), 8) +
                        enc_str("conv:1x16x32x32") + std::string(reinterpret_cast<const char*>(&m), 8) +
                        std::string(reinterpret_cast<const char*>(&t0), 8) +
                        std::string(reinterpret_cast<const char*>(&t1), 8);
  std::string edited = payload.substr(0, p.gpu_offset) + gpu + tactics + payload.substr(p.plan_offset);
  const std::string file = reseal(edited);
  Parsed q = parse(file);
  EXPECT_EQ(q.gpu_name, "Fake GPU 9000");
  EXPECT_EQ(q.tactics.at("conv:1x16x32x32"), (std::vector<int64_t>{3, -1}));
  Status st = load_bytes("fake.qengine", file);
  ASSERT_FALSE(st.is_ok());
  std::printf("loading a cuda engine from another GPU: %s\n", st.to_string().c_str());
  EXPECT_NE(st.message().find("Fake GPU 9000 (sm_99)"), std::string::npos) << st.to_string();
  EXPECT_NE(st.message().find("fake.qengine"), std::string::npos) << st.to_string();

  // A cuda engine without a GPU record is corrupt.
  std::string no_record = payload;  // device patched, GPU record still empty
  st = load_bytes("norecord.qengine", reseal(no_record));
  EXPECT_EQ(st.code(), StatusCode::kCorrupt) << st.to_string();
  EXPECT_NE(st.message().find("without its GPU record"), std::string::npos) << st.to_string();
}

// ---- ExecutionContext: set_input_shape / bindings / enqueue on a CPU engine ------------------

TEST_F(EngineFile, ContextShapeAndBindingsOnCpu) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-dynamic.onnx");
  auto e = build_small();
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  auto ctx = (*e)->create_context();
  ASSERT_TRUE(ctx.is_ok());
  ExecutionContext& c = **ctx;
  EXPECT_TRUE(c.input_shape().empty());  // dynamic: no shape until set
  auto none = c.bindings();
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.status().message().find("set_input_shape"), std::string::npos) << none.status().to_string();

  Status st = c.set_input_shape({4, 3, 64, 64});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("4x3x64x64"), std::string::npos) << st.to_string();
  EXPECT_NE(st.message().find("max 2x3x160x160"), std::string::npos) << st.to_string();
  st = c.set_input_shape({3, 64, 64});
  EXPECT_NE(st.message().find("rank 4"), std::string::npos) << st.to_string();
  EXPECT_TRUE(c.input_shape().empty());

  ASSERT_TRUE(c.set_input_shape({2, 3, 64, 96}).is_ok());
  EXPECT_EQ(c.input_shape(), (Shape{2, 3, 64, 96}));
  auto b = c.bindings();
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  ASSERT_EQ(b->size(), 2u);
  EXPECT_EQ((*b)[0].name, "images");
  EXPECT_TRUE((*b)[0].is_input);
  EXPECT_EQ((*b)[0].dtype, DataType::kFloat32);
  EXPECT_EQ((*b)[0].shape, (Shape{2, 3, 64, 96}));
  EXPECT_EQ((*b)[0].nbytes(), size_t{2 * 3 * 64 * 96 * 4});
  EXPECT_EQ((*b)[1].name, "output0");
  EXPECT_FALSE((*b)[1].is_input);
  EXPECT_EQ((*b)[1].shape, (Shape{2, 3 * (8 * 12 + 4 * 6 + 2 * 3), 85}));

  // Device pointers need a cuda engine.
  float dummy = 0;
  st = c.enqueue({&dummy}, {&dummy}, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("cuda engine"), std::string::npos) << st.to_string();
  EXPECT_NE(st.message().find("runs on cpu"), std::string::npos) << st.to_string();
}

TEST_F(EngineFile, StaticEngineContextStartsAtItsShape) {
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  auto e = Engine::build((shared_dir() / "models/yolov5n.onnx").string(), {});
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  auto ctx = (*e)->create_context();
  ASSERT_TRUE(ctx.is_ok());
  EXPECT_EQ((*ctx)->input_shape(), (Shape{1, 3, 640, 640}));
  Status st = (*ctx)->set_input_shape({1, 3, 320, 320});
  EXPECT_NE(st.message().find("outside the engine's profile"), std::string::npos) << st.to_string();
  EXPECT_EQ((*ctx)->input_shape(), (Shape{1, 3, 640, 640}));
}

#ifndef QYOLO_HAS_CUDA
TEST_F(EngineFile, CudaBuildWithoutCudaIsUnsupported) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-dynamic.onnx");
  BuildOptions o = small_profile();
  o.device = Device::kCuda;
  auto e = Engine::build((shared_dir() / "models/yolov5n-dynamic.onnx").string(), o);
  ASSERT_FALSE(e.is_ok());
  EXPECT_EQ(e.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(e.status().message().find("without CUDA"), std::string::npos) << e.status().to_string();
}
#endif

// ---- qyolo bench on the CPU ----------------------------------------------------------------

TEST_F(EngineFile, BenchOnACpuEngine) {
  QYOLO_REQUIRE_SHARED("models/yolov5n-dynamic.onnx");
  auto e = build_small();
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  ASSERT_TRUE((*e)->save(path("b.qengine")).is_ok());
  const std::string engine = " --engine " + path("b.qengine");
  auto ok = run_cli("bench" + engine + " --shapes images:2x3x64x64 --warmup 1 --iterations 3 --json " +
                    path("b.json"));
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("latency ms"), std::string::npos) << ok.output;
  auto j = nlohmann::json::parse(read_bytes(path("b.json")), nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["shape"], "2x3x64x64");
  EXPECT_EQ(j["queries"], 3);
  EXPECT_GT(j["images_per_s"].get<double>(), 0.0);
  EXPECT_EQ(j["latency"]["count"], 3);

  auto graph = run_cli("bench" + engine + " --cuda-graph");
  EXPECT_EQ(graph.exit_code, 1) << graph.output;
  EXPECT_NE(graph.output.find("need a cuda engine"), std::string::npos) << graph.output;
  auto outside = run_cli("bench" + engine + " --shapes images:4x3x64x64");
  EXPECT_EQ(outside.exit_code, 1) << outside.output;
  EXPECT_NE(outside.output.find("4x3x64x64 is outside the engine's profile"), std::string::npos)
      << outside.output;
  auto wrong_name = run_cli("bench" + engine + " --shapes input:1x3x64x64");
  EXPECT_EQ(wrong_name.exit_code, 1) << wrong_name.output;
  EXPECT_NE(wrong_name.output.find("'images'"), std::string::npos) << wrong_name.output;
}

}  // namespace
