// Times the CPU Conv kernel (oneDNN) on YOLOv5s-like layers, NCHW in/out as the executor sees them,
// for both activation layouts: oneDNN's preferred blocked layout with reorders (default) and plain
// NCHW (QYOLO_CONV_LAYOUT=plain). Prints the best time over a few runs and GFLOP/s.
//   bench_cpu_conv [runs]        (thread count: OMP_NUM_THREADS)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "backends/cpu/cpu_kernel.h"
#include "ir/op_registry.h"

using namespace qyolo;

namespace {

struct Layer {
  const char* what;
  int64_t c, h, w, m, k, s, p;
  bool residual;
};

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best time in seconds of `runs` runs (after one warm-up), or a negative value on error.
double time_layer(const Layer& l, const char* layout, int runs) {
  setenv("QYOLO_CONV_LAYOUT", layout, 1);
  Node n;
  n.name = l.what;
  n.op_type = "Conv";
  n.inputs = {"x", "w", "b"};
  if (l.residual) n.inputs.push_back("r");
  n.outputs = {"y"};
  n.attrs["kernel_shape"] = std::vector<int64_t>{l.k, l.k};
  n.attrs["strides"] = std::vector<int64_t>{l.s, l.s};
  n.attrs["pads"] = std::vector<int64_t>{l.p, l.p, l.p, l.p};
  n.attrs["qyolo_activation"] = std::string("silu");
  const int64_t oh = (l.h + 2 * l.p - l.k) / l.s + 1, ow = (l.w + 2 * l.p - l.k) / l.s + 1;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  auto rnd = [&](Shape s) {
    Tensor t(DataType::kFloat32, std::move(s));
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
    return t;
  };
  std::vector<Tensor> ins = {rnd({1, l.c, l.h, l.w}), rnd({l.m, l.c, l.k, l.k}), rnd({l.m})};
  if (l.residual) ins.push_back(rnd({1, l.m, oh, ow}));
  std::vector<ValueDesc> descs;
  for (size_t i = 0; i < ins.size(); ++i)
    descs.push_back({DataType::kFloat32, ins[i].shape(),
                     i == 1 || i == 2 ? std::optional<Tensor>(ins[i]) : std::nullopt});
  InferContext ctx{n, 13, {}, {}};
  for (auto& d : descs) ctx.inputs.push_back(&d);
  auto kernel = make_cpu_conv2d(n);
  if (!infer_node(ctx).is_ok() || !kernel.is_ok() || !(*kernel)->prepare(n, ctx.inputs, ctx.outputs).is_ok())
    return -1;
  Tensor workspace = give_own_workspace(**kernel);
  std::vector<const Tensor*> in_ptrs;
  for (auto& t : ins) in_ptrs.push_back(&t);
  double best = 1e30;
  for (int r = 0; r <= runs; ++r) {
    Tensor y = Tensor::uninitialized(DataType::kFloat32, ctx.outputs[0].shape);  // as the executor does
    Tensor* out = &y;
    double t0 = now();
    if (!(*kernel)->run(in_ptrs, std::span<Tensor* const>(&out, 1)).is_ok()) return -1;
    if (r > 0) best = std::min(best, now() - t0);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::atoi(argv[1]) : 10;
  const Layer layers[] = {
      {"stem 3x640x640 k6s2 ->32", 3, 640, 640, 32, 6, 2, 2, false},
      {"32x320x320 k3s2 ->64", 32, 320, 320, 64, 3, 2, 1, false},
      {"32x160x160 k3s1 ->32 +res", 32, 160, 160, 32, 3, 1, 1, true},
      {"128x80x80 k1 ->128", 128, 80, 80, 128, 1, 1, 0, false},
      {"256x40x40 k3 ->256", 256, 40, 40, 256, 3, 1, 1, false},
      {"256x40x40 k3 ->256 +res", 256, 40, 40, 256, 3, 1, 1, true},
      {"512x20x20 k1 ->512", 512, 20, 20, 512, 1, 1, 0, false},
  };
  std::printf("%-28s %8s %22s %22s\n", "layer (SiLU fused)", "GFLOP", "plain NCHW ms GFLOP/s",
              "blocked+reorders");
  for (const auto& l : layers) {
    const int64_t oh = (l.h + 2 * l.p - l.k) / l.s + 1, ow = (l.w + 2 * l.p - l.k) / l.s + 1;
    const double gflop = 2.0 * l.m * oh * ow * l.c * l.k * l.k * 1e-9;
    const double tp = time_layer(l, "plain", runs), tb = time_layer(l, "blocked", runs);
    std::printf("%-28s %8.3f %10.2f %10.1f  %10.2f %10.1f\n", l.what, gflop, tp * 1e3, gflop / tp, tb * 1e3,
                gflop / tb);
  }
  return 0;
}
