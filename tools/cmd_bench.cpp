// `qyolo bench`: trtexec-style timing of the network (synthetic input), with a per-layer profile.
//
// CPU engines: host latency of ExecutionContext runs. CUDA engines: every query copies the input
// from pinned host memory (H2D), enqueues the network (optionally replayed as a captured CUDA
// graph), copies the output back (D2H) and waits; --streams N runs N execution contexts on N
// streams from N threads at once (each context owns its executor: one enqueue in flight each).
// Reported: throughput (queries and images per second over the wall time), end-to-end host
// latency, GPU compute time (events around the enqueue), H2D and D2H times.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <latch>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <thread>

#include "cmd_common.h"
#include "commands.h"
#include "runtime/engine_impl.h"

#ifdef QYOLO_HAS_CUDA
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_executor.h"
#endif

namespace qyolo::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct BenchArgs {
  EngineArgs engine;
  std::string shapes;
  // -1: the device's default (cpu: 3 warm-up, 20 runs, no minimum duration; cuda: 20, 100, 3 s).
  int warmup = -1, iterations = -1;
  double duration = -1;
  int streams = 1;
  bool cuda_graph = false;
  bool dump_profile = false;
  std::string json;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(pos);
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

struct Stats {
  double min = 0, mean = 0, median = 0, p90 = 0, p99 = 0, max = 0, total = 0;
  size_t n = 0;
};

Stats stats_of(const std::vector<double>& v) {
  Stats s;
  if (v.empty()) return s;
  s.n = v.size();
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  s.total = std::accumulate(v.begin(), v.end(), 0.0);
  s.mean = s.total / static_cast<double>(v.size());
  s.median = percentile(v, 50);
  s.p90 = percentile(v, 90);
  s.p99 = percentile(v, 99);
  return s;
}

nlohmann::json stats_json(const Stats& s) {
  return {{"min_ms", s.min}, {"max_ms", s.max}, {"mean_ms", s.mean}, {"median_ms", s.median},
          {"p90_ms", s.p90}, {"p99_ms", s.p99}, {"count", s.n}};
}

Status write_json(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return Status::ok();
  QYOLO_RETURN_IF_ERROR(
      write_text_atomic(path, j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"));
  std::printf("wrote %s\n", path.c_str());
  return Status::ok();
}

nlohmann::json header_json(const Engine& engine, const Shape& shape) {
  return {{"model", engine.info().source},
          {"device", device_name(engine.options().device)},
          {"precision", precision_name(engine.options().precision)},
          {"shape", shape_str(shape)},
          {"batch", shape[0]}};
}

// Runs while fewer than `iterations` queries are done or less than `duration` seconds passed.
bool keep_going(int done, int iterations, double duration, Clock::time_point start) {
  if (done < iterations) return true;
  return std::chrono::duration<double>(Clock::now() - start).count() < duration;
}

// ---- CPU ---------------------------------------------------------------------------------------

Status bench_cpu(const BenchArgs& a, const Engine& engine, const Shape& shape) {
  if (a.cuda_graph || a.streams != 1)
    return invalid_argument(
        "--cuda-graph and --streams need a cuda engine (build with --device cuda); this engine "
        "runs on cpu");
  const int warmup = a.warmup >= 0 ? a.warmup : 3;
  const int iterations = a.iterations >= 0 ? a.iterations : 20;
  const double duration = a.duration >= 0 ? a.duration : 0.0;
  QYOLO_ASSIGN_OR_RETURN(auto ctx, engine.create_context());
  QYOLO_ASSIGN_OR_RETURN(CpuExecutor * exec, ctx->impl().executor_for(shape));
  std::mt19937 rng(0);
  Tensor input;
  if (engine.options().input_format == InputFormat::kUint8Nhwc) {  // the letterboxed bytes, NHWC
    input = Tensor::uninitialized(DataType::kUInt8, {shape[0], shape[2], shape[3], shape[1]});
    for (int64_t i = 0; i < input.numel(); ++i) input.data<uint8_t>()[i] = static_cast<uint8_t>(rng() & 0xFF);
  } else {
    input = Tensor::uninitialized(DataType::kFloat32, shape);
    std::uniform_real_distribution<float> dist(0.f, 1.f);
    for (int64_t i = 0; i < input.numel(); ++i) input.data<float>()[i] = dist(rng);
  }
  const std::string in_name = engine.info().input_name;
  std::map<std::string, Tensor> out;
  for (int i = 0; i < warmup; ++i) QYOLO_RETURN_IF_ERROR(exec->run({{in_name, input}}, out));
  std::vector<double> lat;
  std::vector<double> layer_sum;
  std::vector<double> steps;
  const auto start = Clock::now();
  while (keep_going(static_cast<int>(lat.size()), iterations, duration, start)) {
    auto t0 = Clock::now();
    QYOLO_RETURN_IF_ERROR(exec->run({{in_name, input}}, out, nullptr, a.dump_profile ? &steps : nullptr));
    lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (a.dump_profile) {
      layer_sum.resize(steps.size(), 0.0);
      for (size_t k = 0; k < steps.size(); ++k) layer_sum[k] += steps[k];
    }
  }
  const double wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  const double batch = static_cast<double>(shape[0]);
  const Stats s = stats_of(lat);
  const double qps = static_cast<double>(lat.size()) / wall_s;
  std::printf("=== qyolo bench: %s  %s %s  shape %s ===\n", engine.info().source.c_str(),
              device_name(engine.options().device), precision_name(engine.options().precision),
              shape_str(shape).c_str());
  std::printf("iterations %zu (warm-up %d) in %.2f s\n", lat.size(), warmup, wall_s);
  std::printf("latency ms: min %.2f  median %.2f  mean %.2f  p90 %.2f  p99 %.2f  max %.2f\n", s.min, s.median,
              s.mean, s.p90, s.p99, s.max);
  std::printf("throughput: %.2f images/s (batch %.0f, median); %.2f qps, %.2f images/s (wall time)\n",
              batch * 1000.0 / s.median, batch, qps, qps * batch);
  if (a.dump_profile && !lat.empty()) {
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
                  layer_sum[i] * 1e3 / static_cast<double>(lat.size()), 100.0 * layer_sum[i] / total);
    }
  }
  nlohmann::json j = header_json(engine, shape);
  j["warmup"] = warmup;
  j["queries"] = lat.size();
  j["wall_s"] = wall_s;
  j["qps"] = qps;
  j["images_per_s"] = qps * batch;
  j["latency"] = stats_json(s);
  return write_json(a.json, j);
}

// ---- CUDA --------------------------------------------------------------------------------------

#ifdef QYOLO_HAS_CUDA

void print_stats(const char* label, const Stats& s) {
  std::printf(
      "%-18s min = %.4f ms, max = %.4f ms, mean = %.4f ms, median = %.4f ms, p90 = %.4f ms, p99 = %.4f ms\n",
      label, s.min, s.max, s.mean, s.median, s.p90, s.p99);
}

// One execution context with its stream, pinned host and device buffers, events and (with
// --cuda-graph) the captured enqueue. Timed by one thread.
struct Lane {
  std::unique_ptr<ExecutionContext> ctx;
  CudaExecutor* exec = nullptr;
  cuda::Stream stream;
  std::vector<cuda::DeviceBuffer> d_in, d_out;
  std::vector<cuda::HostBuffer> h_in, h_out;
  std::vector<size_t> in_bytes, out_bytes;
  std::vector<const void*> in_ptrs;
  std::vector<void*> out_ptrs;
  cuda::Event ev[4];  // before H2D, before compute, after compute, after D2H
  cuda::Graph graph;
  cuda::GraphExec graph_exec;
  std::vector<double> host_ms, gpu_ms, h2d_ms, d2h_ms;
  Clock::time_point end;
  Status status;
};

Result<std::unique_ptr<Lane>> make_lane(const Engine& engine, const Shape& shape, bool cuda_graph,
                                        uint32_t seed) {
  auto l = std::make_unique<Lane>();
  QYOLO_ASSIGN_OR_RETURN(l->ctx, engine.create_context());
  QYOLO_RETURN_IF_ERROR(l->ctx->set_input_shape(shape));
  QYOLO_ASSIGN_OR_RETURN(l->exec, l->ctx->impl().cuda_executor_for(shape));
  QYOLO_ASSIGN_OR_RETURN(auto bindings, l->ctx->bindings());
  QYOLO_ASSIGN_OR_RETURN(l->stream, cuda::make_stream());
  for (auto& e : l->ev) {
    QYOLO_ASSIGN_OR_RETURN(e, cuda::make_event(/*timing=*/true));
  }
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (const TensorBinding& b : bindings) {
    QYOLO_ASSIGN_OR_RETURN(auto host, cuda::HostBuffer::allocate(b.nbytes()));
    QYOLO_ASSIGN_OR_RETURN(auto dev, cuda::DeviceBuffer::allocate(b.nbytes()));
    if (b.is_input) {
      if (b.dtype == DataType::kFloat32) {
        float* p = host.as<float>();
        for (int64_t i = 0; i < shape_numel(b.shape); ++i) p[i] = u(rng);
      } else if (b.dtype == DataType::kUInt8) {  // uint8-nhwc engines: image bytes
        for (size_t i = 0; i < b.nbytes(); ++i) host.as<uint8_t>()[i] = static_cast<uint8_t>(rng() & 0xFF);
      } else {
        std::memset(host.get(), 0, b.nbytes());
      }
      l->in_ptrs.push_back(dev.get());
      l->in_bytes.push_back(b.nbytes());
      l->h_in.push_back(std::move(host));
      l->d_in.push_back(std::move(dev));
    } else {
      l->out_ptrs.push_back(dev.get());
      l->out_bytes.push_back(b.nbytes());
      l->h_out.push_back(std::move(host));
      l->d_out.push_back(std::move(dev));
    }
  }
  if (cuda_graph) {
    cudaStream_t s = l->stream.get();
    QYOLO_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    Status st = l->ctx->enqueue(l->in_ptrs, l->out_ptrs, s);
    cudaGraph_t g = nullptr;
    cudaError_t end = cudaStreamEndCapture(s, &g);
    if (g != nullptr) l->graph = cuda::Graph(g);
    if (!st) return st.with_context("capturing the enqueue into a CUDA graph");
    QYOLO_CUDA_CHECK(end);
    cudaGraphExec_t ge = nullptr;
    QYOLO_CUDA_CHECK(cudaGraphInstantiate(&ge, l->graph.get(), 0));
    l->graph_exec = cuda::GraphExec(ge);
  }
  return l;
}

// One query: H2D, compute, D2H, wait. Records times when `record`.
Status run_query(Lane& l, bool record) {
  cudaStream_t s = l.stream.get();
  const auto t0 = Clock::now();
  QYOLO_CUDA_CHECK(cudaEventRecord(l.ev[0].get(), s));
  for (size_t i = 0; i < l.d_in.size(); ++i)
    QYOLO_CUDA_CHECK(
        cudaMemcpyAsync(l.d_in[i].get(), l.h_in[i].get(), l.in_bytes[i], cudaMemcpyHostToDevice, s));
  QYOLO_CUDA_CHECK(cudaEventRecord(l.ev[1].get(), s));
  if (l.graph_exec) {
    QYOLO_CUDA_CHECK(cudaGraphLaunch(l.graph_exec.get(), s));
  } else {
    QYOLO_RETURN_IF_ERROR(l.ctx->enqueue(l.in_ptrs, l.out_ptrs, s));
  }
  QYOLO_CUDA_CHECK(cudaEventRecord(l.ev[2].get(), s));
  for (size_t i = 0; i < l.d_out.size(); ++i)
    QYOLO_CUDA_CHECK(
        cudaMemcpyAsync(l.h_out[i].get(), l.d_out[i].get(), l.out_bytes[i], cudaMemcpyDeviceToHost, s));
  QYOLO_CUDA_CHECK(cudaEventRecord(l.ev[3].get(), s));
  QYOLO_CUDA_CHECK(cudaEventSynchronize(l.ev[3].get()));
  const auto t1 = Clock::now();
  if (!record) return Status::ok();
  float h2d = 0, gpu = 0, d2h = 0;
  QYOLO_CUDA_CHECK(cudaEventElapsedTime(&h2d, l.ev[0].get(), l.ev[1].get()));
  QYOLO_CUDA_CHECK(cudaEventElapsedTime(&gpu, l.ev[1].get(), l.ev[2].get()));
  QYOLO_CUDA_CHECK(cudaEventElapsedTime(&d2h, l.ev[2].get(), l.ev[3].get()));
  l.host_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  l.h2d_ms.push_back(h2d);
  l.gpu_ms.push_back(gpu);
  l.d2h_ms.push_back(d2h);
  return Status::ok();
}

Status bench_cuda(const BenchArgs& a, const Engine& engine, const Shape& shape) {
  if (a.streams < 1 || a.streams > 64) return invalid_argument("--streams must be in 1..64");
  const int warmup = a.warmup >= 0 ? a.warmup : 20;
  const int iterations = a.iterations >= 0 ? a.iterations : 100;
  const double duration = a.duration >= 0 ? a.duration : 3.0;
  const Engine::Impl& ei = engine.impl();
  if (!ei.load_note.empty()) std::fprintf(stderr, "qyolo: note: %s\n", ei.load_note.c_str());
  QYOLO_ASSIGN_OR_RETURN(CudaTarget here, current_cuda_target());
  int device = 0;
  QYOLO_CUDA_CHECK(cudaGetDevice(&device));

  // Contexts are built one after another (the first may time tactics for a shape other than the
  // engine's opt shape; the others reuse them through the engine).
  const auto t_build = Clock::now();
  std::vector<std::unique_ptr<Lane>> lanes;
  for (int i = 0; i < a.streams; ++i) {
    auto lane = make_lane(engine, shape, a.cuda_graph, static_cast<uint32_t>(i));
    if (!lane) return lane.status().with_context("stream " + std::to_string(i));
    lanes.push_back(std::move(*lane));
  }
  const double setup_s = std::chrono::duration<double>(Clock::now() - t_build).count();
  for (auto& l : lanes)
    for (int i = 0; i < warmup; ++i) QYOLO_RETURN_IF_ERROR(run_query(*l, false));

  std::latch ready(a.streams + 1);
  std::atomic<bool> failed{false};
  Clock::time_point start;
  std::vector<std::thread> threads;
  for (auto& lp : lanes) {
    Lane* l = lp.get();
    threads.emplace_back([&, l] {
      l->status = cuda::to_status(cudaSetDevice(device), "cudaSetDevice", __FILE__, __LINE__);
      ready.arrive_and_wait();
      int done = 0;
      while (l->status && !failed.load(std::memory_order_relaxed) &&
             keep_going(done, iterations, duration, start)) {
        l->status = run_query(*l, true);
        ++done;
      }
      if (!l->status) failed = true;
      l->end = Clock::now();
    });
  }
  start = Clock::now();  // written before arriving: the threads read it after the latch
  ready.arrive_and_wait();
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < lanes.size(); ++i)
    if (!lanes[i]->status) return lanes[i]->status.with_context("stream " + std::to_string(i));

