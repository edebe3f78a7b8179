// GPU benchmark of the CUDA engine: builds MODEL for one batch size and precision, then times
// enqueue (optionally replayed as a captured CUDA graph) with CUDA events: median and p99 over
// --iters runs after --warmup runs. One result line (or JSON with --json).
//
//   bench_gpu MODEL.onnx --batch 32 --precision fp16|fp32|int8 [--calib CACHE] [--graph] [--layout auto|nchw|nhwc]
//             [--iters 200] [--warmup 20] [--unfused] [--no-fp32-tail] [--heuristic] [--summary]
//
// A static-batch export only builds for its own batch (re-batch it first, e.g. with
// tests/gpu/rebatch_onnx.py); dynamic exports take any batch.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <cublasLt.h>
#include <cuda_profiler_api.h>

#include "backends/cuda/cuda_executor.h"
#include "backends/cuda/postprocess.h"
#include "backends/cuda/preprocess.h"
#include "onnx/onnx_import.h"
#include "passes/image_input.h"
#include "passes/passes.h"
#include "quant/quantize_graph.h"

using namespace qyolo;

namespace {

struct Args {
  std::string model;
  int batch = 1;
  int size = 640;
  CudaPrecision precision = CudaPrecision::kFp16;
  CudaLayout layout = CudaLayout::kAuto;
  bool graph = false, fused = true, fp32_tail = true, exhaustive = true, json = false, summary = false;
  bool cudnn_graph = true, profile = false, cudnn_fusion = true;
  // Nsight Compute: one plain (non-graph) run between cudaProfilerStart/Stop, then exit, for
  // `ncu --profile-from-start off` (the build-time tactic timing stays out of the profile).
  bool ncu_range = false;
  // A/B switches for this session's build features (the JSON "without" field lists those off).
  bool direct_stem = true, concurrent = true, concat_in_place = true, cublaslt = true, cudnn_int8 = true, cudnn_int8_copy = true,
       int8_residual = false, int8_pools = true, stem_conversions = false, stem_s2d = true;
  bool pdl = true, pdl_ab = false;  // programmatic launch; --pdl-ab: also time the same engine without
  bool fp16_stem = true;  // int8-fp16: the image stem on the direct FP16 kernel writing int8 (--int8-stem: INT8)
  // Time the whole detection path on the GPU: letterbox from uint8 1080x810 RGB images already in
  // device memory, the network, decode + NMS (detections stay on the device).
  bool prepost = false;
  bool uint8_input = false;          // the image input as bytes (InputFormat::kUint8Nhwc)
  bool bytes_stem = true;            // with it: the direct stem reads the bytes (else a conversion step)
  bool int8_image_stem = true;       // with it and --int8 --fp16: the stem is INT8 on the bytes (else FP16)
  bool letterbox_per_image = false;  // --prepost: one letterbox launch per image (else one per batch)
  int iters = 200, warmup = 20;
  int int8_tactic = -1;
  int int8_plans = 0;  // cuDNN INT8 runtime-fusion engines timed per conv (0: the default)
  bool int8_fp16 = false;  // --precision int8-fp16: fp16 instead of fp32 outside the INT8 convs
  bool all_int8 = false;   // int8-fp16: every eligible conv INT8 (no per-layer INT8/FP16 timing)
  std::string calib, float_layers;  // int8: TensorRT cache / PPQ json; float-layer regex
};

int usage(const char* msg) {
  std::fprintf(
      stderr,
      "error: %s\nusage: bench_gpu MODEL.onnx [--batch N] [--size S] [--precision fp32|fp16|int8] [--calib "
      "CACHE]\n"
      "       [--float-layers REGEX] [--int8-tactic N] [--all-int8] [--prepost] [--uint8-input "
      "[--no-bytes-stem] [--fp16-image-stem]] [--graph]\n"
      "       [--layout auto|nchw|nhwc] [--iters N] [--warmup N] [--unfused] [--no-fp32-tail] [--heuristic]\n"
      "       [--legacy-conv] [--no-cudnn-fusion] [--no-direct-stem] [--one-stream] [--no-concat-in-place]\n"
      "       [--no-cublaslt] [--no-cudnn-int8] [--no-cudnn-int8-copy] [--int8-plans N] [--int8-residual] [--no-int8-pools] [--stem-conversions] [--no-stem-s2d] "
      "[--int8-stem] [--no-pdl] [--pdl-ab]\n"
      "       [--summary] [--profile] [--json] [--ncu-range]\n",
      msg);
  return 2;
}

int fail(const Status& st) {
  std::fprintf(stderr, "error: %s\n", st.to_string().c_str());
  return 1;
}

#define CHECK_CUDA(expr)                                                               \
  do {                                                                                 \
    cudaError_t e_ = (expr);                                                           \
    if (e_ != cudaSuccess) {                                                           \
      std::fprintf(stderr, "error: %s failed: %s\n", #expr, cudaGetErrorString(e_)); \
      return 1;                                                                        \
    }                                                                                  \
  } while (0)

// The chip's ceilings, measured in the same run: device-to-device copy bandwidth (bytes read +
// written) and cuBLASLt dense GEMM throughput, int8 (s8 x s8 -> s32) and fp16 (fp32 accumulate),
// M = N = K = 8192, "TN" layout (the one IMMA kernels want).
struct Ceilings {
  double copy_gbs = 0, int8_tops = 0, fp16_tflops = 0;
};

#define CHECK_LT(expr)                                                                             \
  do {                                                                                             \
    cublasStatus_t s_ = (expr);                                                                    \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                             \
      std::fprintf(stderr, "error: %s failed: %d\n", #expr, static_cast<int>(s_));                \
      return false;                                                                                \
    }                                                                                              \
  } while (0)
#define CHECK_CU(expr)                                                                             \
  do {                                                                                             \
    cudaError_t e_ = (expr);                                                                       \
    if (e_ != cudaSuccess) {                                                                       \
      std::fprintf(stderr, "error: %s failed: %s\n", #expr, cudaGetErrorString(e_));              \
      return false;                                                                                \
    }                                                                                              \
  } while (0)

bool time_gemm(cublasLtHandle_t lt, bool int8, int64_t n, void* a, void* b, void* c, void* ws, size_t ws_bytes,
               cudaStream_t s, double* ops_per_s) {
  const cudaDataType_t ab = int8 ? CUDA_R_8I : CUDA_R_16F, cd = int8 ? CUDA_R_32I : CUDA_R_16F;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  CHECK_LT(cublasLtMatmulDescCreate(&op, int8 ? CUBLAS_COMPUTE_32I : CUBLAS_COMPUTE_32F, int8 ? CUDA_R_32I : CUDA_R_32F));
  const cublasOperation_t t = CUBLAS_OP_T;
  CHECK_LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t)));
  CHECK_LT(cublasLtMatrixLayoutCreate(&la, ab, n, n, n));
  CHECK_LT(cublasLtMatrixLayoutCreate(&lb, ab, n, n, n));
  CHECK_LT(cublasLtMatrixLayoutCreate(&lc, cd, n, n, n));
  cublasLtMatmulPreference_t pref = nullptr;
  CHECK_LT(cublasLtMatmulPreferenceCreate(&pref));
  CHECK_LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof(ws_bytes)));
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  CHECK_LT(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, &heur, &found));
  if (found == 0) return false;
  const int32_t ia = 1, ib = 0;
  const float fa = 1.f, fb = 0.f;
  const void* alpha = int8 ? static_cast<const void*>(&ia) : static_cast<const void*>(&fa);
  const void* beta = int8 ? static_cast<const void*>(&ib) : static_cast<const void*>(&fb);
  for (int i = 0; i < 3; ++i)
    CHECK_LT(cublasLtMatmul(lt, op, alpha, a, la, b, lb, beta, c, lc, c, lc, &heur.algo, ws, ws_bytes, s));
  cudaEvent_t e0, e1;
  CHECK_CU(cudaEventCreate(&e0));
  CHECK_CU(cudaEventCreate(&e1));
  const int reps = 20;
  CHECK_CU(cudaEventRecord(e0, s));
  for (int i = 0; i < reps; ++i)
    CHECK_LT(cublasLtMatmul(lt, op, alpha, a, la, b, lb, beta, c, lc, c, lc, &heur.algo, ws, ws_bytes, s));
  CHECK_CU(cudaEventRecord(e1, s));
  CHECK_CU(cudaEventSynchronize(e1));
  float ms = 0;
  CHECK_CU(cudaEventElapsedTime(&ms, e0, e1));
  *ops_per_s = 2.0 * n * n * n * reps / (ms * 1e-3);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatmulDescDestroy(op);
  return true;
}

