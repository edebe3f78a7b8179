// The precision plan (src/ir/precision_plan.h, src/quant/precision_plan_pass.h): its engine-file
// section round-trips and rejects malformed bytes naming the file and the node; an engine lowers
// the stored plan as it is (a conv the plan puts in float gives the FP32 engine's output for it,
// and a stored plan wins over the float-layers regex in the file's options); built and loaded
// engines run identically.
#include <cmath>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>

#include "calib/calib_cache.h"
#include "calibration_support.h"
#include "cli_runner.h"
#include "onnx_builder.h"
#include "quant/calibrate_model.h"
#include "quant/precision_plan_pass.h"
#include "runtime/engine_impl.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::OnnxBuilder;
using qyolo::testing::read_file_bytes;
using qyolo::testing::run_cli;
using qyolo::testing::shared_dir;

namespace {

void write_bytes(const fs::path& p, const std::string& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(b.data(), static_cast<std::streamsize>(b.size()));
}

PrecisionPlan sample_plan() {
  PrecisionPlan p;
  p.float_precision = NodePrecision::kFp16;
  p.nodes = {{"/model.0/conv/Conv", NodePrecision::kFp16}, {"/model.2/cv1/conv/Conv", NodePrecision::kInt8}};
  p.tensors = {{"/model.1/act/Mul_output_0", {DataType::kFloat16, 0.0421f}},
               {"cat", {DataType::kInt8, 3.5e-3f}}};
  return p;
}

// The plan section's bytes with one u32 at `offset` replaced.
std::string with_u32(std::string b, size_t offset, uint32_t v) {
  std::memcpy(b.data() + offset, &v, 4);
  return b;
}

TEST(PrecisionPlanSection, RoundTrips) {
  const PrecisionPlan p = sample_plan();
  const std::string bytes = serialize_precision_plan(p);
  auto back = parse_precision_plan(bytes, "engine file 'x.qengine'");
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(*back, p);
  EXPECT_EQ(back->precision_of("/model.2/cv1/conv/Conv"), NodePrecision::kInt8);
  EXPECT_EQ(back->precision_of("not listed"), NodePrecision::kFp16);
  EXPECT_EQ(back->scale_of("cat"), 3.5e-3f);
  EXPECT_EQ(back->scale_of("not listed"), 0.f);
  // An empty plan too.
  auto empty = parse_precision_plan(serialize_precision_plan({}), "e");
  ASSERT_TRUE(empty.is_ok());
  EXPECT_EQ(*empty, PrecisionPlan{});
}

// Zero points (asymmetric activations) make the section version 2, with an i32 per tensor; a
// symmetric plan stays version 1 (what engine files before zero points hold), and both read back.
TEST(PrecisionPlanSection, ZeroPointsRoundTripAsVersion2) {
  PrecisionPlan p = sample_plan();
  p.float_precision = NodePrecision::kFp32;
  p.tensors["cat"].zero_point = -127;
  const std::string v2 = serialize_precision_plan(p);
  uint32_t version = 0;
  std::memcpy(&version, v2.data(), 4);
  EXPECT_EQ(version, 2u);
  auto back = parse_precision_plan(v2, "e");
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(*back, p);
  EXPECT_EQ(back->tensors.at("cat").zero_point, -127);
  EXPECT_EQ(back->tensors.at("/model.1/act/Mul_output_0").zero_point, 0);
  EXPECT_NE(format_precision_plan(p).find("  tensor  cat  int8  scale 0.00350000011  zero point -127\n"),
            std::string::npos)
      << format_precision_plan(p);
  const std::string v1 = serialize_precision_plan(sample_plan());
  std::memcpy(&version, v1.data(), 4);
  EXPECT_EQ(version, 1u);
  // The last tensor's zero point (the last 4 bytes) outside -128..127.
  auto bad = parse_precision_plan(with_u32(v2, v2.size() - 4, 200), "engine file 'z.qengine'");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("tensor 'cat' has zero point 200"), std::string::npos)
      << bad.status().to_string();
  for (size_t cut = 0; cut < v2.size(); ++cut)
    EXPECT_FALSE(parse_precision_plan(v2.substr(0, cut), "e").is_ok());
}

