// GPU benchmark of the CUDA engine: builds MODEL for one batch size and precision, then times
// enqueue (optionally replayed as a captured CUDA graph) with CUDA events: median and p99 over
// --iters runs after --warmup runs. One result line (or JSON with --json).
//
//   bench_gpu MODEL.onnx --batch 32 --precision fp16 [--graph] [--layout auto|nchw|nhwc]
//             [--iters 200] [--warmup 20] [--unfused] [--no-fp32-tail] [--heuristic] [--summary]
//
// A static-batch export only builds for its own batch (re-batch it first, e.g. with
// tests/gpu/rebatch_onnx.py); dynamic exports take any batch.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/cuda/cuda_executor.h"
#include "onnx/onnx_import.h"
#include "passes/passes.h"

using namespace qyolo;

namespace {

struct Args {
  std::string model;
  int batch = 1;
  int size = 640;
  CudaPrecision precision = CudaPrecision::kFp16;
  CudaLayout layout = CudaLayout::kAuto;
  bool graph = false, fused = true, fp32_tail = true, exhaustive = true, json = false, summary = false;
  bool cudnn_graph = true, profile = false;
  int iters = 200, warmup = 20;
};

int usage(const char* msg) {
  std::fprintf(stderr,
               "error: %s\nusage: bench_gpu MODEL.onnx [--batch N] [--size S] [--precision fp32|fp16] [--graph]\n"
               "       [--layout auto|nchw|nhwc] [--iters N] [--warmup N] [--unfused] [--no-fp32-tail] [--heuristic]\n"
               "       [--legacy-conv] [--summary] [--profile] [--json]\n",
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

}  // namespace

int main(int argc, char** argv) {
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
      else return usage("--precision is fp32 or fp16");
    } else if (s == "--layout") {
      const char* v = next();
      if (!v) return usage("--layout needs a value");
      if (std::strcmp(v, "auto") == 0) a.layout = CudaLayout::kAuto;
      else if (std::strcmp(v, "nchw") == 0) a.layout = CudaLayout::kNCHW;
      else if (std::strcmp(v, "nhwc") == 0) a.layout = CudaLayout::kNHWC;
      else return usage("--layout is auto, nchw or nhwc");
    } else if (s == "--graph") a.graph = true;
    else if (s == "--unfused") a.fused = false;
    else if (s == "--no-fp32-tail") a.fp32_tail = false;
    else if (s == "--heuristic") a.exhaustive = false;
    else if (s == "--json") a.json = true;
    else if (s == "--summary") a.summary = true;
    else if (s == "--profile") a.profile = true;
    else if (s == "--legacy-conv") a.cudnn_graph = false;
    else if (!s.empty() && s[0] == '-') return usage(("unknown option " + s).c_str());
    else a.model = s;
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
  CudaBuildOptions opt;
  opt.precision = a.precision;
  opt.layout = a.layout;
  opt.fp32_tail = a.fp32_tail;
  opt.exhaustive_tuning = a.exhaustive;
  opt.cudnn_graph = a.cudnn_graph;
  auto ex = CudaExecutor::build(std::move(*sg), opt);
  if (!ex) return fail(ex.status());
  const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CudaExecutor& e = **ex;
  if (a.summary) std::fputs(e.summary().c_str(), stderr);

  // Inputs: uniform [0, 1) (never zeros); outputs allocated once.
  std::vector<void*> bufs;
  std::vector<const void*> ins;
  std::vector<void*> outs;
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (const auto& b : e.inputs()) {
    std::vector<float> host(static_cast<size_t>(shape_numel(b.shape)));
    for (float& v : host) v = u(rng);
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
  for (int i = 0; i < a.warmup; ++i) {
    Status st = e.enqueue(ins, outs, s);
    if (!st.is_ok()) return fail(st);
  }
  CHECK_CUDA(cudaStreamSynchronize(s));
  if (a.profile) {
    auto prof = e.profile(ins, outs, s, 10);
    if (!prof) return fail(prof.status());
    std::fputs(prof->c_str(), stderr);
  }
  cudaGraphExec_t exec = nullptr;
  cudaGraph_t graph = nullptr;
  if (a.graph) {
    CHECK_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    Status st = e.enqueue(ins, outs, s);
    cudaError_t ce = cudaStreamEndCapture(s, &graph);
    if (!st.is_ok()) return fail(st);
    CHECK_CUDA(ce);
    CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
    for (int i = 0; i < std::max(3, a.warmup / 4); ++i) CHECK_CUDA(cudaGraphLaunch(exec, s));
    CHECK_CUDA(cudaStreamSynchronize(s));
  }
  cudaEvent_t e0, e1;
  CHECK_CUDA(cudaEventCreate(&e0));
  CHECK_CUDA(cudaEventCreate(&e1));
  std::vector<float> ms;
  for (int i = 0; i < a.iters; ++i) {
    CHECK_CUDA(cudaEventRecord(e0, s));
    if (a.graph) {
      CHECK_CUDA(cudaGraphLaunch(exec, s));
    } else {
      Status st = e.enqueue(ins, outs, s);
      if (!st.is_ok()) return fail(st);
    }
    CHECK_CUDA(cudaEventRecord(e1, s));
    CHECK_CUDA(cudaEventSynchronize(e1));
    float t = 0;
    CHECK_CUDA(cudaEventElapsedTime(&t, e0, e1));
    ms.push_back(t);
  }
  CHECK_CUDA(cudaGetLastError());
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  const double p99 = ms[std::min(ms.size() - 1, static_cast<size_t>(ms.size() * 0.99))];
  const char* prec = cuda_precision_name(a.precision);
  if (a.json) {
    std::printf("{\"model\": \"%s\", \"batch\": %d, \"dtype\": \"%s\", \"graph\": %s, \"median_ms\": %.4f, "
                "\"p99_ms\": %.4f, \"images_per_s\": %.1f, \"build_s\": %.2f, \"arena_mib\": %zu, \"steps\": %d, "
                "\"conv\": \"%s\"}\n",
                a.model.c_str(), a.batch, prec, a.graph ? "true" : "false", median, p99, a.batch * 1e3 / median, build_s,
                e.arena_bytes() >> 20, e.num_steps(), a.cudnn_graph ? "graph" : "legacy");
  } else {
    std::printf("qyolo %s b%d %s%s%s%s: median %.3f ms  p99 %.3f ms  %.0f img/s  (build %.1f s, %d steps, arena %zu MiB)\n",
                a.model.c_str(), a.batch, prec, a.graph ? " graph" : "", a.fused ? "" : " unfused",
                a.cudnn_graph ? "" : " legacy-conv", median, p99,
                a.batch * 1e3 / median, build_s, e.num_steps(), e.arena_bytes() >> 20);
  }
  if (exec) cudaGraphExecDestroy(exec);
  if (graph) cudaGraphDestroy(graph);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaStreamDestroy(s);
  for (void* p : bufs) cudaFree(p);
  return 0;
}
