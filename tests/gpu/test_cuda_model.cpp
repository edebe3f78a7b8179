// Whole YOLOv5 graphs on the GPU against the CPU backend: fp32 (true fp32, no TF32) unfused and
// fused, NCHW and NHWC, within 1e-4 of the largest output; fp16 reported (boxes and scores
// separately) and its detections compared; GPU NMS on the GPU output equals the CPU postprocess.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "backends/cuda/postprocess.h"
#include "gpu_test_support.h"
#include "ir/npy.h"
#include "onnx/onnx_import.h"
#include "passes/passes.h"
#include "yolo/postprocess.h"

namespace fs = std::filesystem;
using namespace qyolo;
using namespace qyolo::gputest;

namespace {

struct Split {
  double box_err = 0, box_max = 0, score_err = 0;
  int64_t nan = 0;
};

// [N, A, 85]: channels 0..3 are pixels, 4.. are probabilities.
Split split_error(const Tensor& got, const Tensor& ref) {
  Split s;
  const int64_t c = ref.shape().back();
  std::vector<float> g = got.to_float_vector(), r = ref.to_float_vector();
  for (size_t i = 0; i < r.size(); ++i) {
    if (std::isnan(g[i])) {
      ++s.nan;
      continue;
    }
    const double e = std::fabs(static_cast<double>(g[i]) - r[i]);
    if (static_cast<int64_t>(i % static_cast<size_t>(c)) < 4) {
      s.box_err = std::max(s.box_err, e);
      s.box_max = std::max(s.box_max, static_cast<double>(std::fabs(r[i])));
    } else {
      s.score_err = std::max(s.score_err, e);
    }
  }
  return s;
}

// Specialised for the model's own input shape when static, else 1x3x640x640.
Result<SpecializedGraph> load(const fs::path& path, bool fused) {
  QYOLO_ASSIGN_OR_RETURN(Graph g, import_onnx(path.string()));
  Shape shape;
  for (const Dim& d : g.inputs.at(0).dims) shape.push_back(d.is_static() ? d.value : -1);
  if (shape.size() != 4 || std::count(shape.begin(), shape.end(), -1) > 0) shape = {1, 3, 640, 640};
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, specialize(g, {{g.inputs.at(0).name, shape}}));
  if (fused) QYOLO_RETURN_IF_ERROR(run_default_passes(sg));
  return sg;
}

Tensor model_input(const Shape& shape, uint32_t seed) {
  if (shape == Shape{1, 3, 640, 640}) {
    auto t = read_npy((shared_dir() / "reference/bus_input.npy").string());
    if (t) return *t;
  }
  std::mt19937 rng(seed);
  return random_tensor(shape, rng, 0.f, 1.f);
}

size_t count_detections(const Tensor& out, float conf) {
  NmsOptions o;
  o.conf = conf;
  auto d = postprocess(out, HeadKind::kYoloV5, o);
  size_t n = 0;
  if (d)
    for (const auto& v : *d) n += v.size();
  return n;
}

class CudaModel : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaModel, MatchesCpu) {
  QYOLO_REQUIRE_GPU();
  const std::string file = GetParam();
  const fs::path path = shared_dir() / "models" / file;
  if (!fs::exists(path)) GTEST_SKIP() << "model absent: " << path << " (set QYOLO_SHARED)";
  auto plain = load(path, false);
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
  const Shape in_shape = plain->values.at(plain->graph.inputs[0].name).shape;
  auto fused = load(path, true);
  ASSERT_TRUE(fused.is_ok()) << fused.status().to_string();
  const std::string in_name = plain->graph.inputs[0].name;
  std::map<std::string, Tensor> inputs{{in_name, model_input(in_shape, test_seed())}};

  auto cpu = CpuExecutor::build(*plain);
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  std::map<std::string, Tensor> ref;
  Status st = (*cpu)->run(inputs, ref);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  const std::string out_name = plain->graph.outputs[0].name;
  const Tensor& r = ref.at(out_name);
  const size_t ref_dets = count_detections(r, 0.25f);

