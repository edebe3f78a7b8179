// Probe: cuDNN's runtime-fusion INT8 convolution (int8 x/w, int32 accumulation, per-channel
// dequantisation, bias, SiLU, optional residual, int8 or half output) against cuDNN FP16 with
// the same fused epilogue, on the convolution shapes of a YOLOv5 model at one batch size. Each
// side is the fastest of the engines cuDNN's heuristics propose (GraphConvPlan). Weights and
// activations are random; only time is measured.
//
//   bench_cudnn_int8 --batch 32 --layers C:K:R:STRIDE:HIN[:res],...   (default: yolov5s 640 shapes)
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backends/cuda/cudnn_graph.h"

using namespace qyolo;
using namespace qyolo::cuda;

namespace {

struct Layer {
  int64_t c, k, r, stride, hin;
  bool residual;
};

// yolov5s at 640x640: the distinct (C, K, kernel, stride, input size, residual) of its convs.
const char* kYolov5s =
    "32:64:3:2:320,64:32:1:1:160,32:32:1:1:160,32:32:3:1:160:res,64:64:1:1:160,64:128:3:2:160,"
    "128:64:1:1:80,64:64:1:1:80,64:64:3:1:80:res,128:128:1:1:80,128:256:3:2:80,256:128:1:1:40,"
    "128:128:1:1:40,128:128:3:1:40:res,256:256:1:1:40,256:512:3:2:40,512:256:1:1:20,256:256:3:1:20:res,"
    "512:512:1:1:20,1024:512:1:1:20,256:64:1:1:80,64:64:3:1:80,128:128:3:2:80,256:256:3:2:40,128:256:1:1:80";

std::vector<Layer> parse_layers(const std::string& spec) {
  std::vector<Layer> out;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char tail[8] = {};
    long long c, k, r, s, h;
    int n = std::sscanf(item.c_str(), "%lld:%lld:%lld:%lld:%lld:%7s", &c, &k, &r, &s, &h, tail);
    if (n < 5) {
      std::fprintf(stderr, "bad layer '%s' (C:K:R:STRIDE:HIN[:res])\n", item.c_str());
      std::exit(2);
    }
    out.push_back(Layer{c, k, r, s, h, n == 6 && std::string(tail) == "res"});
  }
  return out;
}

struct Timed {
  float ms = -1.f;
  std::string info;
};

Timed run(cudnnHandle_t h, cudaStream_t st, DeviceBuffer& tws, const GraphConvProblem& p, const void* w) {
  auto plan = GraphConvPlan::create(h, st, p, w, size_t{256} << 20, &tws, 10, false);
  if (!plan) return {-1.f, plan.status().message()};
  return {(*plan)->tuned_ms(), (*plan)->info()};
}

}  // namespace

int main(int argc, char** argv) {
  int batch = 32;
  std::string spec = kYolov5s;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--batch" && i + 1 < argc) batch = std::atoi(argv[++i]);
    else if (a == "--layers" && i + 1 < argc) spec = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_cudnn_int8 [--batch N] [--layers C:K:R:STRIDE:HIN[:res],...]\n");
      return 2;
    }
  }
  auto handle = make_cudnn();
  if (!handle) {
    std::fprintf(stderr, "cuDNN: %s\n", handle.status().message().c_str());
    return 1;
  }
  cudaStream_t st = nullptr;
  cudaStreamCreate(&st);
  cudnnSetStream(handle->get(), st);
  auto tws = DeviceBuffer::allocate(size_t{256} << 20);
  if (!tws) return 1;
  std::printf("cuDNN %zu, batch %d; ms of the fastest engine (TOPS = 2*MACs/time)\n", cudnnGetVersion(), batch);
  std::printf("%-24s %9s %9s %9s %7s %7s  %s\n", "C:K:RxR/s@H(+res)", "fp16", "i8->i8", "i8->f16", "x i8", "x f16",
              "int8->int8 engine");
  std::mt19937 rng(1);
  double sum16 = 0, sum8 = 0, sum8h = 0;
  for (const Layer& l : parse_layers(spec)) {
    const int64_t pad = l.r / 2;
    const int64_t oh = (l.hin + 2 * pad - l.r) / l.stride + 1;
    const int64_t cp = (l.c + 15) / 16 * 16;
    GraphConvProblem p;
    p.nhwc = true;
    p.n = batch, p.c = l.c, p.h = p.w = l.hin, p.k = l.k, p.cg = l.c, p.r = p.s = l.r, p.oh = p.ow = oh;
    p.pad[0] = p.pad[1] = pad;
    p.stride[0] = p.stride[1] = l.stride;
    p.fused = true;
    p.bias = true;
    p.residual = l.residual;
    p.act = GraphConvProblem::Act::kSilu;
    // Random weights: fp16 and int8 copies.
    std::vector<uint16_t> w16(static_cast<size_t>(l.k * l.c * l.r * l.r));
    std::vector<int8_t> w8(static_cast<size_t>(l.k * cp * l.r * l.r), 0);
    std::uniform_int_distribution<int> d(-60, 60);
    for (auto& v : w16) v = static_cast<uint16_t>(0x2000 + d(rng) + 60);  // small positive halves
    for (auto& v : w8) v = static_cast<int8_t>(d(rng));
    auto wb16 = DeviceBuffer::allocate(w16.size() * 2);
    auto wb8 = DeviceBuffer::allocate(w8.size());
    if (!wb16 || !wb8 || !wb16->upload(w16.data(), w16.size() * 2).is_ok() || !wb8->upload(w8.data(), w8.size()).is_ok())
      return 1;
    p.dtype = CUDNN_DATA_HALF;
    Timed t16 = run(handle->get(), st, *tws, p, wb16->get());
    p.dtype = CUDNN_DATA_INT8;
    p.c = p.cg = cp;
    p.y_dtype = CUDNN_DATA_INT8;
    Timed t8 = l.k % 16 == 0 ? run(handle->get(), st, *tws, p, wb8->get()) : Timed{};
    p.y_dtype = CUDNN_DATA_HALF;
    Timed t8h = run(handle->get(), st, *tws, p, wb8->get());
    char name[64];
    std::snprintf(name, sizeof name, "%lld:%lld:%lldx%lld/%lld@%lld%s", (long long)l.c, (long long)l.k, (long long)l.r,
                  (long long)l.r, (long long)l.stride, (long long)l.hin, l.residual ? "+res" : "");
    auto ratio = [](float a, float b) { return a > 0 && b > 0 ? a / b : 0.f; };
    std::printf("%-24s %9.4f %9.4f %9.4f %6.2fx %6.2fx  %s\n", name, t16.ms, t8.ms, t8h.ms, ratio(t16.ms, t8.ms),
                ratio(t16.ms, t8h.ms), t8.info.c_str());
    if (t16.ms > 0 && t8.ms > 0 && t8h.ms > 0) sum16 += t16.ms, sum8 += t8.ms, sum8h += t8h.ms;
    else if (t8.ms <= 0 || t8h.ms <= 0) std::printf("    (int8 half-out: %s)\n", t8h.info.c_str());
  }
  std::printf("sum over layers both ran: fp16 %.4f ms, int8->int8 %.4f ms (%.2fx), int8->half %.4f ms (%.2fx)\n", sum16,
              sum8, sum8 > 0 ? sum16 / sum8 : 0.0, sum8h, sum8h > 0 ? sum16 / sum8h : 0.0);
  cudaStreamDestroy(st);
  return 0;
}
