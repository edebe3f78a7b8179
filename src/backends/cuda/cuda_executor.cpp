// CudaExecutor: build (the stages of executor_impl.h in order, and the engine-level INT8/FP16
// choice), enqueue, run, profile.
#include "backends/cuda/cuda_executor.h"

#include <algorithm>
#include <iomanip>
#include <set>
#include <sstream>

#include "backends/cuda/executor_impl.h"
#include "quant/int8_dataflow.h"

namespace qyolo {

using cuda::Layout;
using cuda::TensorInfo;
using namespace cuda_exec;

CudaExecutor::~CudaExecutor() {
  if (side_stream_) cudaStreamSynchronize(side_stream_.get());
  if (stream_) cudaStreamSynchronize(stream_.get());
}

// --int8 --fp16 with the per-layer choice: the cost model sums isolated kernel times, which
// misses launch gaps, concurrency, cache effects (at batch 1 they dominate) and the passes that
// are not convs (concat copies, quantize-concats). So the modelled mix is built, then the engines
// with every eligible conv in FP16 and in INT8 (their timings are mostly cached by then), each is
// replayed as a CUDA graph, and the fastest is kept. The verdict is a tactic (an executor built
// from these tactics rebuilds the same one without timing); engines record the choice as their
// precision plan instead (conv_precisions()), and executors given a plan lower it as it is.
Result<std::unique_ptr<CudaExecutor>> CudaExecutor::build(SpecializedGraph graph,
                                                          const CudaBuildOptions& options) {
  // Asymmetric grids are a CPU plan's (src/quant/quant_params.h): the CUDA INT8 kernels subtract no
  // zero point, so a graph marked with one would compute another network.
  for (const Node& n : graph.graph.nodes)
    if (n.has_attr(kInputZeroPointAttr) || n.has_attr(kInt8OutputZeroPointAttr))
      return unsupported(n.describe() +
                         ": the CUDA INT8 kernels quantise symmetrically (no zero point); "
                         "build this plan for the CPU, or with symmetric activations");
  if (options.plan) return build_variant(std::move(graph), options, PrecisionVariant::kPlan);
  if (options.precision != CudaPrecision::kInt8 || !options.int8_fp16 || !options.int8_fp16_choose)
    return build_variant(std::move(graph), options, PrecisionVariant::kModelled);
  std::ostringstream key;
  key << "engine-precision:";
  for (const auto& in : graph.graph.inputs) key << shape_str(graph.values.at(in.name).shape) << ';';
  if (auto it = options.tactics.find(key.str());
      it != options.tactics.end() && it->second.size() == 1 && it->second[0] >= 0 && it->second[0] <= 2)
    return build_variant(std::move(graph), options, static_cast<PrecisionVariant>(it->second[0]));
  // The modelled mix, all FP16 and all INT8 (the later builds reuse the earlier ones' timings);
  // an engine with the same INT8 share as one already built is the same engine and is skipped.
  struct Candidate {
    PrecisionVariant variant;
    const char* name;
    std::unique_ptr<CudaExecutor> engine;
    float ms = 0.f;
  };
  std::vector<Candidate> cands;
  std::map<std::string, std::vector<int64_t>> tactics = options.tactics;
  for (auto [variant, name] : {std::pair{PrecisionVariant::kModelled, "this mix"},
                               std::pair{PrecisionVariant::kAllFp16, "every eligible conv FP16"},
                               std::pair{PrecisionVariant::kAllInt8, "every eligible conv INT8"}}) {
    CudaBuildOptions again = options;
    again.tactics = tactics;
    QYOLO_ASSIGN_OR_RETURN(auto e, build_variant(graph, again, variant));
    tactics = e->tactics_;  // a superset of the earlier builds'
    const double macs = e->cost().int8_macs;
    if (std::any_of(cands.begin(), cands.end(),
                    [&](const Candidate& c) { return c.engine->cost().int8_macs == macs; }))
      continue;
    cands.push_back({variant, name, std::move(e)});
  }
  const std::string precision_note = cands[0].engine->precision_note_;
  if (cands.size() > 1) {
    for (int round = 0; round < 2; ++round)  // each measured twice, interleaved; the best of the two
      for (auto& c : cands) {
        QYOLO_ASSIGN_OR_RETURN(float ms, c.engine->time_replay(30));
        c.ms = round == 0 ? ms : std::min(c.ms, ms);
      }
  }
  size_t best = 0;
  for (size_t i = 1; i < cands.size(); ++i)
    if (cands[i].ms < cands[best].ms) best = i;
  std::ostringstream note;
  note << precision_note << "; engines timed (CUDA graph):";
  for (const auto& c : cands) note << ' ' << c.name << ' ' << c.ms << " ms,";
  note << " kept " << cands[best].name;
  std::unique_ptr<CudaExecutor> kept = std::move(cands[best].engine);
  kept->tactics_ = std::move(tactics);
  kept->tactics_[key.str()] = {static_cast<int64_t>(cands[best].variant)};
  kept->precision_note_ = cands.size() > 1 ? note.str() : precision_note;
  return kept;
}

Result<float> CudaExecutor::time_replay(int iters) {
  std::vector<cuda::DeviceBuffer> bufs;
  std::vector<const void*> ins;
  std::vector<void*> outs;
  for (const auto& b : inputs_) {
    QYOLO_ASSIGN_OR_RETURN(auto d, cuda::DeviceBuffer::allocate(std::max<size_t>(b.nbytes(), 1)));
    QYOLO_CUDA_CHECK(cudaMemsetAsync(d.get(), 0, d.size(), stream_.get()));
    ins.push_back(d.get());
    bufs.push_back(std::move(d));
  }
  for (const auto& b : outputs_) {
    QYOLO_ASSIGN_OR_RETURN(auto d, cuda::DeviceBuffer::allocate(std::max<size_t>(b.nbytes(), 1)));
    outs.push_back(d.get());
    bufs.push_back(std::move(d));
  }
  QYOLO_RETURN_IF_ERROR(enqueue(ins, outs, stream_.get()));  // first launch outside the capture
  QYOLO_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  QYOLO_CUDA_CHECK(cudaStreamBeginCapture(stream_.get(), cudaStreamCaptureModeThreadLocal));
  Status st = enqueue(ins, outs, stream_.get());
  cudaGraph_t raw = nullptr;
  const cudaError_t end = cudaStreamEndCapture(stream_.get(), &raw);
  cuda::Graph graph(raw);
  QYOLO_RETURN_IF_ERROR(st);
  QYOLO_CUDA_CHECK(end);
  cudaGraphExec_t exec_raw = nullptr;
  QYOLO_CUDA_CHECK(cudaGraphInstantiate(&exec_raw, graph.get(), 0));
  cuda::GraphExec exec(exec_raw);
  return cuda::time_launches(stream_.get(), 3, iters, [&]() -> Status {
    QYOLO_CUDA_CHECK(cudaGraphLaunch(exec.get(), stream_.get()));
    return Status::ok();
  });
}

Result<std::unique_ptr<CudaExecutor>> CudaExecutor::build_variant(SpecializedGraph graph,
                                                                  const CudaBuildOptions& options,
                                                                  PrecisionVariant variant) {
  if (cuda::device_count() == 0) return device_error("no CUDA device is available");
  auto ex = std::unique_ptr<CudaExecutor>(new CudaExecutor());
  ex->graph_ = std::move(graph);
  ex->options_ = options;
  QYOLO_CUDA_CHECK(cudaSetDevice(options.device));
  cudaDeviceProp prop{};
  QYOLO_CUDA_CHECK(cudaGetDeviceProperties(&prop, options.device));
  ex->programmatic_capable_ = prop.major >= 9;
  ex->set_programmatic_launch(options.programmatic_launch);
  QYOLO_ASSIGN_OR_RETURN(ex->cudnn_, cuda::make_cudnn());
  QYOLO_ASSIGN_OR_RETURN(ex->cublaslt_, cuda::make_cublaslt());
  QYOLO_ASSIGN_OR_RETURN(ex->stream_, cuda::make_stream());
  QYOLO_CUDA_CHECK(cudnnSetStream(ex->cudnn_.get(), ex->stream_.get()));

  Impl im(*ex);
  cuda::DeviceBuffer tuning;
  std::map<std::string, std::vector<int64_t>> tune_cache = options.tactics;
  std::map<std::string, std::shared_ptr<void>> object_cache;
  im.pctx.cudnn = ex->cudnn_.get();
  im.pctx.cublaslt = ex->cublaslt_.get();
  im.pctx.stream = ex->stream_.get();
  im.pctx.options = &ex->options_;
  im.pctx.prop = &prop;
  im.pctx.opset = ex->graph_.graph.opset;
  im.pctx.tuning_workspace = &tuning;
  im.pctx.tune_cache = &tune_cache;
  im.pctx.object_cache = &object_cache;
  im.pctx.weight_bytes = &ex->weight_bytes_;
  im.compute_reaches_conv();
  // Values are referenced by pointer during a node's preparation: reserve generously.
  ex->values_.reserve(ex->graph_.values.size() * 3 + 16);

  const Graph& g = ex->graph_.graph;
  const bool nhwc = options.layout == CudaLayout::kNHWC ||
                    (options.layout == CudaLayout::kAuto && options.precision != CudaPrecision::kFp32);
  for (size_t k = 0; k < g.inputs.size(); ++k) {
    const ValueDesc& d = ex->graph_.values.at(g.inputs[k].name);
    int id = im.add_value(g.inputs[k].name, TensorInfo{d.dtype, d.shape, Layout::kPlain, nullptr, {}},
                          Storage::kInput);
    ex->values_[static_cast<size_t>(id)].binding = static_cast<int>(k);
    im.ids[g.inputs[k].name] = id;
    ex->inputs_.push_back({g.inputs[k].name, d.dtype, d.shape});
    ex->input_values_.push_back(id);
  }
  if (variant == PrecisionVariant::kPlan) {
    Status st = im.lower_plan_precisions(*options.plan);
    if (!st.is_ok()) return st.with_context(g.source_path);
  } else if (options.precision == CudaPrecision::kInt8 && options.int8_fp16 && options.int8_fp16_choose) {
    Status st = im.choose_conv_precisions(variant);
    if (!st.is_ok()) return st.with_context(g.source_path);
    std::ostringstream note;
    note << "per-layer INT8/FP16 choice: modelled conv + quantize time " << im.modelled_choice_ms
         << " ms (all FP16: " << im.modelled_fp16_ms << " ms)";
    ex->precision_note_ = note.str();
  }
  const NodePrecision float_precision =
      options.precision == CudaPrecision::kFp16 ||
              (options.precision == CudaPrecision::kInt8 && options.int8_fp16)
          ? NodePrecision::kFp16
          : NodePrecision::kFp32;
  for (const auto& node : g.nodes) {
    if (node.op_type == "Conv")
      ex->conv_precisions_[node.name] = im.int8_conv(node) ? NodePrecision::kInt8 : float_precision;
    Status st = im.add_node(node, nhwc);
    if (!st.is_ok()) return st.with_context(g.source_path);
  }
  // Outputs: written in place by their producer when possible, else converted/copied at the end.
  std::set<int> bound;
  for (size_t k = 0; k < g.outputs.size(); ++k) {
    const std::string& name = g.outputs[k].name;
    const ValueDesc& d = ex->graph_.values.at(name);
    ex->outputs_.push_back({name, d.dtype, d.shape});
    int v;
    if (auto it = im.ids.find(name); it != im.ids.end()) {
      v = it->second;
    } else if (d.value) {
      QYOLO_ASSIGN_OR_RETURN(v, im.constant_value(name, d.dtype));
    } else {
      return internal_error(g.source_path + ": graph output '" + name + "' is never computed");
    }
    Value& val = ex->values_[static_cast<size_t>(v)];
    if (val.storage == Storage::kArena && val.info.dtype == d.dtype && val.info.layout == Layout::kPlain &&
        !bound.count(v)) {
      val.storage = Storage::kOutput;
      val.binding = static_cast<int>(k);
      bound.insert(v);
      ex->output_values_.push_back(v);
      continue;
    }
    int out = im.add_value(name + "#out", TensorInfo{d.dtype, d.shape, Layout::kPlain, nullptr, {}},
                           Storage::kOutput);
    ex->values_[static_cast<size_t>(out)].binding = static_cast<int>(k);
    QYOLO_RETURN_IF_ERROR(im.add_convert_step(v, out, "output '" + name + "'"));
    ex->output_values_.push_back(out);
  }
  im.fuse_requantization();
  im.fuse_image_input();
  if (options.fuse_head_decode) im.fuse_yolo_decodes();
  QYOLO_RETURN_IF_ERROR(im.place_concats());  // may re-plan cuDNN convs: before the tuning state goes
  im.drop_unread_outputs();
  QYOLO_RETURN_IF_ERROR(im.finalize_kernels());  // may plan again too
  tuning.reset();
  object_cache.clear();
  ex->tactics_ = std::move(tune_cache);
  QYOLO_RETURN_IF_ERROR(im.assign_streams());

  im.plan_memory();
  QYOLO_ASSIGN_OR_RETURN(ex->arena_, cuda::DeviceBuffer::allocate(im.arena_size));
  size_t ws = 0;
  for (const auto& s : ex->steps_)
    if (!s.side) ws = std::max(ws, s.kernel->workspace_bytes());
  QYOLO_ASSIGN_OR_RETURN(ex->workspace_, cuda::DeviceBuffer::allocate(ws));
  ex->ptrs_.assign(ex->values_.size(), nullptr);
  for (size_t v = 0; v < ex->values_.size(); ++v) {
    const Value& val = ex->values_[v];
    if (val.storage == Storage::kArena) ex->ptrs_[v] = static_cast<char*>(ex->arena_.get()) + val.offset;
    if (val.storage == Storage::kConstant)
      ex->ptrs_[v] = ex->constants_[static_cast<size_t>(val.constant)].get();
  }
  size_t max_in = 0, max_out = 0;
  for (const auto& s : ex->steps_) {
    max_in = std::max(max_in, s.inputs.size());
    max_out = std::max(max_out, s.outputs.size());
  }
  ex->in_scratch_.resize(max_in);
  ex->out_scratch_.resize(max_out);
  QYOLO_CUDA_CHECK(cudaStreamSynchronize(ex->stream_.get()));
  return ex;
}

Status CudaExecutor::enqueue(const std::vector<const void*>& device_inputs,
                             const std::vector<void*>& device_outputs, cudaStream_t stream) {
  if (device_inputs.size() != inputs_.size())
    return invalid_argument("enqueue: " + std::to_string(device_inputs.size()) +
                            " inputs given, the engine has " + std::to_string(inputs_.size()));
  if (device_outputs.size() != outputs_.size())
    return invalid_argument("enqueue: " + std::to_string(device_outputs.size()) +
                            " outputs given, the engine has " + std::to_string(outputs_.size()));
  for (size_t k = 0; k < inputs_.size(); ++k) {
    if (device_inputs[k] == nullptr && inputs_[k].nbytes() > 0)
      return invalid_argument("enqueue: input '" + inputs_[k].name + "' is a null pointer");
    ptrs_[static_cast<size_t>(input_values_[k])] = const_cast<void*>(device_inputs[k]);
  }
  for (size_t k = 0; k < outputs_.size(); ++k) {
    if (device_outputs[k] == nullptr && outputs_[k].nbytes() > 0)
      return invalid_argument("enqueue: output '" + outputs_[k].name + "' is a null pointer");
    ptrs_[static_cast<size_t>(output_values_[k])] = device_outputs[k];
  }
  for (int v : slices_) {
    const Value& val = values_[static_cast<size_t>(v)];
    ptrs_[static_cast<size_t>(v)] =
        static_cast<char*>(ptrs_[static_cast<size_t>(val.alias_of)]) + val.view_offset;
  }
  QYOLO_CUDA_CHECK(cudnnSetStream(cudnn_.get(), stream));
  const cuda::LaunchContext main_lc{stream,          cudnn_.get(), workspace_.get(), workspace_.size(),
                                    cublaslt_.get(), programmatic_};
  const cuda::LaunchContext side_lc{side_stream_.get(),     cudnn_.get(),    side_workspace_.get(),
                                    side_workspace_.size(), cublaslt_.get(), programmatic_};
  bool cudnn_on_side = false;
  for (int f : start_forks_)
    QYOLO_CUDA_CHECK(cudaEventRecord(fork_events_[static_cast<size_t>(f)].get(), stream));
  for (const auto& s : steps_) {
    if (s.alias) {
      ptrs_[static_cast<size_t>(s.outputs[0])] = ptrs_[static_cast<size_t>(s.inputs[0])];
      continue;
    }
    for (size_t i = 0; i < s.inputs.size(); ++i)
      in_scratch_[i] = s.inputs[i] >= 0 ? ptrs_[static_cast<size_t>(s.inputs[i])] : nullptr;
    for (size_t i = 0; i < s.outputs.size(); ++i) out_scratch_[i] = ptrs_[static_cast<size_t>(s.outputs[i])];
    if (s.side) {
      QYOLO_CUDA_CHECK(
          cudaStreamWaitEvent(side_stream_.get(), fork_events_[static_cast<size_t>(s.wait_fork)].get(), 0));
    } else {
      for (int j : s.wait_joins)
        QYOLO_CUDA_CHECK(cudaStreamWaitEvent(stream, join_events_[static_cast<size_t>(j)].get(), 0));
    }
    if (s.side != cudnn_on_side) {  // one handle: cuDNN launches on the handle's stream
      QYOLO_CUDA_CHECK(cudnnSetStream(cudnn_.get(), s.side ? side_stream_.get() : stream));
      cudnn_on_side = s.side;
    }
    Status st = s.kernel->enqueue(s.side ? side_lc : main_lc,
                                  std::span<const void* const>(in_scratch_.data(), s.inputs.size()),
                                  std::span<void* const>(out_scratch_.data(), s.outputs.size()));
    if (!st.is_ok()) return st.with_context(graph_.graph.source_path + ": " + s.label);
    if (s.side)
      QYOLO_CUDA_CHECK(
          cudaEventRecord(join_events_[static_cast<size_t>(s.record_join)].get(), side_stream_.get()));
    if (s.record_fork >= 0)
      QYOLO_CUDA_CHECK(cudaEventRecord(fork_events_[static_cast<size_t>(s.record_fork)].get(), stream));
  }
  if (cudnn_on_side) QYOLO_CUDA_CHECK(cudnnSetStream(cudnn_.get(), stream));
  for (int j : end_joins_)
    QYOLO_CUDA_CHECK(cudaStreamWaitEvent(stream, join_events_[static_cast<size_t>(j)].get(), 0));
  return Status::ok();
}

Status CudaExecutor::run(const std::map<std::string, Tensor>& inputs,
                         std::map<std::string, Tensor>& outputs) {
  QYOLO_CUDA_CHECK(cudaSetDevice(options_.device));
  std::vector<cuda::DeviceBuffer> dev_in, dev_out;
  std::vector<const void*> in_ptrs;
  std::vector<void*> out_ptrs;
  cudaStream_t s = stream_.get();
  for (const auto& b : inputs_) {
    auto it = inputs.find(b.name);
    if (it == inputs.end()) return invalid_argument("input '" + b.name + "' was not provided");
    if (it->second.shape() != b.shape || it->second.dtype() != b.dtype)
      return invalid_argument("input '" + b.name + "' is " + dtype_name(it->second.dtype()) + " " +
                              shape_str(it->second.shape()) + ", the engine was built for " +
                              dtype_name(b.dtype) + " " + shape_str(b.shape));
    QYOLO_ASSIGN_OR_RETURN(auto buf, cuda::DeviceBuffer::allocate(b.nbytes()));
    QYOLO_CUDA_CHECK(cudaMemcpyAsync(buf.get(), it->second.raw(), b.nbytes(), cudaMemcpyHostToDevice, s));
    in_ptrs.push_back(buf.get());
    dev_in.push_back(std::move(buf));
  }
  for (const auto& b : outputs_) {
    QYOLO_ASSIGN_OR_RETURN(auto buf, cuda::DeviceBuffer::allocate(b.nbytes()));
    out_ptrs.push_back(buf.get());
    dev_out.push_back(std::move(buf));
  }
  QYOLO_RETURN_IF_ERROR(enqueue(in_ptrs, out_ptrs, s));
  outputs.clear();
  for (size_t k = 0; k < outputs_.size(); ++k) {
    Tensor t = Tensor::uninitialized(outputs_[k].dtype, outputs_[k].shape);
    QYOLO_CUDA_CHECK(cudaMemcpyAsync(t.raw(), out_ptrs[k], outputs_[k].nbytes(), cudaMemcpyDeviceToHost, s));
    outputs[outputs_[k].name] = t;
  }
  QYOLO_CUDA_CHECK(cudaStreamSynchronize(s));
  return Status::ok();
}

Result<std::string> CudaExecutor::profile(const std::vector<const void*>& device_inputs,
                                          const std::vector<void*>& device_outputs, cudaStream_t stream,
                                          int iters, const Roofline& roofline) {
  // Resolve pointers through one plain enqueue first.
  QYOLO_RETURN_IF_ERROR(enqueue(device_inputs, device_outputs, stream));
  std::vector<cuda::Event> ev;
  for (size_t i = 0; i <= steps_.size(); ++i) {
    QYOLO_ASSIGN_OR_RETURN(auto e, cuda::make_event());
    ev.push_back(std::move(e));
  }
  std::vector<double> total(steps_.size(), 0.0);
  // Serial on one stream (every step's own time); side-stream steps keep their own workspace.
  const cuda::LaunchContext lc{stream, cudnn_.get(), workspace_.get(), workspace_.size(), cublaslt_.get()};
  const cuda::LaunchContext side_lc{stream, cudnn_.get(), side_workspace_.get(), side_workspace_.size(),
                                    cublaslt_.get()};
  for (int it = 0; it < iters; ++it) {
    for (size_t k = 0; k < steps_.size(); ++k) {
      const Step& s = steps_[k];
      QYOLO_CUDA_CHECK(cudaEventRecord(ev[k].get(), stream));
      if (s.alias) continue;
      for (size_t i = 0; i < s.inputs.size(); ++i)
        in_scratch_[i] = s.inputs[i] >= 0 ? ptrs_[static_cast<size_t>(s.inputs[i])] : nullptr;
      for (size_t i = 0; i < s.outputs.size(); ++i)
        out_scratch_[i] = ptrs_[static_cast<size_t>(s.outputs[i])];
      QYOLO_RETURN_IF_ERROR(s.kernel->enqueue(
          s.side ? side_lc : lc, std::span<const void* const>(in_scratch_.data(), s.inputs.size()),
          std::span<void* const>(out_scratch_.data(), s.outputs.size())));
    }
    QYOLO_CUDA_CHECK(cudaEventRecord(ev.back().get(), stream));
    QYOLO_CUDA_CHECK(cudaEventSynchronize(ev.back().get()));
    for (size_t k = 0; k < steps_.size(); ++k) {
      float ms = 0;
      QYOLO_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[k].get(), ev[k + 1].get()));
      total[k] += ms;
    }
  }
  double sum = 0;
  for (double t : total) sum += t;
  // Roofline floor of a step in ms (0 without ceilings), and whether memory or math sets it.
  const bool roof = roofline.gbs > 0 && roofline.int8_tops > 0 && roofline.fp16_tflops > 0;
  auto floor_of = [&](const Step& s, bool* memory_bound) {
    const double mem_ms = step_bytes(s) / (roofline.gbs * 1e9) * 1e3;
    const double peak = (s.int8 ? roofline.int8_tops : roofline.fp16_tflops) * 1e12;
    const double math_ms = 2.0 * conv_macs(s) / peak * 1e3;
    *memory_bound = mem_ms >= math_ms;
    return std::max(mem_ms, math_ms);
  };
  std::vector<size_t> order(steps_.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return total[a] > total[b]; });
  std::ostringstream os;
  os << "profile: " << sum / iters << " ms per run over " << steps_.size() << " steps\n";
  std::map<std::string, double> by_op;
  for (size_t k = 0; k < steps_.size(); ++k)
    by_op[steps_[k].node ? steps_[k].node->op_type : std::string("convert")] += total[k] / iters;
  for (const auto& [op, t] : by_op) os << "  op " << op << ": " << t << " ms\n";
  double floor_sum = 0, conv_floor_sum = 0, conv_ms = 0;
  for (size_t k : order) {
    const Step& s = steps_[k];
    bool memory_bound = false;
    const double floor_ms = roof && !s.alias ? floor_of(s, &memory_bound) : 0.0;
    const double ms = total[k] / iters;
    floor_sum += floor_ms;
    if (conv_macs(s) > 0) conv_floor_sum += floor_ms, conv_ms += ms;
    if (ms < 0.005) continue;
    const Value& o = values_[static_cast<size_t>(s.outputs[0])];
    os << "  " << ms << " ms  " << s.label << " -> " << dtype_name(o.info.dtype) << " "
       << layout_name(o.info.layout) << " " << shape_str(o.info.shape) << " [" << s.kernel->info() << "]";
    os << std::fixed << std::setprecision(0);
    // Conv steps: tera-ops per second (2 x MACs / time), to compare with the chip's int8/fp16 peaks.
    if (const double macs = conv_macs(s); macs > 0) os << "  " << 2.0 * macs / (ms * 1e-3) / 1e12 << " TOPS";
    os << "  " << step_bytes(s) / (ms * 1e-3) / 1e9 << " GB/s";
    if (floor_ms > 0)
      os << "  floor " << std::setprecision(1) << floor_ms * 1e3 << " us ("
         << (memory_bound ? "memory" : "math") << "), at " << std::setprecision(0) << 100.0 * floor_ms / ms
         << "%";
    os << std::defaultfloat << std::setprecision(6) << "\n";
  }
  if (roof)
    os << "roofline (ceilings " << roofline.gbs << " GB/s, " << roofline.int8_tops << " int8 TOPS, "
       << roofline.fp16_tflops << " fp16 TFLOPS): sum of step floors " << floor_sum << " ms (the steps take "
       << sum / iters << " ms serially); convs " << conv_floor_sum << " ms of floor in " << conv_ms
       << " ms\n";
  return os.str();
}

