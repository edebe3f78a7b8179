// Dynamic H/W for multi-output models on cuda engines (issue 16, item 5): the RetinaNet-style
// synthetic model (tests/head_models.h: 10 outputs at strides 8..128 whose H/W follow the input)
// built with an explicit profile, one context run at several shapes inside it (N, H and W all
// change), every output against the CPU engine at the same shape; a shape outside the profile;
// the INT8 engine file round trip at two shapes. The CPU side is tested against a plain-loop
// reference in tests/test_dynamic_heads.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "gpu_test_support.h"
#include "head_models.h"
#include "qyolo/qyolo.h"

namespace fs = std::filesystem;
using namespace qyolo;

namespace {

ShapeProfile retina_profile() {
  return {{1, 3, 128, 128}, {2, 3, 256, 384}, {3, 3, 512, 512}};
}

Tensor uniform_input(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(0.f, 1.f);
  Tensor t(DataType::kFloat32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

// Largest |a - b| over the largest |b|.
double relative_error(const Tensor& a, const Tensor& b) {
  double err = 0, range = 1e-12;
  for (int64_t k = 0; k < b.numel(); ++k) {
    err = std::max(err, static_cast<double>(std::fabs(a.data<float>()[k] - b.data<float>()[k])));
    range = std::max(range, static_cast<double>(std::fabs(b.data<float>()[k])));
  }
  return err / range;
}

class CudaDynamicHeads : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qyolo_cuda_dyn_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    model_ = (dir_ / "retina.onnx").string();
    std::ofstream(model_, std::ios::binary) << qyolo::testing::retinanet_model(-1, -1, 3, 2);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string model_;
};

TEST_F(CudaDynamicHeads, OutputsFollowTheInputShapeLikeTheCpu) {
  QYOLO_REQUIRE_GPU();
  BuildOptions o;
  o.profile = retina_profile();
  auto cpu = Engine::build(model_, o);
  o.device = Device::kCuda;
  auto gpu = Engine::build(model_, o);
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  auto c = (*cpu)->create_context();
  auto g = (*gpu)->create_context();
  ASSERT_TRUE(c.is_ok() && g.is_ok());
  std::vector<Tensor> got;  // reused across shapes
  uint32_t seed = 1;
  for (const Shape& s : std::vector<Shape>{
           {2, 3, 256, 384}, {1, 3, 128, 256}, {3, 3, 512, 512}, {1, 3, 200, 328}, {2, 3, 256, 384}}) {
    SCOPED_TRACE(shape_str(s));
    const Tensor input = uniform_input(s, seed++);
    ASSERT_TRUE((*g)->set_input_shape(s).is_ok());
    auto bindings = (*g)->bindings();
    ASSERT_TRUE(bindings.is_ok()) << bindings.status().to_string();
    std::vector<Tensor> want;
    ASSERT_TRUE((*c)->run(input, want).is_ok());
    ASSERT_TRUE((*g)->run(input, got).is_ok());
    ASSERT_EQ(got.size(), 10u);
    for (size_t i = 0; i < got.size(); ++i) {
      const std::string& name = (*gpu)->info().output_names[i];
      ASSERT_EQ(got[i].shape(), want[i].shape()) << name;
      bool described = false;
      for (const auto& b : *bindings)
        if (!b.is_input && b.name == name) described = b.shape == got[i].shape();
      EXPECT_TRUE(described) << name << ": bindings() disagree with run()";
      EXPECT_LE(relative_error(got[i], want[i]), 1e-3) << name;
    }
  }
  const Status outside = (*g)->set_input_shape({1, 3, 640, 640});
  ASSERT_FALSE(outside.is_ok());
  EXPECT_NE(outside.message().find("input 'images' shape 1x3x640x640 is outside the engine's profile"),
            std::string::npos)
      << outside.message();
}

TEST_F(CudaDynamicHeads, Int8EngineFileRoundTrip) {
  QYOLO_REQUIRE_GPU();
  // A minmax cache from one FP32 batch at the opt shape (the library's calibrate_batches).
  BuildOptions f;
  f.profile = retina_profile();
  auto fp32 = Engine::build(model_, f);
  ASSERT_TRUE(fp32.is_ok()) << fp32.status().to_string();
  std::vector<Tensor> batches{uniform_input({2, 3, 256, 384}, 7)};
  size_t next = 0;
  CalibrationSettings cs;
  cs.algorithm = "minmax";
  cs.shape = {2, 3, 256, 384};
  const std::string cache = (dir_ / "retina.cache").string();
  auto summary = calibrate_batches(
      **fp32, [&]() -> Result<Tensor> { return next < batches.size() ? batches[next++] : Tensor(); }, cs,
      cache);
  ASSERT_TRUE(summary.is_ok()) << summary.status().to_string();
  BuildOptions o;
  o.profile = retina_profile();
  o.device = Device::kCuda;
  o.precision = Precision::kInt8;
  o.calibration_file = cache;
  auto built = Engine::build(model_, o);
  ASSERT_TRUE(built.is_ok()) << built.status().to_string();
  const std::string file = (dir_ / "retina.qengine").string();
  ASSERT_TRUE((*built)->save(file).is_ok());
  auto loaded = Engine::load(file);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ((*loaded)->profile().max, retina_profile().max);
  auto a = (*built)->create_context();
  auto b = (*loaded)->create_context();
  auto r = (*fp32)->create_context();
  ASSERT_TRUE(a.is_ok() && b.is_ok() && r.is_ok());
  for (const Shape& s : std::vector<Shape>{{2, 3, 256, 384}, {3, 3, 512, 256}}) {
    SCOPED_TRACE(shape_str(s));
    const Tensor input = uniform_input(s, 9);
    std::vector<Tensor> oa, ob, ref;
    ASSERT_TRUE((*a)->run(input, oa).is_ok());
    ASSERT_TRUE((*b)->run(input, ob).is_ok());
    ASSERT_TRUE((*r)->run(input, ref).is_ok());
    for (size_t i = 0; i < oa.size(); ++i) {
      ASSERT_EQ(ob[i].shape(), ref[i].shape());
      EXPECT_LE(relative_error(ob[i], oa[i]), 1e-5) << (*loaded)->info().output_names[i];
      // INT8 against FP32: within 5% of each output's range (the CPU INT8 engine of this test: at most 2.2%).
      EXPECT_LE(relative_error(ob[i], ref[i]), 0.05) << (*loaded)->info().output_names[i];
    }
  }
}

}  // namespace
