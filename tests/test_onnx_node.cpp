// Runs Debian's ONNX backend node tests (libonnx-testdata) for every op in src/ir/ops.def.
// A test directory is ours when every node of its model is an op we list; each must pass,
// except the documented exclusions below (dtypes or attributes we deliberately do not support).
#include <google/protobuf/io/coded_stream.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "backends/cpu/cpu_executor.h"
#include "ir/op_registry.h"
#include "onnx/onnx_pb.h"
#include "onnx/onnx_import.h"
#include "onnx/qoperator.h"
#include "passes/specialize.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace qyolo;

namespace {

fs::path node_dir() { return qyolo::testing::onnx_testdata_dir() / "node"; }

// Directories excluded on purpose, with the reason (kept short and honest).
const std::map<std::string, std::string>& exclusions() {
  static const std::map<std::string, std::string> k = {
      {"test_batchnorm_epsilon_training_mode", "training-mode BatchNormalization (3 outputs): qyolo is inference-only"},
      {"test_batchnorm_example_training_mode", "training-mode BatchNormalization (3 outputs): qyolo is inference-only"},
      {"test_maxpool_with_argmax_2d_precomputed_pads", "MaxPool's Indices output is not supported"},
      {"test_maxpool_with_argmax_2d_precomputed_strides", "MaxPool's Indices output is not supported"},
      {"test_split_zero_size_splits", "zero-size tensors are rejected at specialisation"},
      {"test_reshape_allowzero_reordered", "zero-size input tensor (0x3x4) is rejected at specialisation"},
      {"test_cast_FLOAT_to_STRING", "string tensors are not supported"},
      {"test_cast_STRING_to_FLOAT", "string tensors are not supported"},
      {"test_identity_opt", "optional-typed values are not supported (tensors only)"},
      {"test_identity_sequence", "sequence-typed values are not supported (tensors only)"},
  };
  return k;
}

// Element types (TensorProto enum) qyolo supports: float, uint8, int8, int32, int64, bool, float16.
bool dtype_supported(int t) { return t == 1 || t == 2 || t == 3 || t == 6 || t == 7 || t == 9 || t == 10; }

struct NodeCase {
  std::string name;
  std::string skip_reason;  // non-empty: skipped, with why
};

void PrintTo(const NodeCase& c, std::ostream* os) { *os << c.name; }

bool load_model(const fs::path& path, onnx::ModelProto& m) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string bytes = ss.str();
  return m.ParseFromString(bytes);
}

std::vector<NodeCase> discover_cases() {
  std::vector<NodeCase> cases;
  std::error_code ec;
  if (!fs::is_directory(node_dir(), ec)) return cases;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(node_dir())) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  for (const auto& d : dirs) {
    onnx::ModelProto m;
    if (!load_model(d / "model.onnx", m)) continue;
    bool ours = m.graph().node_size() > 0;
    for (const auto& n : m.graph().node())
      if (!is_qoperator(n.op_type(), n.domain()) && (!n.domain().empty() || find_op(n.op_type()) == nullptr))
        ours = false;
    if (!ours) continue;
    NodeCase c{d.filename().string(), ""};
    if (auto it = exclusions().find(c.name); it != exclusions().end()) c.skip_reason = it->second;
    auto check_types = [&](const auto& values) {
      for (const auto& v : values)
        if (v.type().has_tensor_type() && !dtype_supported(v.type().tensor_type().elem_type()))
          c.skip_reason = "element type " + onnx::TensorProto_DataType_Name(v.type().tensor_type().elem_type()) +
                          " is not supported by qyolo";
    };
    check_types(m.graph().input());
    check_types(m.graph().output());
    for (const auto& n : m.graph().node())
      for (const auto& a : n.attribute())
        if (a.name() == "to" && !dtype_supported(static_cast<int>(a.i())))
          c.skip_reason = "cast target type is not supported by qyolo";
    cases.push_back(c);
  }
  return cases;
}

const std::vector<NodeCase>& all_cases() {
  static const std::vector<NodeCase> cases = discover_cases();
  return cases;
}