TEST(PrecisionPlanSection, MalformedBytesNameTheFileAndTheEntry) {
  const std::string where = "engine file 'bad.qengine'";
  const std::string good = serialize_precision_plan(sample_plan());
  // Offsets: u32 version, u32 float precision, u64 n; node 0 = str (8 + 18 bytes) + u32.
  const size_t node0_precision = 4 + 4 + 8 + 8 + std::strlen("/model.0/conv/Conv");
  const size_t node1_precision = node0_precision + 4 + 8 + std::strlen("/model.2/cv1/conv/Conv");
  const size_t tensor0_dtype = node1_precision + 4 + 8 + 8 + std::strlen("/model.1/act/Mul_output_0");
  struct Case {
    std::string bytes, expect;
  };
  uint32_t nan_bits = 0x7fc00000u, neg_bits = 0xbf800000u, zero = 0;
  const std::vector<Case> cases = {
      {with_u32(good, 0, 9), "version 9"},
      {with_u32(good, 4, 2), "bad float precision 2"},
      {with_u32(good, node1_precision, 7), "node '/model.2/cv1/conv/Conv' has precision 7"},
      {with_u32(good, tensor0_dtype, static_cast<uint32_t>(DataType::kInt32)),
       "tensor '/model.1/act/Mul_output_0' has storage dtype"},
      {with_u32(good, tensor0_dtype + 4, nan_bits), "tensor '/model.1/act/Mul_output_0' has scale nan"},
      {with_u32(good, tensor0_dtype + 4, neg_bits), "tensor '/model.1/act/Mul_output_0' has scale -1"},
      {with_u32(good, good.size() - 4, zero), "tensor 'cat' is stored int8 without a scale"},
      {good + "xy", "2 unexpected bytes"},
  };
  for (const Case& c : cases) {
    auto r = parse_precision_plan(c.bytes, where);
    ASSERT_FALSE(r.is_ok()) << c.expect;
    EXPECT_EQ(r.status().code(), StatusCode::kCorrupt) << r.status().to_string();
    EXPECT_NE(r.status().message().find(where + ": precision plan: "), std::string::npos)
        << r.status().to_string();
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().to_string();
  }
  // A node listed twice.
  PrecisionPlan twice;
  twice.nodes = {{"a", NodePrecision::kFp32}, {"b", NodePrecision::kInt8}};
  std::string b = serialize_precision_plan(twice);
  const size_t name1 = 4 + 4 + 8 + 8 + 1 + 4 + 8;  // node 1's name byte
  b[name1] = 'a';
  auto dup = parse_precision_plan(b, where);
  ASSERT_FALSE(dup.is_ok());
  EXPECT_NE(dup.status().message().find("node 'a' is listed twice"), std::string::npos)
      << dup.status().to_string();
  // Every truncation is an error naming the file.
  for (size_t cut = 0; cut < good.size(); ++cut) {
    auto r = parse_precision_plan(good.substr(0, cut), where);
    ASSERT_FALSE(r.is_ok()) << "cut at " << cut;
    EXPECT_NE(r.status().message().find(where), std::string::npos) << r.status().to_string();
  }
}

