// The uint8 NHWC image input on the GPU (InputFormat::kUint8Nhwc, src/passes/image_input.h): the
// QyoloImageToFloat kernel makes exactly the float image (an fp32 executor on the bytes equals the
// one on the floats bit for bit), the direct FP16 stem reads the bytes itself (its step says so;
// without that fusion the bytes executor equals the float one bit for bit, with it the outputs
// agree within the half rounding the float stem adds), the GPU letterbox writes the CPU
// letterbox's bytes. Model: QYOLO_SHARED/models/yolov5n-dynamic.onnx at 1x3x320x320.
#include <gtest/gtest.h>

#include <cstring>

#include "backends/cuda/preprocess.h"
#include "gpu_test_support.h"
#include "image/letterbox.h"
#include "onnx/onnx_import.h"
#include "passes/image_input.h"
#include "passes/passes.h"
#include "runtime/detector.h"

namespace fs = std::filesystem;
using namespace qyolo;
using namespace qyolo::gputest;

#define REQUIRE_SHARED_FILE(rel)                                                \
  do {                                                                          \
    if (!fs::exists(shared_dir() / (rel)))                                      \
      GTEST_SKIP() << "shared file absent: " << (rel) << " (set QYOLO_SHARED)"; \
  } while (0)

namespace {

struct Graphs {
  SpecializedGraph floats, bytes;
  std::string input;
};

Result<Graphs> load_graphs() {
  QYOLO_ASSIGN_OR_RETURN(Graph g, import_onnx((shared_dir() / "models/yolov5n-dynamic.onnx").string()));
  Graphs out;
  out.input = g.inputs.at(0).name;
  QYOLO_ASSIGN_OR_RETURN(out.floats, specialize(g, {{out.input, {1, 3, 320, 320}}}));
  QYOLO_RETURN_IF_ERROR(run_default_passes(out.floats));
  out.bytes = out.floats;
  QYOLO_RETURN_IF_ERROR(use_uint8_image_input(out.bytes, out.input));
  return out;
}

bool identical(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

}  // namespace

TEST(CudaImageInput, BytesGiveTheFloatEnginesOutputs) {
  QYOLO_REQUIRE_GPU();
  REQUIRE_SHARED_FILE("models/yolov5n-dynamic.onnx");
  REQUIRE_SHARED_FILE("data/samples/bus.jpg");
  auto graphs = load_graphs();
  ASSERT_TRUE(graphs.is_ok()) << graphs.status().to_string();
  auto img = load_image((shared_dir() / "data/samples/bus.jpg").string());
  ASSERT_TRUE(img.is_ok());
  const std::map<std::string, Tensor> floats = {
      {graphs->input, Detector::preprocess({&*img}, 320, 320, nullptr)}};
  const std::map<std::string, Tensor> bytes = {
      {graphs->input, Detector::preprocess({&*img}, 320, 320, nullptr, InputFormat::kUint8Nhwc)}};

  for (CudaPrecision precision : {CudaPrecision::kFp32, CudaPrecision::kFp16}) {
    SCOPED_TRACE(cuda_precision_name(precision));
    CudaBuildOptions opt;
    opt.precision = precision;
    auto ref = CudaExecutor::build(graphs->floats, opt);
    ASSERT_TRUE(ref.is_ok()) << ref.status().to_string();
    std::map<std::string, Tensor> want;
    ASSERT_TRUE(run_gpu_poisoned(**ref, floats, want).is_ok());
    opt.tactics = (*ref)->tactics();  // the same kernels, so only the input path differs

    // The conversion step: the float image bit for bit, so the outputs are too.
    opt.stem_reads_bytes = false;
    auto converted = CudaExecutor::build(graphs->bytes, opt);
    ASSERT_TRUE(converted.is_ok()) << converted.status().to_string();
    EXPECT_EQ((*converted)->inputs().at(0).dtype, DataType::kUInt8);
    std::map<std::string, Tensor> got;
    ASSERT_TRUE(run_gpu_poisoned(**converted, bytes, got).is_ok());
    for (const auto& [name, t] : want) EXPECT_TRUE(identical(got.at(name), t)) << name;

    // The stem reading the bytes (fp16 only: fp32 has no direct stem, the conversion stays).
    opt.stem_reads_bytes = true;
    auto fused = CudaExecutor::build(graphs->bytes, opt);
    ASSERT_TRUE(fused.is_ok()) << fused.status().to_string();
    const std::string summary = (*fused)->summary();
    const bool stem_reads = summary.find("uint8 NHWC image") != std::string::npos;
    EXPECT_EQ(stem_reads, precision == CudaPrecision::kFp16) << summary;
    EXPECT_EQ((*fused)->num_steps(), (*converted)->num_steps() - (stem_reads ? 1 : 0));
    got.clear();
    ASSERT_TRUE(run_gpu_poisoned(**fused, bytes, got).is_ok());
    for (const auto& [name, t] : want) {
      const Diff d = compare(got.at(name), t);
      EXPECT_EQ(d.nan_count, 0) << name;
      if (precision == CudaPrecision::kFp32)
        EXPECT_EQ(d.max_abs_err, 0.0) << name;
      else  // the float stem rounds x / 255 to half, the bytes stem does not: within fp16 noise
        EXPECT_LT(d.rel(), 2e-2) << name << ": max abs err " << d.max_abs_err << " of " << d.max_abs_ref;
    }
  }
}

TEST(CudaImageInput, LetterboxBytesEqualTheCpuLetterbox) {
  QYOLO_REQUIRE_GPU();
  std::mt19937 rng(test_seed());
  SCOPED_TRACE("seed " + std::to_string(test_seed()));
  const std::pair<int, int> sizes[] = {{810, 1080}, {1280, 1280}, {640, 640}, {17, 333}, {1279, 719}};
  const int dst_h = 384, dst_w = 640;
  auto dst = cuda::DeviceBuffer::allocate(dst_h * dst_w * 3);
  ASSERT_TRUE(dst.is_ok());
  for (auto [w, h] : sizes) {
    SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h));
    Image im(w, h);
    for (auto& v : im.rgb) v = static_cast<uint8_t>(rng() & 0xFF);
    LetterboxInfo ci;
    const Image cpu = letterbox(im, dst_h, dst_w, &ci);
    auto src = cuda::DeviceBuffer::allocate(im.rgb.size());
    ASSERT_TRUE(src.is_ok());
    ASSERT_TRUE(src->upload(im.rgb.data(), im.rgb.size()).is_ok());
    ASSERT_EQ(cudaMemset(dst->get(), 0, dst->size()), cudaSuccess);
    LetterboxInfo gi;
    Status st = cuda::letterbox_to_nchw_gpu(src->as<uint8_t>(), w, h, static_cast<size_t>(w) * 3, dst_h,
                                            dst_w, DataType::kUInt8, dst->get(), nullptr, &gi);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    std::vector<uint8_t> got(dst->size());
    ASSERT_EQ(cudaMemcpy(got.data(), dst->get(), got.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    EXPECT_EQ(gi.pad_x, ci.pad_x);
    EXPECT_EQ(gi.pad_y, ci.pad_y);
    ASSERT_EQ(got.size(), cpu.rgb.size());
    EXPECT_TRUE(got == cpu.rgb);
  }
}