::testing::AssertionResult tensors_close(const Tensor& expected, const Tensor& actual, const std::string& what) {
  if (expected.shape() != actual.shape())
    return ::testing::AssertionFailure() << what << ": shape " << shape_str(actual.shape()) << " != expected "
                                         << shape_str(expected.shape());
  if (expected.dtype() != actual.dtype())
    return ::testing::AssertionFailure() << what << ": dtype " << dtype_name(actual.dtype()) << " != expected "
                                         << dtype_name(expected.dtype());
  auto e = expected.to_float_vector();
  auto a = actual.to_float_vector();
  // onnx.backend.test defaults: rtol 1e-3, atol 1e-7.
  for (size_t i = 0; i < e.size(); ++i) {
    if (std::isnan(e[i]) && std::isnan(a[i])) continue;
    if (std::isinf(e[i]) && e[i] == a[i]) continue;
    if (!(std::fabs(a[i] - e[i]) <= 1e-7 + 1e-3 * std::fabs(e[i])))
      return ::testing::AssertionFailure() << what << ": element " << i << " is " << a[i] << ", expected " << e[i];
  }
  return ::testing::AssertionSuccess();
}

Status run_case(const std::string& name, int* datasets_run) {
  fs::path dir = node_dir() / name;
  QYOLO_ASSIGN_OR_RETURN(Graph g, import_onnx((dir / "model.onnx").string()));
  for (const auto& ds : fs::directory_iterator(dir)) {
    if (!ds.is_directory()) continue;
    std::map<std::string, Tensor> inputs;
    std::map<std::string, Shape> shapes;
    for (size_t i = 0; i < g.inputs.size(); ++i) {
      QYOLO_ASSIGN_OR_RETURN(Tensor t, read_tensor_pb((ds.path() / ("input_" + std::to_string(i) + ".pb")).string()));
      shapes[g.inputs[i].name] = t.shape();
      inputs[g.inputs[i].name] = std::move(t);
    }
    auto specialized = specialize(g, shapes);
    bool empty_input = false;  // e.g. ReduceSum's empty `axes`: a zero-size tensor only a constant can be
    for (const auto& [name, t] : inputs) empty_input |= t.numel() == 0;
    if (!specialized && ((specialized.status().code() == StatusCode::kUnsupported &&
                          specialized.status().message().find("data-dependent") != std::string::npos) ||
                         empty_input)) {
      // qyolo specialises shapes at build time: inputs that decide shapes (Reshape's shape,
      // Range's limits, ...) are shape tensors, bound as constants like TensorRT shape inputs.
      Graph bound = g;
      bound.inputs.clear();
      for (auto& [name, t] : inputs) bound.initializers[name] = t;
      specialized = specialize(bound, {});
      inputs.clear();
    }
    QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, std::move(specialized));
    QYOLO_ASSIGN_OR_RETURN(auto exec, CpuExecutor::build(std::move(sg)));
    std::map<std::string, Tensor> outputs;
    QYOLO_RETURN_IF_ERROR(exec->run(inputs, outputs));
    for (size_t i = 0; i < g.outputs.size(); ++i) {
      QYOLO_ASSIGN_OR_RETURN(Tensor ref, read_tensor_pb((ds.path() / ("output_" + std::to_string(i) + ".pb")).string()));
      auto r = tensors_close(ref, outputs[g.outputs[i].name], ds.path().filename().string() + " output " + g.outputs[i].name);
      if (!r) return internal_error(r.message());
    }
    ++*datasets_run;
  }
  return Status::ok();
}

class OnnxNode : public ::testing::TestWithParam<NodeCase> {};

TEST_P(OnnxNode, MatchesReference) {
  const NodeCase& c = GetParam();
  if (!c.skip_reason.empty()) GTEST_SKIP() << c.skip_reason;
  int datasets = 0;
  Status st = run_case(c.name, &datasets);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_GT(datasets, 0);
}

INSTANTIATE_TEST_SUITE_P(Backend, OnnxNode, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<NodeCase>& info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OnnxNode);

// Every op in ops.def must be exercised by at least one node test that is not skipped.
TEST(OnnxNodeCoverage, EveryOpHasARunningTest) {
  if (!fs::is_directory(node_dir())) GTEST_SKIP() << "libonnx-testdata absent: " << node_dir();
  std::set<std::string> covered;
  for (const auto& c : all_cases()) {
    if (!c.skip_reason.empty()) continue;
    onnx::ModelProto m;
    ASSERT_TRUE(load_model(node_dir() / c.name / "model.onnx", m));
    for (const auto& n : m.graph().node()) covered.insert(n.op_type());
  }
  for (const auto& op : all_ops()) {
    // qyolo-internal ops (created by passes, never in an ONNX file) have no ONNX node test:
    // tests/test_yolo_decode.cpp runs QyoloYoloDecode against the unfused graph it replaces.
    if (op.op_type.starts_with("Qyolo")) continue;
    EXPECT_TRUE(covered.count(std::string(op.op_type))) << "no ONNX node test runs op " << op.op_type;
  }
}

}  // namespace