bool measure_ceilings(Ceilings* out) {
  cudaStream_t s = nullptr;
  CHECK_CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  const size_t bytes = size_t{1} << 30;
  void *a = nullptr, *b = nullptr, *c = nullptr, *ws = nullptr;
  CHECK_CU(cudaMalloc(&a, bytes));
  CHECK_CU(cudaMalloc(&b, bytes));
  CHECK_CU(cudaMemsetAsync(a, 1, bytes, s));
  CHECK_CU(cudaMemsetAsync(b, 1, bytes, s));
  cudaEvent_t e0, e1;
  CHECK_CU(cudaEventCreate(&e0));
  CHECK_CU(cudaEventCreate(&e1));
  CHECK_CU(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s));
  CHECK_CU(cudaEventRecord(e0, s));
  const int reps = 10;
  for (int i = 0; i < reps; ++i) CHECK_CU(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s));
  CHECK_CU(cudaEventRecord(e1, s));
  CHECK_CU(cudaEventSynchronize(e1));
  float ms = 0;
  CHECK_CU(cudaEventElapsedTime(&ms, e0, e1));
  out->copy_gbs = 2.0 * bytes * reps / (ms * 1e-3) / 1e9;
  // 8192^2 int32/fp16 outputs fit the same buffers (256 MiB).
  const int64_t n = 8192;
  const size_t ws_bytes = 64 << 20;
  CHECK_CU(cudaMalloc(&c, static_cast<size_t>(n) * n * 4));
  CHECK_CU(cudaMalloc(&ws, ws_bytes));
  CHECK_CU(cudaMemsetAsync(a, 0x11, static_cast<size_t>(n) * n * 2, s));
  CHECK_CU(cudaMemsetAsync(b, 0x11, static_cast<size_t>(n) * n * 2, s));
  cublasLtHandle_t lt = nullptr;
  CHECK_LT(cublasLtCreate(&lt));
  double ops = 0;
  if (time_gemm(lt, true, n, a, b, c, ws, ws_bytes, s, &ops)) out->int8_tops = ops / 1e12;
  if (time_gemm(lt, false, n, a, b, c, ws, ws_bytes, s, &ops)) out->fp16_tflops = ops / 1e12;
  cublasLtDestroy(lt);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  cudaFree(ws);
  cudaStreamDestroy(s);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--ceilings") {
    Ceilings c;
    if (!measure_ceilings(&c)) return 1;
    std::printf("{\"who\": \"ceilings\", \"copy_gbs\": %.1f, \"int8_tops\": %.1f, \"fp16_tflops\": %.1f}\n", c.copy_gbs,
                c.int8_tops, c.fp16_tflops);
    return 0;
  }
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (s == "--batch") { const char* v = next(); if (!v) return usage("--batch needs a value"); a.batch = std::atoi(v); }
    else if (s == "--size") { const char* v = next(); if (!v) return usage("--size needs a value"); a.size = std::atoi(v); }
    else if (s == "--iters") { const char* v = next(); if (!v) return usage("--iters needs a value"); a.iters = std::atoi(v); }
    else if (s == "--warmup") { const char* v = next(); if (!v) return usage("--warmup needs a value"); a.warmup = std::atoi(v); }
    else if (s == "--precision" || s == "--dtype") {
      const char* v = next();
      if (!v) return usage("--precision needs a value");
      if (std::strcmp(v, "fp16") == 0) a.precision = CudaPrecision::kFp16;
      else if (std::strcmp(v, "fp32") == 0) a.precision = CudaPrecision::kFp32;
      else if (std::strcmp(v, "int8") == 0) a.precision = CudaPrecision::kInt8;
      else if (std::strcmp(v, "int8-fp16") == 0) a.precision = CudaPrecision::kInt8, a.int8_fp16 = true;
      else return usage("--precision is fp32, fp16, int8 or int8-fp16");
    } else if (s == "--calib") {
      const char* v = next();
      if (!v) return usage("--calib needs a file");
      a.calib = v;
    } else if (s == "--float-layers") {
      const char* v = next();
      if (!v) return usage("--float-layers needs a regex");
      a.float_layers = v;
    } else if (s == "--int8-tactic") {
      const char* v = next();
      if (!v) return usage("--int8-tactic needs a value");
      a.int8_tactic = std::atoi(v);
    } else if (s == "--layout") {
      const char* v = next();
      if (!v) return usage("--layout needs a value");
      if (std::strcmp(v, "auto") == 0)
        a.layout = CudaLayout::kAuto;
      else if (std::strcmp(v, "nchw") == 0)
        a.layout = CudaLayout::kNCHW;
      else if (std::strcmp(v, "nhwc") == 0)
        a.layout = CudaLayout::kNHWC;
      else
        return usage("--layout is auto, nchw or nhwc");
    } else if (s == "--graph")
      a.graph = true;
    else if (s == "--unfused")
      a.fused = false;
    else if (s == "--no-fp32-tail")
      a.fp32_tail = false;
    else if (s == "--heuristic")
      a.exhaustive = false;
    else if (s == "--json")
      a.json = true;
    else if (s == "--summary")
      a.summary = true;
    else if (s == "--profile")
      a.profile = true;
    else if (s == "--legacy-conv")
      a.cudnn_graph = false;
    else if (s == "--no-cudnn-fusion")
      a.cudnn_fusion = false;
    else if (s == "--no-direct-stem")
      a.direct_stem = false;
    else if (s == "--one-stream")
      a.concurrent = false;
    else if (s == "--no-concat-in-place")
      a.concat_in_place = false;
    else if (s == "--no-cublaslt")
      a.cublaslt = false;
    else if (s == "--no-cudnn-int8")
      a.cudnn_int8 = false;
    else if (s == "--no-cudnn-int8-copy")
      a.cudnn_int8_copy = false;
    else if (s == "--int8-plans" && i + 1 < argc)
      a.int8_plans = std::atoi(next());
    else if (s == "--int8-residual")
      a.int8_residual = true;
    else if (s == "--no-int8-pools")
      a.int8_pools = false;
    else if (s == "--stem-conversions")
      a.stem_conversions = true;
    else if (s == "--no-stem-s2d")
      a.stem_s2d = false;
    else if (s == "--int8-stem")
      a.fp16_stem = false;
    else if (s == "--no-pdl")
      a.pdl = false;
    else if (s == "--pdl-ab")
      a.pdl_ab = true;
    else if (s == "--prepost")
      a.prepost = true;
    else if (s == "--uint8-input")
      a.uint8_input = true;
    else if (s == "--no-bytes-stem")
      a.bytes_stem = false;
    else if (s == "--fp16-image-stem")
      a.int8_image_stem = false;
    else if (s == "--letterbox-per-image")
      a.letterbox_per_image = true;
    else if (s == "--all-int8")
      a.all_int8 = true;
    else if (s == "--ncu-range")
      a.ncu_range = true;
    else if (!s.empty() && s[0] == '-')
      return usage(("unknown option " + s).c_str());
    else
      a.model = s;
  }
  if (a.model.empty()) return usage("no model given");
  if (a.batch < 1 || a.iters < 1 || a.warmup < 0) return usage("bad --batch/--iters/--warmup");

  auto t0 = std::chrono::steady_clock::now();
  auto g = import_onnx(a.model);
  if (!g) return fail(g.status());
  const std::string in_name = g->inputs.at(0).name;
  auto sg = specialize(*g, {{in_name, {a.batch, 3, a.size, a.size}}});
  if (!sg) return fail(sg.status());
  if (a.fused) {
    Status st = run_default_passes(*sg);
    if (!st.is_ok()) return fail(st);
  }
  int n_int8 = 0;
  if (a.precision == CudaPrecision::kInt8) {
    if (a.calib.empty()) return usage("--precision int8 needs --calib CACHE (qyolo calibrate writes one)");
    auto scales = load_activation_scales(a.calib, *g);
    if (!scales) return fail(scales.status());
    QuantizeOptions qo;
    qo.float_layers_regex = a.float_layers;
    Status st = quantize_graph(*sg, *scales, qo, &n_int8);
    if (!st.is_ok()) return fail(st);
  }
  if (a.uint8_input) {
    Status st = use_uint8_image_input(*sg, in_name);
    if (!st.is_ok()) return fail(st);
  }
  CudaBuildOptions opt;
  opt.precision = a.precision;
  opt.stem_reads_bytes = a.bytes_stem;
  opt.int8_image_stem = a.int8_image_stem;
  opt.layout = a.layout;
  opt.fp32_tail = a.fp32_tail;
  opt.exhaustive_tuning = a.exhaustive;
  opt.cudnn_graph = a.cudnn_graph;
  opt.cudnn_fused_epilogue = a.cudnn_fusion ? 1 : 0;
  opt.fp16_direct_stem = a.direct_stem;
  opt.concurrent_branches = a.concurrent;
  opt.concat_in_place = a.concat_in_place;
  opt.int8_pools = a.int8_pools;
  opt.stem_conversion_free = !a.stem_conversions;
  opt.stem_s2d = a.stem_s2d;
  opt.cublaslt_convs = a.cublaslt ? 1 : 0;
  opt.cudnn_int8 = a.cudnn_int8 ? 1 : 0;
  opt.cudnn_int8_copy = a.cudnn_int8_copy;
  if (a.int8_plans > 0) opt.cudnn_int8_max_plans = a.int8_plans;
  opt.int8_residual = a.int8_residual;
  opt.int8_fp16_stem = a.fp16_stem;
  opt.int8_tactic = a.int8_tactic;
  opt.int8_fp16 = a.int8_fp16;
  opt.int8_fp16_choose = !a.all_int8;
  opt.programmatic_launch = a.pdl;
  auto ex = CudaExecutor::build(std::move(*sg), opt);
  if (!ex) return fail(ex.status());
  const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CudaExecutor& e = **ex;
  if (a.summary) std::fputs(e.summary().c_str(), stderr);

  // Inputs: uniform [0, 1) (never zeros; uint8 inputs: uniform bytes); outputs allocated once.
  std::vector<void*> bufs;
  std::vector<const void*> ins;
  std::vector<void*> outs;
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (const auto& b : e.inputs()) {
    std::vector<float> host(static_cast<size_t>(shape_numel(b.shape)));
    for (float& v : host) v = u(rng);
    if (b.dtype == DataType::kUInt8) {
      auto* bytes = reinterpret_cast<uint8_t*>(host.data());  // the first nbytes() of the same storage
      for (size_t i = 0; i < b.nbytes(); ++i) bytes[i] = static_cast<uint8_t>(rng() & 0xFF);
    }
    void* p = nullptr;
    CHECK_CUDA(cudaMalloc(&p, b.nbytes()));
    CHECK_CUDA(cudaMemcpy(p, host.data(), b.nbytes(), cudaMemcpyHostToDevice));
    bufs.push_back(p);
    ins.push_back(p);
  }
  for (const auto& b : e.outputs()) {
    void* p = nullptr;
    CHECK_CUDA(cudaMalloc(&p, b.nbytes()));
    bufs.push_back(p);
    outs.push_back(p);
  }
  cudaStream_t s = nullptr;
  CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  // --prepost: one synthetic 1080x810 image per batch slot, letterboxed into the input each run.
  constexpr int kImgW = 810, kImgH = 1080;
  void* images = nullptr;
  std::unique_ptr<cuda::GpuPostprocessor> post;
  if (a.prepost) {
    std::vector<uint8_t> host(static_cast<size_t>(kImgW) * kImgH * 3 * a.batch);
    for (auto& v : host) v = static_cast<uint8_t>(rng() & 0xFF);
    CHECK_CUDA(cudaMalloc(&images, host.size()));
    CHECK_CUDA(cudaMemcpy(images, host.data(), host.size(), cudaMemcpyHostToDevice));
    bufs.push_back(images);
    NmsOptions nms;  // conf 0.25, iou 0.45, max_det 300
    auto pp = cuda::GpuPostprocessor::create(e.outputs().at(0).shape, HeadKind::kYoloV5, nms);
    if (!pp) return fail(pp.status());
    post = std::move(pp).value();
  }
  const DataType in_dtype = e.inputs().at(0).dtype;
  const Shape in_shape = e.inputs().at(0).shape;  // NHWC for a uint8 input
  const int in_h = static_cast<int>(in_dtype == DataType::kUInt8 ? in_shape[1] : in_shape[2]);
  const int in_w = static_cast<int>(in_dtype == DataType::kUInt8 ? in_shape[2] : in_shape[3]);
  // Which parts of a run to launch: --prepost times the whole path, then each of its parts alone.
  enum Part { kPre = 1, kNet = 2, kPost = 4, kAll = 7 };
  int parts = kAll;
  auto run_once = [&]() -> Status {
    if (a.prepost && (parts & kPre)) {
      const size_t image_bytes = e.inputs().at(0).nbytes() / static_cast<size_t>(a.batch);
      if (!a.letterbox_per_image) {
        QYOLO_RETURN_IF_ERROR(cuda::letterbox_batch_gpu(static_cast<const uint8_t*>(images), kImgW, kImgH,
                                                        static_cast<size_t>(kImgW) * 3,
                                                        static_cast<size_t>(kImgW) * kImgH * 3, a.batch, in_h,
                                                        in_w, in_dtype, const_cast<void*>(ins[0]), s));
      } else
        for (int b = 0; b < a.batch; ++b) {
          QYOLO_RETURN_IF_ERROR(cuda::letterbox_to_nchw_gpu(
              static_cast<const uint8_t*>(images) + static_cast<size_t>(b) * kImgW * kImgH * 3, kImgW, kImgH,
              static_cast<size_t>(kImgW) * 3, in_h, in_w, in_dtype,
              static_cast<uint8_t*>(const_cast<void*>(ins[0])) + b * image_bytes, s));
        }
    }
    if (parts & kNet) QYOLO_RETURN_IF_ERROR(e.enqueue(ins, outs, s));
    if (a.prepost && (parts & kPost)) QYOLO_RETURN_IF_ERROR(post->enqueue(static_cast<const float*>(outs[0]), s));
    return Status::ok();
  };
  for (int i = 0; i < a.warmup; ++i) {
    Status st = run_once();
    if (!st.is_ok()) return fail(st);
  }
  CHECK_CUDA(cudaStreamSynchronize(s));
  if (a.ncu_range) {
    CHECK_CUDA(cudaProfilerStart());
    Status st = run_once();
    CHECK_CUDA(cudaStreamSynchronize(s));
    CHECK_CUDA(cudaProfilerStop());
    if (!st.is_ok()) return fail(st);
    std::fprintf(stderr, "ncu range: one run profiled\n");
    return 0;
  }
  if (a.profile) {
    // The roofline needs the chip's ceilings: measured here, in the same process and run.
    Ceilings c;
    CudaExecutor::Roofline roof;
    if (measure_ceilings(&c)) roof = {c.copy_gbs, c.int8_tops, c.fp16_tflops};
    auto prof = e.profile(ins, outs, s, 10, roof);
    if (!prof) return fail(prof.status());
    std::fputs(prof->c_str(), stderr);
  }
  cudaEvent_t e0, e1;
  CHECK_CUDA(cudaEventCreate(&e0));
  CHECK_CUDA(cudaEventCreate(&e1));
  // Median and p99 of `a.iters` timed runs (a CUDA graph of one run with --graph, captured here so
  // that it takes the engine's current launch settings).
  auto measure = [&](double& median, double& p99) -> Status {
    cuda::Graph graph;
    cuda::GraphExec exec;
    if (a.graph) {
      QYOLO_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
      Status st = run_once();
      cudaGraph_t raw = nullptr;
      const cudaError_t ce = cudaStreamEndCapture(s, &raw);
      graph = cuda::Graph(raw);
      QYOLO_RETURN_IF_ERROR(st);
      QYOLO_CUDA_CHECK(ce);
      cudaGraphExec_t raw_exec = nullptr;
      QYOLO_CUDA_CHECK(cudaGraphInstantiate(&raw_exec, graph.get(), 0));
      exec = cuda::GraphExec(raw_exec);
      for (int i = 0; i < std::max(3, a.warmup / 4); ++i) QYOLO_CUDA_CHECK(cudaGraphLaunch(exec.get(), s));
      QYOLO_CUDA_CHECK(cudaStreamSynchronize(s));
    }
    std::vector<float> ms;
    for (int i = 0; i < a.iters; ++i) {
      QYOLO_CUDA_CHECK(cudaEventRecord(e0, s));
      if (a.graph) QYOLO_CUDA_CHECK(cudaGraphLaunch(exec.get(), s));
      else QYOLO_RETURN_IF_ERROR(run_once());
      QYOLO_CUDA_CHECK(cudaEventRecord(e1, s));
      QYOLO_CUDA_CHECK(cudaEventSynchronize(e1));
      float t = 0;
      QYOLO_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
      ms.push_back(t);
    }
    QYOLO_CUDA_CHECK(cudaGetLastError());
    std::sort(ms.begin(), ms.end());
    median = ms[ms.size() / 2];
    p99 = ms[std::min(ms.size() - 1, static_cast<size_t>(ms.size() * 0.99))];
    return Status::ok();
  };
  double median = 0, p99 = 0, median_no_pdl = -1, p99_no_pdl = -1;
  const bool pdl_on = e.programmatic_launch();
  Status mst = measure(median, p99);
  if (!mst.is_ok()) return fail(mst);
  if (a.prepost) {  // each part alone (the network's output stays from the last full run)
    double pre_ms = 0, post_ms = 0, net_ms = 0, p = 0;
    parts = kPre;
    mst = measure(pre_ms, p);
    parts = kPost;
    if (mst.is_ok()) mst = measure(post_ms, p);
    parts = kNet;
    if (mst.is_ok()) mst = measure(net_ms, p);
    parts = kAll;
    if (!mst.is_ok()) return fail(mst);
    std::fprintf(stderr, "%s b%d pre/post parts alone: letterbox %.4f ms, network %.4f ms, decode+sort+NMS %.4f ms "
                 "(all together %.4f ms)\n", a.model.c_str(), a.batch, pre_ms, net_ms, post_ms, median);
  }
  if (a.pdl_ab && pdl_on) {  // the same engine with plain launches, then PDL again (drift check)
    e.set_programmatic_launch(false);
    mst = measure(median_no_pdl, p99_no_pdl);
    if (!mst.is_ok()) return fail(mst);
    e.set_programmatic_launch(true);
    double again = 0, again99 = 0;
    mst = measure(again, again99);
    if (!mst.is_ok()) return fail(mst);
    std::fprintf(stderr, "%s b%d: programmatic launch %.4f ms (again %.4f), plain %.4f ms\n", a.model.c_str(), a.batch,
                 median, again, median_no_pdl);
  }
  const char* prec = a.int8_fp16 ? (a.all_int8 ? "int8-fp16 all" : "int8-fp16") : cuda_precision_name(a.precision);
  const CudaExecutor::Cost cost = e.cost();
  if (a.json) {
    std::printf("{\"model\": \"%s\", \"batch\": %d, \"dtype\": \"%s\", \"graph\": %s, \"median_ms\": %.4f, "
                "\"p99_ms\": %.4f, \"images_per_s\": %.1f, \"build_s\": %.2f, \"arena_mib\": %zu, \"steps\": %d, "
                "\"conv\": \"%s\", \"prepost\": %s, \"int8_convs\": %d, \"conv_gmacs\": %.3f, \"int8_gmacs\": %.3f, "
                "\"gbytes\": %.4f, \"pdl\": %s, \"median_ms_no_pdl\": %.4f, \"without\": \"%s\"}\n",
                a.model.c_str(), a.batch, prec, a.graph ? "true" : "false", median, p99, a.batch * 1e3 / median, build_s,
                e.arena_bytes() >> 20, e.num_steps(),
                a.cudnn_graph ? (a.cudnn_fusion ? "graph" : "graph-unfused") : "legacy", a.prepost ? "true" : "false",
                n_int8, cost.conv_macs / 1e9, cost.int8_macs / 1e9, cost.bytes / 1e9, pdl_on ? "true" : "false", median_no_pdl,
                ((a.direct_stem ? "" : " direct-stem") + std::string(a.concurrent ? "" : " concurrency") +
                 (a.concat_in_place ? "" : " concat-in-place") + (a.cublaslt ? "" : " cublaslt") + (a.cudnn_int8 ? "" : " cudnn-int8") + (a.cudnn_int8_copy ? "" : " cudnn-int8-copy") + (a.int8_plans > 0 ? " int8-plans=" + std::to_string(a.int8_plans) : std::string()) + (a.int8_residual ? " +int8-residual" : "") + (a.int8_pools ? "" : " int8-pools") + (a.stem_conversions ? " +stem-conversions" : "") + (a.stem_s2d ? "" : " stem-s2d") + (a.fp16_stem ? "" : " fp16-stem")).c_str());
    std::fprintf(stderr, "%s b%d %s: %.1f of %.1f GMAC in INT8 convs\n", a.model.c_str(), a.batch, prec,
                 cost.int8_macs / 1e9, cost.conv_macs / 1e9);
  } else {
    std::printf(
        "qyolo %s b%d %s%s%s%s%s: median %.3f ms  p99 %.3f ms  %.0f img/s  (build %.1f s, %d steps, arena "
        "%zu MiB)\n",
        a.model.c_str(), a.batch, prec,
        a.prepost ? (a.uint8_input ? " +pre/post uint8" : " +pre/post")
                  : (a.uint8_input ? " uint8-input" : ""),
        a.graph ? " graph" : "", a.fused ? "" : " unfused", a.cudnn_graph ? "" : " legacy-conv", median, p99,
        a.batch * 1e3 / median, build_s, e.num_steps(), e.arena_bytes() >> 20);
  }
  post.reset();
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaStreamDestroy(s);
  for (void* p : bufs) cudaFree(p);
  return 0;
}
