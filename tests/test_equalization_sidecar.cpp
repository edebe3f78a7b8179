// The equalisation sidecar (src/quant/equalization_sidecar.h): `qyolo calibrate` equalises by
// default and writes the factors beside the cache; an INT8 build from that cache applies them by
// itself, a cache alone builds the plain quantisation, an engine file needs neither afterwards,
// and a sidecar that does not fit names itself and the node. References: the un-equalised FP32
// network (PyTorch's output for yolov5n) and engines built with the factors given explicitly.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "calib/calib_cache.h"
#include "equalization_model.h"
#include "ir/npy.h"
#include "quant/activation_equalization.h"
#include "quant/calibrate_model.h"
#include "quant/equalization_sidecar.h"
#include "runtime/engine_impl.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace qyolo;
using qyolo::testing::ScratchDir;
using qyolo::testing::uniform_values;
using qyolo::testing::shared_dir;
using qyolo::testing::two_reader_model;

namespace {

Tensor run_engine(const Engine& e, const Tensor& x) {
  Tensor y;
  auto ctx = e.create_context();
  EXPECT_TRUE(ctx.is_ok());
  if (!ctx.is_ok()) return y;
  Status st = (*ctx)->run(x, y);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return y;
}

bool same_outputs(const Engine& a, const Engine& b, unsigned seed) {
  const Tensor x = Tensor::from_vector<float>({1, 4, 8, 8}, uniform_values(256, seed, -1.f, 1.f));
  const Tensor ya = run_engine(a, x), yb = run_engine(b, x);
  if (ya.shape() != yb.shape()) return false;
  for (int64_t i = 0; i < ya.numel(); ++i)
    if (ya.data<float>()[i] != yb.data<float>()[i]) return false;
  return true;
}

// The large-range-channel model of test_activation_equalization.cpp, its factors (alpha 1) and an
// equalised minmax calibration of it.
struct Calibrated {
  std::string model, cache;
  EqualizationFactors factors;
};

Calibrated calibrate_equalized(const ScratchDir& dir) {
  std::vector<float> wa = uniform_values(72, 4, -0.5f, 0.5f);
  for (int o = 0; o < 2; ++o)
    for (int k = 0; k < 9; ++k) wa[static_cast<size_t>(o * 36 + k)] *= 0.025f;
  Calibrated c;
  c.model = dir.path("eq.onnx");
  std::ofstream(c.model, std::ios::binary)
      << two_reader_model({40.f, 1.f, 1.f, 1.f}, wa, {0.025f, 1.f, 1.f, -1.f});
  auto batches = [] {
    auto i = std::make_shared<unsigned>(0);
    return [=]() -> Result<Tensor> {
      if (*i >= 8) return Tensor();
      return Tensor::from_vector<float>({1, 4, 8, 8}, uniform_values(256, 100 + (*i)++, -1.f, 1.f));
    };
  };
  auto fp32 = Engine::build(c.model, BuildOptions{});
  EXPECT_TRUE(fp32.is_ok()) << fp32.status().to_string();
  EqualizeOptions eo;
  eo.alpha = 1.0;
  auto factors = choose_activation_equalization(**fp32, {1, 4, 8, 8}, batches(), eo);
  EXPECT_TRUE(factors.is_ok()) << factors.status().to_string();
  c.factors = *factors;
  auto eq_fp32 = build_engine_with_weights(c.model, BuildOptions{}, with_equalization({}, c.factors));
  EXPECT_TRUE(eq_fp32.is_ok());
  CalibrationOptions co;
  co.algo = CalibAlgo::kMinMax;
  co.num_images = 0;
  auto table = calibrate_from_batches(**eq_fp32, batches(), co);
  EXPECT_TRUE(table.is_ok()) << table.status().to_string();
  c.cache = dir.path("eq.cache");
  EXPECT_TRUE(write_calibration_cache(c.cache, *table).is_ok());
  return c;
}

BuildOptions int8_from(const std::string& cache) {
  BuildOptions q;
  q.precision = Precision::kInt8;
  q.calibration_file = cache;
  return q;
}

}  // namespace