  Clock::time_point end = start;
  std::vector<double> host, gpu, h2d, d2h;
  for (auto& l : lanes) {
    end = std::max(end, l->end);
    host.insert(host.end(), l->host_ms.begin(), l->host_ms.end());
    gpu.insert(gpu.end(), l->gpu_ms.begin(), l->gpu_ms.end());
    h2d.insert(h2d.end(), l->h2d_ms.begin(), l->h2d_ms.end());
    d2h.insert(d2h.end(), l->d2h_ms.begin(), l->d2h_ms.end());
  }
  const double wall_s = std::chrono::duration<double>(end - start).count();
  const double batch = static_cast<double>(shape[0]);
  const double qps = static_cast<double>(host.size()) / wall_s;
  const Stats s_host = stats_of(host), s_gpu = stats_of(gpu), s_h2d = stats_of(h2d), s_d2h = stats_of(d2h);
  size_t in_total = std::accumulate(lanes[0]->in_bytes.begin(), lanes[0]->in_bytes.end(), size_t{0});
  size_t out_total = std::accumulate(lanes[0]->out_bytes.begin(), lanes[0]->out_bytes.end(), size_t{0});
  const CudaExecutor& ex = *lanes[0]->exec;

  std::printf("=== qyolo bench: %s  cuda %s  shape %s ===\n", engine.info().source.c_str(),
              precision_name(engine.options().precision), shape_str(shape).c_str());
  std::printf("GPU: %s; engine built on %s\n", here.str(true).c_str(), ei.cuda_target.str(true).c_str());
  std::printf(
      "executor: %d steps, weights %.1f MiB, arena %.1f MiB, workspace %.1f MiB, %zu tactics; %d context%s "
      "set up in %.2f s\n",
      ex.num_steps(), ex.weight_bytes() / 1048576.0, ex.arena_bytes() / 1048576.0,
      ex.workspace_bytes() / 1048576.0, ex.tactics().size(), a.streams, a.streams == 1 ? "" : "s", setup_s);
  std::printf(
      "streams %d, cuda graph %s, warm-up %d per stream, input %.2f MiB, output %.2f MiB (pinned host)\n",
      a.streams, a.cuda_graph ? "on" : "off", warmup, in_total / 1048576.0, out_total / 1048576.0);
  std::printf("\n=== Performance summary ===\n");
  std::printf("Throughput: %.2f qps, %.1f images/s (batch %.0f, %zu queries in %.3f s)\n", qps, qps * batch,
              batch, host.size(), wall_s);
  print_stats("Latency (host):", s_host);
  print_stats("H2D Latency:", s_h2d);
  print_stats("GPU Compute Time:", s_gpu);
  print_stats("D2H Latency:", s_d2h);
  std::printf("Total Host Walltime: %.3f s\n", wall_s);
  std::printf("Total GPU Compute Time: %.3f s\n", s_gpu.total / 1000.0);
  std::printf(
      "Latency (host) is H2D + compute + D2H of one query as the host sees it; GPU compute time is the "
      "enqueue%s between CUDA events.%s\n",
      a.cuda_graph ? " (CUDA graph launch)" : "",
      a.streams > 1 ? " With several streams, per-query times include waiting for the others." : "");

