// Activation equalisation on the GPU (src/quant/activation_equalization.h): the CUDA backend runs
// the equalised graph with the explicit Mul (prepare() does not fuse the multiplier for cuda
// engines; build_cuda_executor refuses a fused one), so an equalised FP32 engine must give the
// un-equalised one's outputs, and the equalised INT8 engine the CPU INT8 engine's (which fuses it).
// Model: QYOLO_SHARED/models/yolov5n.onnx on reference/bus_input.npy.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "calib/calib_cache.h"
#include "gpu_test_support.h"
#include "ir/npy.h"
#include "quant/activation_equalization.h"
#include "quant/calibrate_model.h"
#include "quant/equalization_sidecar.h"
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

// Largest |a - b| over the score columns (objectness, classes: [0, 1]) and over the box columns.
std::pair<double, double> score_and_box_err(const Tensor& a, const Tensor& b) {
  const int64_t c = b.shape().back();
  double score = 0, box = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    const double e = std::fabs(static_cast<double>(a.data<float>()[i]) - b.data<float>()[i]);
    if (i % c < 4)
      box = std::max(box, e);
    else
      score = std::max(score, e);
  }
  return {score, box};
}

}  // namespace

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
  q.calibration_file = cache.string();
  auto cpu_int8 = build_engine_with_weights(model.string(), q, w);
  q.device = Device::kCuda;
  auto gpu_int8 = build_engine_with_weights(model.string(), q, w);
  // The same factors as the sidecar `qyolo calibrate` writes beside the cache: a CPU build from the
  // cache applies them, a CUDA build does not (its kernels do not fuse the multiplier: the explicit
  // Mul per tensor would slow the INT8 engine) and says so in a note.
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
  EXPECT_TRUE((*cpu_sidecar)->impl().equalization_note.empty());
  EXPECT_TRUE((*gpu_sidecar)->impl().weight_overrides.empty());
  EXPECT_NE((*gpu_sidecar)->impl().equalization_note.find("not applied on cuda"), std::string::npos)
      << (*gpu_sidecar)->impl().equalization_note;
  ASSERT_TRUE(cpu_int8.is_ok()) << cpu_int8.status().to_string();
  ASSERT_TRUE(gpu_int8.is_ok()) << gpu_int8.status().to_string();
  const Tensor c8 = run_engine(**cpu_int8, *input), g8 = run_engine(**gpu_int8, *input);
  const auto [i8_score, i8_box] = score_and_box_err(g8, c8);
  std::printf("equalised int8 gpu vs cpu: max score err %.3g, max box err %.3g px\n", i8_score, i8_box);
  // Two valid INT8 implementations (see CudaInt8.YoloV5nMatchesCpuInt8): scores within 0.05.
  EXPECT_LT(i8_score, 0.05);
}