  struct Run {
    const char* name;
    bool fused;
    CudaPrecision precision;
    CudaLayout layout;
  };
  const Run runs[] = {
      {"fp32 nchw unfused", false, CudaPrecision::kFp32, CudaLayout::kNCHW},
      {"fp32 nchw fused", true, CudaPrecision::kFp32, CudaLayout::kNCHW},
      {"fp32 nhwc fused", true, CudaPrecision::kFp32, CudaLayout::kNHWC},
      {"fp16 nhwc fused", true, CudaPrecision::kFp16, CudaLayout::kNHWC},
      {"fp16 nchw fused", true, CudaPrecision::kFp16, CudaLayout::kNCHW},
  };
  std::map<std::string, Tensor> fp32_out;
  for (const Run& run : runs) {
    SCOPED_TRACE(run.name);
    CudaBuildOptions opt;
    opt.precision = run.precision;
    opt.layout = run.layout;
    auto gpu = CudaExecutor::build(run.fused ? *fused : *plain, opt);
    ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
    std::map<std::string, Tensor> got;
    st = run_gpu_poisoned(**gpu, inputs, got);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    const Tensor& o = got.at(out_name);
    Diff d = compare(o, r);
    Split s = split_error(o, r);
    const size_t dets = count_detections(o, 0.25f);
    std::printf("[%s %s] %s: max abs err %.3g / max abs %.3g = %.3g; boxes %.3g px, scores %.3g; "
                "detections %zu (cpu %zu); steps %d, arena %zu MiB\n",
                file.c_str(), shape_str(in_shape).c_str(), run.name, d.max_abs_err, d.max_abs_ref, d.rel(), s.box_err,
                s.score_err, dets, ref_dets, (*gpu)->num_steps(), (*gpu)->arena_bytes() >> 20);
    EXPECT_EQ(d.nan_count, 0);
    if (run.fused) {
      // The decode kernels write straight into the detect output (no final Concat), and that is
      // bit for bit what the concat would have produced.
      const std::string summary = (*gpu)->summary();
      EXPECT_NE(summary.find("(into concat)"), std::string::npos) << summary;
      opt.concat_in_place = false;
      opt.tactics = (*gpu)->tactics();  // the same algorithms: timing may pick others
      auto copied = CudaExecutor::build(*fused, opt);
      ASSERT_TRUE(copied.is_ok()) << copied.status().to_string();
      EXPECT_GT((*copied)->num_steps(), (*gpu)->num_steps());
      std::map<std::string, Tensor> got_copied;
      ASSERT_TRUE(run_gpu_poisoned(**copied, inputs, got_copied).is_ok());
      // fp16: the C3 concats in place re-plan their producers with strided outputs (engines chosen
      // for those), so only fp32 is bit for bit.
      if (run.precision == CudaPrecision::kFp32) EXPECT_EQ(compare(got_copied.at(out_name), o).max_abs_err, 0.0);
      else EXPECT_LT(compare(got_copied.at(out_name), o).rel(), 1e-2);
    }
    if (run.precision == CudaPrecision::kFp32) {
      EXPECT_LT(d.rel(), 1e-4);
      EXPECT_EQ(dets, ref_dets);
      if (run.fused && run.layout == CudaLayout::kNCHW) fp32_out = got;
    } else {
      EXPECT_LT(s.score_err, 0.05);
      EXPECT_LT(s.box_err, 2.0 + 0.01 * s.box_max);
      EXPECT_NEAR(static_cast<double>(dets), static_cast<double>(ref_dets), 2.0 + 0.1 * ref_dets);
    }
  }

  // GPU decode + NMS on the fp32 output equals the CPU postprocess of the same tensor.
  ASSERT_TRUE(fp32_out.count(out_name));
  const Tensor& o = fp32_out.at(out_name);
  for (float conf : {0.25f, 0.001f}) {
    NmsOptions opt;
    opt.conf = conf;
    opt.iou = conf < 0.01f ? 0.65f : 0.45f;
    auto cpu_dets = postprocess(o, HeadKind::kYoloV5, opt);
    ASSERT_TRUE(cpu_dets.is_ok());
    auto pp = cuda::GpuPostprocessor::create(o.shape(), HeadKind::kYoloV5, opt);
    ASSERT_TRUE(pp.is_ok()) << pp.status().to_string();
    auto buf = cuda::DeviceBuffer::allocate(o.nbytes());
    ASSERT_TRUE(buf.is_ok());
    ASSERT_TRUE(buf->upload(o.raw(), o.nbytes()).is_ok());
    ASSERT_TRUE((*pp)->enqueue(buf->as<float>(), nullptr).is_ok());
    auto gpu_dets = (*pp)->download(nullptr);
    ASSERT_TRUE(gpu_dets.is_ok()) << gpu_dets.status().to_string();
    ASSERT_EQ(gpu_dets->size(), cpu_dets->size());
    for (size_t b = 0; b < cpu_dets->size(); ++b) {
      const auto& c = (*cpu_dets)[b];
      const auto& g = (*gpu_dets)[b];
      ASSERT_EQ(g.size(), c.size()) << "image " << b << " conf " << conf;
      for (size_t i = 0; i < c.size(); ++i) {
        EXPECT_EQ(g[i].class_id, c[i].class_id) << i;
        EXPECT_EQ(g[i].score, c[i].score) << i;
        EXPECT_EQ(g[i].x1, c[i].x1) << i;
        EXPECT_EQ(g[i].y2, c[i].y2) << i;
      }
    }
    std::printf("[%s] GPU NMS conf %.3f: %zu detections in image 0, same as the CPU\n", file.c_str(), conf,
                (*cpu_dets)[0].size());
  }
}

// yolov5*-b4.onnx are written by scripts/device-check.sh (a static export re-batched).
INSTANTIATE_TEST_SUITE_P(Shared, CudaModel,
                         ::testing::Values("yolov5n.onnx", "yolov5s.onnx", "yolov5n-b4.onnx"),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           std::string s = i.param.substr(0, i.param.find(".onnx"));
                           for (char& ch : s)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s;
                         });

}  // namespace