  std::string profile;
  if (a.dump_profile) {
    Lane& l = *lanes[0];
    QYOLO_ASSIGN_OR_RETURN(
        profile, l.exec->profile(l.in_ptrs, l.out_ptrs, l.stream.get(), std::max(10, iterations / 10)));
    std::printf("\n=== Profile (stream 0, per step, slowest first) ===\n%s", profile.c_str());
  }

  nlohmann::json j = header_json(engine, shape);
  j["gpu"] = here.str(true);
  j["engine_gpu"] = ei.cuda_target.str(true);
  j["streams"] = a.streams;
  j["cuda_graph"] = a.cuda_graph;
  j["warmup"] = warmup;
  j["queries"] = host.size();
  j["wall_s"] = wall_s;
  j["qps"] = qps;
  j["images_per_s"] = qps * batch;
  j["latency"] = stats_json(s_host);
  j["gpu_compute"] = stats_json(s_gpu);
  j["h2d"] = stats_json(s_h2d);
  j["d2h"] = stats_json(s_d2h);
  j["total_gpu_compute_s"] = s_gpu.total / 1000.0;
  j["steps"] = ex.num_steps();
  j["tactics"] = ex.tactics().size();
  j["arena_bytes"] = ex.arena_bytes();
  if (!profile.empty()) j["profile"] = profile;
  return write_json(a.json, j);
}
#endif  // QYOLO_HAS_CUDA