// x [1,3,8,8] -> A (3x3) -> a -> C (1x1) -> y1;  x -> B (1x1) -> y2. CPU INT8 with scales for x and
// a: every conv INT8, `a` int8 between layers.
class PlanOnEngine : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qyolo_plan_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    auto values = [&](size_t n) {
      std::vector<float> v(n);
      for (auto& x : v) x = u(rng);
      return v;
    };
    OnnxBuilder b;
    b.input("x", {1, 3, 8, 8});
    b.output("y1", {1, 4, 8, 8});
    b.output("y2", {1, 4, 8, 8});
    b.initializer("wa", {8, 3, 3, 3}, values(8 * 27));
    b.initializer("wc", {4, 8, 1, 1}, values(32));
    b.initializer("wb", {4, 3, 1, 1}, values(12));
    OnnxBuilder::attr_ints(b.node("Conv", {"x", "wa"}, {"a"}, "A"), "pads", {1, 1, 1, 1});
    b.node("Conv", {"a", "wc"}, {"y1"}, "C");
    b.node("Conv", {"x", "wb"}, {"y2"}, "B");
    model_ = (dir_ / "three_convs.onnx").string();
    write_bytes(model_, b.bytes());
    CalibrationTable table;
    table.algorithm = "MinMaxCalibration";
    table.scales = {{"x", 1.0f / 127}, {"a", 4.0f / 127}};
    cache_ = (dir_ / "three_convs.cache").string();
    ASSERT_TRUE(write_calibration_cache(cache_, table).is_ok());
    input_ = Tensor(DataType::kFloat32, {1, 3, 8, 8});
    for (int64_t i = 0; i < input_.numel(); ++i) input_.data<float>()[i] = u(rng);
  }
  void TearDown() override { fs::remove_all(dir_); }

  BuildOptions int8_options() const {
    BuildOptions o;
    o.precision = Precision::kInt8;
    o.calibration_file = cache_;
    return o;
  }
  static std::vector<Tensor> run(const Engine& e, const Tensor& in) {
    std::vector<Tensor> out;
    auto ctx = e.create_context();
    EXPECT_TRUE(ctx.is_ok());
    if (!ctx) return out;
    Status st = (*ctx)->run(in, out);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    return out;
  }
  static bool same(const Tensor& a, const Tensor& b) {
    return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
  }
  // Saves `e`, replaces the plan in the file with `plan` (resealed), and loads it.
  Result<std::shared_ptr<const Engine>> load_with_plan(const Engine& e, const PrecisionPlan& plan,
                                                       const std::string& name) {
    const fs::path p = dir_ / name;
    QYOLO_RETURN_IF_ERROR(e.save(p.string()));
    QYOLO_ASSIGN_OR_RETURN(EngineFileContents c, parse_engine_file(read_file_bytes(p), p.string()));
    c.plan = plan;
    write_bytes(p, serialize_engine_file(c));
    return Engine::load(p.string());
  }
  fs::path dir_;
  std::string model_, cache_;
  Tensor input_;
};

TEST_F(PlanOnEngine, RulesMakeThePlan) {
  auto e = Engine::build(model_, int8_options());
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  const PrecisionPlan& plan = (*e)->impl().plan;
  EXPECT_EQ(plan.float_precision, NodePrecision::kFp32);
  EXPECT_EQ(plan.precision_of("A"), NodePrecision::kInt8);
  EXPECT_EQ(plan.precision_of("B"), NodePrecision::kInt8);
  EXPECT_EQ(plan.precision_of("C"), NodePrecision::kInt8);
  EXPECT_EQ(plan.tensors.at("x"), (TensorPlan{DataType::kFloat32, 1.0f / 127}));
  EXPECT_EQ(plan.tensors.at("a"), (TensorPlan{DataType::kInt8, 4.0f / 127}));  // A writes int8 for C
  EXPECT_EQ((*e)->impl().plan_summary,
            "3 convs: 3 int8 (100.0% of conv MACs in int8, 1 tensors int8 between layers)");
  // The float-layers regex is a rule: B stays float, x keeps its scale (A reads it quantised).
  BuildOptions o = int8_options();
  o.float_layers_regex = "^B$";
  auto r = Engine::build(model_, o);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->get()->impl().plan.precision_of("B"), NodePrecision::kFp32);
  EXPECT_EQ(r->get()->impl().plan.precision_of("A"), NodePrecision::kInt8);
  // An FP32 engine: every conv fp32, no tensor quantised.
  auto f = Engine::build(model_, {});
  ASSERT_TRUE(f.is_ok());
  EXPECT_EQ(f->get()->impl().plan.nodes.size(), 3u);
  EXPECT_EQ(f->get()->impl().plan.precision_of("A"), NodePrecision::kFp32);
  EXPECT_TRUE(f->get()->impl().plan.tensors.empty());
}