Status CudaExecutor::debug_fill_arena(int byte) {
  if (arena_.size() == 0) return Status::ok();
  QYOLO_CUDA_CHECK(cudaMemset(arena_.get(), byte, arena_.size()));
  QYOLO_CUDA_CHECK(cudaDeviceSynchronize());
  return Status::ok();
}

double CudaExecutor::conv_macs(const Step& s) const {
  if (!s.node || s.node->op_type != "Conv" || s.node->inputs.size() < 2 || s.outputs.empty()) return 0.0;
  auto w = graph_.values.find(s.node->inputs[1]);
  if (w == graph_.values.end()) return 0.0;
  const Shape& y = values_[static_cast<size_t>(s.outputs[0])].info.shape;
  // y: [N, K, OH, OW]; w: [K, C/g, R, S]: N*K*OH*OW*(C/g)*R*S.
  return static_cast<double>(shape_numel(y)) * static_cast<double>(shape_numel(w->second.shape)) /
         static_cast<double>(std::max<int64_t>(w->second.shape.empty() ? 1 : w->second.shape[0], 1));
}

double CudaExecutor::step_bytes(const Step& s) const {
  if (s.alias) return 0.0;
  double bytes = 0;
  for (int v : s.inputs)
    if (v >= 0) bytes += static_cast<double>(values_[static_cast<size_t>(v)].info.nbytes());
  for (int v : s.outputs)
    if (values_[static_cast<size_t>(v)].storage != Storage::kNone)
      bytes += static_cast<double>(values_[static_cast<size_t>(v)].info.nbytes());
  if (conv_macs(s) > 0) {
    const Shape& w = graph_.values.at(s.node->inputs[1]).shape;
    bytes += static_cast<double>(shape_numel(w)) *
             (s.int8 ? 1.0 : dtype_size(values_[static_cast<size_t>(s.outputs[0])].info.dtype));
  }
  return bytes;
}