Status run_bench(const BenchArgs& a) {
  if (a.iterations == 0 || a.iterations < -1) return invalid_argument("--iterations must be positive");
  if (a.warmup < -1) return invalid_argument("--warmup must be >= 0");
  if (a.duration < 0 && a.duration != -1) return invalid_argument("--duration must be >= 0");
  QYOLO_ASSIGN_OR_RETURN(auto engine, open_engine(a.engine));
  Shape shape = engine->profile().opt;
  if (!a.shapes.empty()) {
    std::string name;
    QYOLO_ASSIGN_OR_RETURN(shape, parse_shape_spec(a.shapes, &name));
    if (!name.empty() && name != engine->info().input_name)
      return invalid_argument("--shapes names input '" + name + "', the engine's input is '" +
                              engine->info().input_name + "'");
  }
  if (shape.size() != 4 || !engine->profile().contains(shape)) {
    const ShapeProfile p = engine->profile();
    return invalid_argument("--shapes " + shape_str(shape) + " is outside the engine's profile (min " +
                            shape_str(p.min) + ", opt " + shape_str(p.opt) + ", max " + shape_str(p.max) +
                            ")");
  }
  if (engine->options().device == Device::kCpu) return bench_cpu(a, *engine, shape);
#ifdef QYOLO_HAS_CUDA
  return bench_cuda(a, *engine, shape);
#else
  return unsupported(
      "this qyolo was built without CUDA (no nvcc at build time); bench a --device cpu engine");
#endif
}
}  // namespace

