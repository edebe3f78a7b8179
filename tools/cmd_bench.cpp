// `qyolo bench`: trtexec-style timing of the network (synthetic input), with a per-layer profile.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <numeric>
#include <random>

#include "cmd_common.h"
#include "commands.h"
#include "runtime/engine_impl.h"

namespace qyolo::cli {

namespace {
struct BenchArgs {
  EngineArgs engine;
  std::string shapes;
  int warmup = 3, iterations = 20;
  bool dump_profile = false;
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(pos);
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

Status run_bench(const BenchArgs& a) {
  if (a.iterations <= 0) return invalid_argument("--iterations must be positive");
  QYOLO_ASSIGN_OR_RETURN(auto engine, open_engine(a.engine));
  Shape shape = engine->profile().opt;
  if (!a.shapes.empty()) {
    QYOLO_ASSIGN_OR_RETURN(shape, parse_shape_spec(a.shapes));
  }
  QYOLO_ASSIGN_OR_RETURN(auto ctx, engine->create_context());
  QYOLO_ASSIGN_OR_RETURN(CpuExecutor * exec, ctx->impl().executor_for(shape));
  Tensor input = Tensor::uninitialized(DataType::kFloat32, shape);
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> dist(0.f, 1.f);
  for (int64_t i = 0; i < input.numel(); ++i) input.data<float>()[i] = dist(rng);
  const std::string in_name = engine->info().input_name;
  std::map<std::string, Tensor> out;
  for (int i = 0; i < a.warmup; ++i) QYOLO_RETURN_IF_ERROR(exec->run({{in_name, input}}, out));
  std::vector<double> lat;
  std::vector<double> layer_sum;
  std::vector<double> steps;
  for (int i = 0; i < a.iterations; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    QYOLO_RETURN_IF_ERROR(exec->run({{in_name, input}}, out, nullptr, a.dump_profile ? &steps : nullptr));
    lat.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (a.dump_profile) {
      layer_sum.resize(steps.size(), 0.0);
      for (size_t k = 0; k < steps.size(); ++k) layer_sum[k] += steps[k];
    }
  }
  const double batch = static_cast<double>(shape[0]);
  const double median = percentile(lat, 50);
  std::printf("=== qyolo bench: %s  %s %s  shape %s ===\n", engine->info().source.c_str(),
              device_name(engine->options().device), precision_name(engine->options().precision),
              shape_str(shape).c_str());
  std::printf("iterations %d (warm-up %d)\n", a.iterations, a.warmup);
  std::printf("latency ms: min %.2f  median %.2f  mean %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
              *std::min_element(lat.begin(), lat.end()), median,
              std::accumulate(lat.begin(), lat.end(), 0.0) / static_cast<double>(lat.size()), percentile(lat, 90),
              percentile(lat, 99), *std::max_element(lat.begin(), lat.end()));
  std::printf("throughput: %.2f images/s (batch %.0f, median)\n", batch * 1000.0 / median, batch);
  if (a.dump_profile) {
    const auto& nodes = exec->graph().graph.nodes;
    std::vector<size_t> order(nodes.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return layer_sum[x] > layer_sum[y]; });
    double total = std::accumulate(layer_sum.begin(), layer_sum.end(), 0.0);
    std::printf("\n%-50s %-12s %10s %7s\n", "layer", "op", "avg ms", "%");
    for (size_t i : order) {
      std::string op = nodes[i].op_type;
      if (nodes[i].has_attr("qyolo_input_scale")) op += "[int8]";
      std::printf("%-50.50s %-12s %10.3f %6.1f%%\n", nodes[i].name.c_str(), op.c_str(),
                  layer_sum[i] * 1e3 / a.iterations, 100.0 * layer_sum[i] / total);
    }
  }
  return Status::ok();
}
}  // namespace

void register_bench(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("bench", "time the network (trtexec-style): latency percentiles, throughput, profile");
  auto a = std::make_shared<BenchArgs>();
  add_engine_options(cmd, a->engine);
  cmd->add_option("--shapes", a->shapes, "input shape, e.g. images:1x3x640x640 (default: profile opt)");
  cmd->add_option("--warmup", a->warmup, "warm-up runs")->capture_default_str();
  cmd->add_option("--iterations", a->iterations, "timed runs")->capture_default_str();
  cmd->add_flag("--dump-profile", a->dump_profile, "per-layer times, slowest first");
  cmd->callback([&exit_code, a] {
    Status st = run_bench(*a);
    exit_code = st ? 0 : report("bench", st);
  });
}

}  // namespace qyolo::cli