TEST_F(PlanOnEngine, RoundTripThroughTheEngineFile) {
  auto e = Engine::build(model_, int8_options());
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  const fs::path p = dir_ / "rt.qengine";
  ASSERT_TRUE((*e)->save(p.string()).is_ok());
  auto c = parse_engine_file(read_file_bytes(p), p.string());
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->plan, (*e)->impl().plan);
  auto loaded = Engine::load(p.string());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ((*loaded)->impl().plan, (*e)->impl().plan);
  const auto a = run(**e, input_), b = run(**loaded, input_);
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_TRUE(same(a[0], b[0]));
  EXPECT_TRUE(same(a[1], b[1]));
  // serialize_engine_file(parse_engine_file(f)) is f, byte for byte.
  EXPECT_EQ(serialize_engine_file(*c), read_file_bytes(p));
}

// The plan puts B in float: B's output is the FP32 engine's, bit for bit, while A and C stay INT8.
TEST_F(PlanOnEngine, AConvThePlanKeepsInFloatGivesTheFp32Output) {
  auto fp32 = Engine::build(model_, {});
  auto int8 = Engine::build(model_, int8_options());
  ASSERT_TRUE(fp32.is_ok() && int8.is_ok());
  PrecisionPlan plan = (*int8)->impl().plan;
  plan.nodes["B"] = NodePrecision::kFp32;
  auto edited = load_with_plan(**int8, plan, "b_float.qengine");
  ASSERT_TRUE(edited.is_ok()) << edited.status().to_string();
  const auto f = run(**fp32, input_), q = run(**int8, input_), e = run(**edited, input_);
  ASSERT_EQ(f.size(), 2u);
  ASSERT_EQ(q.size(), 2u);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_FALSE(same(q[1], f[1])) << "INT8 B should differ from FP32 B";
  EXPECT_TRUE(same(e[1], f[1])) << "B in float should be the FP32 engine's B";
  EXPECT_TRUE(same(e[0], q[0])) << "A and C stay INT8";
  EXPECT_FALSE(same(e[0], f[0]));
}

TEST_F(PlanOnEngine, PlansThatDoNotFitAreClearErrors) {
  auto int8 = Engine::build(model_, int8_options());
  auto fp32 = Engine::build(model_, {});
  ASSERT_TRUE(int8.is_ok() && fp32.is_ok());
  const PrecisionPlan good = (*int8)->impl().plan;
  struct Case {
    std::string name;
    PrecisionPlan plan;
    std::string expect;
    bool on_fp32 = false;
  };
  std::vector<Case> cases;
  {
    PrecisionPlan p = good;
    p.nodes.erase("C");
    cases.push_back({"no_c", p, "has no entry for Conv node 'C'"});
  }
  {
    PrecisionPlan p = good;
    p.nodes["/model.99/Conv"] = NodePrecision::kInt8;
    cases.push_back({"extra", p, "lists node '/model.99/Conv', which the model does not have"});
  }
  {
    PrecisionPlan p = good;
    p.tensors.erase("x");
    cases.push_back({"no_scale", p, "runs Conv node 'A' in INT8 without a scale for its input 'x'"});
  }
  {
    PrecisionPlan p = good;  // C in float, but `a` still int8 between A and C
    p.nodes["C"] = NodePrecision::kFp32;
    cases.push_back({"c_float", p, "stores tensor 'a' int8, but Conv node 'C' cannot read it int8"});
  }
  {
    PrecisionPlan p = good;
    p.nodes["B"] = NodePrecision::kFp16;
    cases.push_back({"fp16_cpu", p, "runs node 'B' in fp16, which a cpu int8 engine does not run"});
  }
  {
    PrecisionPlan p = (*fp32)->impl().plan;
    p.nodes["A"] = NodePrecision::kInt8;
    cases.push_back({"int8_in_fp32", p, "runs node 'A' in int8, which a cpu fp32 engine does not run", true});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string file = c.name + ".qengine";
    auto r = load_with_plan(c.on_fp32 ? **fp32 : **int8, c.plan, file);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kCorrupt) << r.status().to_string();
    EXPECT_NE(r.status().message().find((dir_ / file).string()), std::string::npos) << r.status().to_string();
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().to_string();
  }
  // Malformed bytes inside the engine file (resealed, so the checksum passes): the section's own
  // error, naming the file and the node.
  const fs::path p = dir_ / "bytes.qengine";
  ASSERT_TRUE((*int8)->save(p.string()).is_ok());
  auto c = parse_engine_file(read_file_bytes(p), p.string());
  ASSERT_TRUE(c.is_ok());
  std::string file = read_file_bytes(p);
  const std::string section = serialize_precision_plan(c->plan);
  const size_t at = file.find(section);
  ASSERT_NE(at, std::string::npos);
  // Node entries are sorted by name: A first; its precision follows its name.
  const size_t a_precision = at + 4 + 4 + 8 + 8 + 1;
  ASSERT_EQ(file.substr(a_precision - 1, 1), "A");
  const uint32_t seven = 7;
  std::memcpy(file.data() + a_precision, &seven, 4);
  file.resize(file.size() - 8);
  const uint64_t sum = engine_file_checksum(file);
  file.append(reinterpret_cast<const char*>(&sum), 8);
  write_bytes(p, file);
  auto r = Engine::load(p.string());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(
      r.status().message().find("engine file '" + p.string() + "': precision plan: node 'A' has precision 7"),
      std::string::npos)
      << r.status().to_string();
}