CudaExecutor::Cost CudaExecutor::cost() const {
  Cost c;
  for (const auto& s : steps_) {
    if (s.alias) continue;
    c.bytes += step_bytes(s);
    const double macs = conv_macs(s);
    c.conv_macs += macs;
    if (s.int8) c.int8_macs += macs;
  }
  return c;
}

std::string CudaExecutor::summary() const {
  std::ostringstream os;
  os << "CUDA engine: " << cuda_precision_name(options_.precision)
     << (options_.precision == CudaPrecision::kInt8
             ? (options_.int8_fp16 ? " (fp16 elsewhere)" : " (fp32 elsewhere)")
             : "")
     << ", " << steps_.size() << " steps, arena " << arena_.size() / (1 << 20) << " MiB, workspace "
     << workspace_.size() / (1 << 20) << " MiB, weights " << weight_bytes_ / (1 << 20) << " MiB"
     << (programmatic_ ? ", programmatic launch" : "") << "\n";
  if (!precision_note_.empty()) os << "  " << precision_note_ << "\n";
  for (const auto& s : steps_) {
    os << "  " << s.label;
    for (int v : s.outputs) {
      const Value& val = values_[static_cast<size_t>(v)];
      os << " -> " << dtype_name(val.info.dtype) << " " << layout_name(val.info.layout) << " "
         << shape_str(val.info.shape);
    }
    if (s.alias) os << " (alias)";
    std::string info = s.kernel->info();
    if (!info.empty()) os << " [" << info << "]";
    os << "\n";
  }
  return os.str();
}

}  // namespace qyolo