void register_bench(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "bench", "time the network (trtexec-style): latency percentiles, throughput, profile");
  auto a = std::make_shared<BenchArgs>();
  add_engine_options(cmd, a->engine);
  cmd->add_option("--shapes", a->shapes, "input shape, e.g. images:32x3x640x640 (default: profile opt)");
  cmd->add_option("--warmup", a->warmup, "warm-up queries per stream (default: cpu 3, cuda 20)");
  cmd->add_option("--iterations", a->iterations,
                  "at least this many timed queries per stream (default: cpu 20, cuda 100)");
  cmd->add_option("--duration", a->duration, "and for at least this many seconds (default: cpu 0, cuda 3)");
  cmd->add_option("--streams", a->streams, "cuda: contexts running concurrently, one stream and thread each")
      ->capture_default_str();
  cmd->add_flag("--cuda-graph", a->cuda_graph, "cuda: replay the enqueue as a captured CUDA graph");
  cmd->add_flag("--dump-profile", a->dump_profile, "per-layer times, slowest first");
  cmd->add_option("--json", a->json, "also write the results as JSON to this file");
  cmd->callback([&exit_code, a] {
    Status st = run_bench(*a);
    exit_code = st ? 0 : report("bench", st);
  });
}

}  // namespace qyolo::cli