// `qyolo build` prints the plan in one line (--print-plan: node by node); `qyolo info --engine`
// prints a saved engine's plan from the file.
TEST_F(PlanOnEngine, CliPrintsThePlan) {
  const std::string engine = (dir_ / "cli.qengine").string();
  auto b = run_cli("build --model " + model_ + " --int8 --cache " + cache_ +
                   " --float-layers '^B$' --print-plan --out " + engine);
  ASSERT_EQ(b.exit_code, 0) << b.output;
  // MACs: A 8x8x8 x 27 = 13824, C 4x8x8 x 8 = 2048 in int8; B 4x8x8 x 3 = 768 in fp32.
  EXPECT_NE(b.output.find("precision plan at 1x3x8x8: 3 convs: 2 int8, 1 fp32 (95.4% of conv MACs in int8, 1 "
                          "tensors int8 between layers)"),
            std::string::npos)
      << b.output;
  for (const std::string line :
       {"  node    A  int8\n", "  node    B  fp32\n", "  node    C  int8\n",
        "  tensor  a  int8  scale 0.0314960629\n", "  tensor  x  float32  scale 0.00787401572\n"})
    EXPECT_NE(b.output.find(line), std::string::npos) << line << "\n" << b.output;
  auto i = run_cli("info --engine " + engine);
  ASSERT_EQ(i.exit_code, 0) << i.output;
  EXPECT_NE(i.output.find("precision int8 float layers '^B$'"), std::string::npos) << i.output;
  const size_t plan_at = b.output.find("precision plan: 3 nodes");
  ASSERT_NE(plan_at, std::string::npos) << b.output;
  EXPECT_NE(i.output.find(b.output.substr(plan_at)), std::string::npos) << i.output;  // the same listing
  auto bad = run_cli("info --engine " + (dir_ / "absent.qengine").string());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("absent.qengine"), std::string::npos) << bad.output;
}

// yolov5n (dynamic, small profile), CPU INT8 from a 2-image min-max cache.
class PlanOnYolo : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(shared_dir() / "models/yolov5n-dynamic.onnx") ||
        !fs::exists(shared_dir() / "data/coco128"))
      GTEST_SKIP() << "shared data absent (set QYOLO_SHARED)";
    dir_ = fs::temp_directory_path() / ("qyolo_plan_yolo_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    model_ = (shared_dir() / "models/yolov5n-dynamic.onnx").string();
    auto fp32 = Engine::build(model_, small());
    ASSERT_TRUE(fp32.is_ok()) << fp32.status().to_string();
    cache_ = (dir_ / "n.cache").string();
    auto table = qyolo::testing::coco128_minmax_cache(**fp32, 2, cache_);
    ASSERT_TRUE(table.is_ok()) << table.status().to_string();
    input_ = Tensor(DataType::kFloat32, {1, 3, 96, 128});
    for (int64_t i = 0; i < input_.numel(); ++i)
      input_.data<float>()[i] = static_cast<float>((i * 7919) % 1000) / 1000.f;
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  static BuildOptions small() {
    BuildOptions o;
    o.profile = ShapeProfile{{1, 3, 64, 64}, {1, 3, 96, 128}, {2, 3, 160, 160}};
    return o;
  }
  BuildOptions int8(const std::string& float_layers = "") const {
    BuildOptions o = small();
    o.precision = Precision::kInt8;
    o.calibration_file = cache_;
    o.float_layers_regex = float_layers;
    return o;
  }
  static Tensor run(const Engine& e, const Tensor& in) {
    Tensor out;
    auto ctx = e.create_context();
    EXPECT_TRUE(ctx.is_ok());
    if (ctx) EXPECT_TRUE((*ctx)->run(in, out).is_ok());
    return out;
  }
  static bool same(const Tensor& a, const Tensor& b) {
    return a.shape() == b.shape() && a.nbytes() > 0 && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
  }
  fs::path dir_;
  std::string model_, cache_;
  Tensor input_;
};