TEST(EqualizationSidecar, RoundTripAndStaleCache) {
  ScratchDir dir("qyolo_sidecar_");
  const std::string cache = dir.path("c.cache");
  CalibrationTable table;
  table.algorithm = "MinMaxCalibration";
  table.scales = {{"x", 0.5f}, {"t", 0.25f}};
  ASSERT_TRUE(write_calibration_cache(cache, table).is_ok());
  auto none = read_equalization_sidecar(cache);
  ASSERT_TRUE(none.is_ok()) << none.status().to_string();
  EXPECT_FALSE(none->has_value());

  const EqualizationFactors f = {{"t", {1.f, 0.5f, 0.125f}}, {"/model.1/act/Mul_output_0", {0.75f, 1.f}}};
  ASSERT_TRUE(write_equalization_sidecar(cache, f).is_ok());
  EXPECT_EQ(equalization_sidecar_path(cache), cache + ".equalize");
  EXPECT_TRUE(fs::exists(cache + ".equalize"));
  auto back = read_equalization_sidecar(cache);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ(**back, f);

  // Another calibration rewrote the cache: the old sidecar is refused, naming itself.
  table.scales["x"] = 0.75f;
  ASSERT_TRUE(write_calibration_cache(cache, table).is_ok());
  auto stale = read_equalization_sidecar(cache);
  ASSERT_FALSE(stale.is_ok());
  EXPECT_NE(stale.status().message().find(cache + ".equalize"), std::string::npos)
      << stale.status().to_string();
  EXPECT_NE(stale.status().message().find("another version"), std::string::npos);

  // A flipped byte in the factors: the checksum catches it.
  ASSERT_TRUE(write_equalization_sidecar(cache, f).is_ok());
  std::string bytes;
  {
    std::ifstream in(cache + ".equalize", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  bytes[bytes.size() - 12] ^= 0x40;
  std::ofstream(cache + ".equalize", std::ios::binary) << bytes;
  EXPECT_FALSE(read_equalization_sidecar(cache).is_ok());

  ASSERT_TRUE(remove_equalization_sidecar(cache).is_ok());
  EXPECT_FALSE(fs::exists(cache + ".equalize"));
  EXPECT_TRUE(remove_equalization_sidecar(cache).is_ok());  // none left: still fine
}

// A build from the cache applies the sidecar: bit-identical to the factors given explicitly; the
// same cache without the sidecar (or with --no-equalization) is the plain quantisation; the engine
// file keeps the equalised weights and scales, so it loads with neither file present.
TEST(EqualizationSidecar, BuildFindsItBesideTheCache) {
  ScratchDir dir("qyolo_sidecar_");
  const Calibrated c = calibrate_equalized(dir);
  const BuildOptions q = int8_from(c.cache);
  auto plain = Engine::build(c.model, q);  // no sidecar yet
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
  EXPECT_TRUE((*plain)->impl().weight_overrides.empty());
  auto explicit_eq = build_engine_with_weights(c.model, q, with_equalization({}, c.factors));
  ASSERT_TRUE(explicit_eq.is_ok()) << explicit_eq.status().to_string();
  EXPECT_FALSE(same_outputs(**plain, **explicit_eq, 7));

  ASSERT_TRUE(write_equalization_sidecar(c.cache, c.factors).is_ok());
  auto with_sidecar = Engine::build(c.model, q);
  ASSERT_TRUE(with_sidecar.is_ok()) << with_sidecar.status().to_string();
  EXPECT_EQ(equalization_factors_of((*with_sidecar)->impl().weight_overrides), c.factors);
  for (unsigned seed : {7u, 8u, 9u}) EXPECT_TRUE(same_outputs(**with_sidecar, **explicit_eq, seed));
  BuildOptions off = q;
  off.equalization_sidecar = false;
  auto ignored = Engine::build(c.model, off);
  ASSERT_TRUE(ignored.is_ok()) << ignored.status().to_string();
  EXPECT_TRUE(same_outputs(**ignored, **plain, 7));

  const std::string engine_file = dir.path("eq.qengine");
  ASSERT_TRUE((*with_sidecar)->save(engine_file).is_ok());
  fs::remove(c.cache);
  fs::remove(c.cache + ".equalize");
  auto loaded = Engine::load(engine_file);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  for (unsigned seed : {7u, 8u}) EXPECT_TRUE(same_outputs(**loaded, **explicit_eq, seed));
}

// Factors for a tensor the model lacks, or for another channel count: the build names the
// sidecar and the tensor / node.
TEST(EqualizationSidecar, MismatchNamesTheFileAndTheNode) {
  ScratchDir dir("qyolo_sidecar_");
  const Calibrated c = calibrate_equalized(dir);
  const std::string sidecar = c.cache + ".equalize";
  ASSERT_TRUE(write_equalization_sidecar(c.cache, {{"/model.1/act/Mul_output_0", {1.f, 0.5f}}}).is_ok());
  auto missing = Engine::build(c.model, int8_from(c.cache));
  ASSERT_FALSE(missing.is_ok());
  const std::string m1 = missing.status().message();
  EXPECT_NE(m1.find(sidecar), std::string::npos) << m1;
  EXPECT_NE(m1.find("no tensor '/model.1/act/Mul_output_0'"), std::string::npos) << m1;

  ASSERT_TRUE(write_equalization_sidecar(c.cache, {{"t", {1.f, 0.5f, 0.25f}}}).is_ok());
  auto channels = Engine::build(c.model, int8_from(c.cache));
  ASSERT_FALSE(channels.is_ok());
  const std::string m2 = channels.status().message();
  EXPECT_NE(m2.find(sidecar), std::string::npos) << m2;
  EXPECT_NE(m2.find("node 'conv0'"), std::string::npos) << m2;
  EXPECT_NE(m2.find("3 factors for 4 channels"), std::string::npos) << m2;

  // A tensor read otherwise than as a conv's input (the Add, or the conv it is fused into).
  ASSERT_TRUE(write_equalization_sidecar(c.cache, {{"a", {1.f, 1.f}}}).is_ok());
  auto add = Engine::build(c.model, int8_from(c.cache));
  ASSERT_FALSE(add.is_ok());
  EXPECT_NE(add.status().message().find(sidecar), std::string::npos) << add.status().message();
  EXPECT_NE(add.status().message().find("'a' is read by node '"), std::string::npos)
      << add.status().message();
}

// yolov5n with every eligible tensor equalised (the calibrate default, alpha 0.5, factors from
// the bus image's ranges) still computes PyTorch's output in FP32.
TEST(EqualizationSidecar, Yolov5nEqualizedFp32KeepsThePyTorchOutput) {
  QYOLO_REQUIRE_SHARED("models/yolov5n.onnx");
  QYOLO_REQUIRE_SHARED("reference/bus_yolov5n_output0.npy");
  const std::string model = (shared_dir() / "models/yolov5n.onnx").string();
  auto input = read_npy((shared_dir() / "reference/bus_input.npy").string());
  auto ref = read_npy((shared_dir() / "reference/bus_yolov5n_output0.npy").string());
  ASSERT_TRUE(input.is_ok() && ref.is_ok());
  auto fp32 = Engine::build(model, BuildOptions{});
  ASSERT_TRUE(fp32.is_ok()) << fp32.status().to_string();
  auto once = std::make_shared<bool>(false);
  InputSource one = [=]() -> Result<Tensor> {
    if (*once) return Tensor();
    *once = true;
    return *input;
  };
  EqualizeReport rep;
  auto factors = choose_activation_equalization(**fp32, input->shape(), one, EqualizeOptions{}, &rep);
  ASSERT_TRUE(factors.is_ok()) << factors.status().to_string();
  EXPECT_EQ(rep.tensors, 27);  // docs/weight-refine.md section 5
  float lowest = 1.f;
  for (const auto& [t, s] : *factors)
    for (float v : s) lowest = std::min(lowest, v);
  EXPECT_LT(lowest, 0.5f);  // the factors do move the ranges
  auto eq = build_engine_with_weights(model, BuildOptions{}, with_equalization({}, *factors));
  ASSERT_TRUE(eq.is_ok()) << eq.status().to_string();
  const Tensor y = run_engine(**eq, *input);
  ASSERT_EQ(y.shape(), ref->shape());
  double max_err = 0, max_ref = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    max_err = std::max(max_err, static_cast<double>(std::fabs(y.data<float>()[i] - ref->data<float>()[i])));
    max_ref = std::max(max_ref, static_cast<double>(std::fabs(ref->data<float>()[i])));
  }
  EXPECT_LT(max_err / max_ref, 1e-4) << "max abs err " << max_err;
}