TEST_F(PlanOnYolo, SavedAndLoadedEnginesRunIdentically) {
  auto built = Engine::build(model_, int8());
  ASSERT_TRUE(built.is_ok()) << built.status().to_string();
  const PlanCounts counts =
      count_plan((*built)->impl().plan, *(*built)->impl().prepare_float({1, 3, 96, 128}));
  EXPECT_EQ(counts.convs[static_cast<int>(NodePrecision::kInt8)], 60);
  EXPECT_GT(counts.int8_tensors, 30);
  const fs::path p = dir_ / "n.qengine";
  ASSERT_TRUE((*built)->save(p.string()).is_ok());
  auto loaded = Engine::load(p.string());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ((*loaded)->impl().plan, (*built)->impl().plan);
  EXPECT_EQ((*loaded)->impl().plan_summary, (*built)->impl().plan_summary);
  EXPECT_TRUE(same(run(**built, input_), run(**loaded, input_)));
  // Another shape of the profile (prepared again from the stored plan).
  Tensor other(DataType::kFloat32, {2, 3, 64, 96});
  for (int64_t i = 0; i < other.numel(); ++i)
    other.data<float>()[i] = static_cast<float>((i * 31) % 255) / 255.f;
  EXPECT_TRUE(same(run(**built, other), run(**loaded, other)));
}

// Asymmetric activations (BuildOptions::asymmetric_activations): the bounds come from the graph
// (SiLU convs -0.2785; their pools and concats; a fused residual adds its input's bound), the plan
// gives those conv inputs zero points (int8 values between layers too), the engine file keeps
// them, and the output differs from the symmetric engine's.
TEST_F(PlanOnYolo, AsymmetricActivationsAreDecidedOnceAndStored) {
  auto fp32 = Engine::build(model_, small());
  ASSERT_TRUE(fp32.is_ok());
  auto sg = (*fp32)->impl().prepare_float({1, 3, 96, 128});
  ASSERT_TRUE(sg.is_ok());
  const auto lo = activation_lower_bounds(sg->graph);
  constexpr double kSilu = -0.27846454;
  auto bound_of_output = [&](const std::string& node) -> std::optional<double> {
    for (const auto& n : sg->graph.nodes)
      if (n.name == node) {
        auto it = lo.find(n.outputs[0]);
        if (it == lo.end()) return std::nullopt;
        return it->second;
      }
    ADD_FAILURE() << "no node " << node;
    return std::nullopt;
  };
  EXPECT_NEAR(*bound_of_output("/model.0/conv/Conv"), kSilu, 1e-9);                // SiLU fused
  EXPECT_NEAR(*bound_of_output("/model.9/m/MaxPool"), kSilu, 1e-9);                // a pool of it
  EXPECT_NEAR(*bound_of_output("/model.9/Concat"), kSilu, 1e-9);                   // SPPF: SiLU and its pools
  EXPECT_NEAR(*bound_of_output("/model.2/m/m.0/cv2/conv/Conv"), 2 * kSilu, 1e-9);  // + residual (SiLU)
  EXPECT_NEAR(*bound_of_output("/model.2/Concat"), 2 * kSilu, 1e-9);               // the least of its inputs
  EXPECT_FALSE(bound_of_output("/model.24/m.0/Conv").has_value());                 // no activation: unbounded

  BuildOptions o = int8();
  o.asymmetric_activations = true;
  auto asym = Engine::build(model_, o);
  ASSERT_TRUE(asym.is_ok()) << asym.status().to_string();
  const PrecisionPlan& plan = (*asym)->impl().plan;
  int with_zp = 0, int8_with_zp = 0;
  for (const auto& [name, t] : plan.tensors) {
    if (t.zero_point == 0) continue;
    ++with_zp;
    int8_with_zp += t.storage == DataType::kInt8;
    ASSERT_TRUE(lo.count(name)) << name << " has a zero point but no lower bound";
    // The grid's lowest code, scale * (-128 - zp), covers the bound (within a step: the rounded zp);
    // an input of a concat takes the concat's grid, whose bound may be lower (a C3's residual chain
    // adds one SiLU bound per bottleneck).
    EXPECT_LE(t.scale * static_cast<float>(-128 - t.zero_point), lo.at(name) + t.scale) << name;
  }
  EXPECT_GT(with_zp, 20);
  EXPECT_GT(int8_with_zp, 10);  // held int8 between layers on the asymmetric grid
  // The Detect head reads C3 outputs (bounded): asymmetric; the image input: not.
  BuildOptions so = int8();
  so.asymmetric_activations = false;  // (the default is true)
  auto sym = Engine::build(model_, so);
  ASSERT_TRUE(sym.is_ok());
  EXPECT_EQ(sym->get()->impl().plan.tensors.size(), plan.tensors.size());
  for (const auto& [name, t] : sym->get()->impl().plan.tensors) EXPECT_EQ(t.zero_point, 0) << name;

  const fs::path p = dir_ / "asym.qengine";
  ASSERT_TRUE((*asym)->save(p.string()).is_ok());
  auto loaded = Engine::load(p.string());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ((*loaded)->impl().plan, plan);
  const Tensor a = run(**asym, input_);
  EXPECT_TRUE(same(a, run(**loaded, input_)));
  EXPECT_FALSE(same(a, run(**sym, input_)));
}

// The stored plan is what runs, not the float-layers regex in the file's options: the default
// engine's file carrying the regex engine's plan runs like the regex engine, and the other way round.
TEST_F(PlanOnYolo, TheStoredPlanWinsOverTheRegex) {
  const std::string conv = "/model.8/cv3/conv/Conv";
  auto plain = Engine::build(model_, int8());
  auto regex = Engine::build(model_, int8("^" + conv + "$"));
  ASSERT_TRUE(plain.is_ok() && regex.is_ok());
  ASSERT_EQ((*regex)->impl().plan.precision_of(conv), NodePrecision::kFp32);
  ASSERT_EQ((*plain)->impl().plan.precision_of(conv), NodePrecision::kInt8);
  const Tensor out_plain = run(**plain, input_), out_regex = run(**regex, input_);
  ASSERT_FALSE(same(out_plain, out_regex)) << "the float conv should change the output";
  const fs::path a = dir_ / "plain_with_regex_plan.qengine", b = dir_ / "regex_with_plain_plan.qengine";
  auto swap_plan = [&](const Engine& e, const PrecisionPlan& plan,
                       const fs::path& p) -> Result<std::shared_ptr<const Engine>> {
    QYOLO_RETURN_IF_ERROR(e.save(p.string()));
    QYOLO_ASSIGN_OR_RETURN(EngineFileContents c, parse_engine_file(read_file_bytes(p), p.string()));
    c.plan = plan;
    write_bytes(p, serialize_engine_file(c));
    return Engine::load(p.string());
  };
  auto plain_then_regex = swap_plan(**plain, (*regex)->impl().plan, a);
  auto regex_then_plain = swap_plan(**regex, (*plain)->impl().plan, b);
  ASSERT_TRUE(plain_then_regex.is_ok()) << plain_then_regex.status().to_string();
  ASSERT_TRUE(regex_then_plain.is_ok()) << regex_then_plain.status().to_string();
  EXPECT_TRUE(same(run(**plain_then_regex, input_), out_regex));
  EXPECT_TRUE(same(run(**regex_then_plain, input_), out_plain));
  EXPECT_EQ((*regex_then_plain)->options().float_layers_regex, "^" + conv + "$");  // kept, not applied
}

}  // namespace
