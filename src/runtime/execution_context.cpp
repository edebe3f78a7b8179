// ExecutionContext: one stream's (one thread's) state over an immutable Engine: the executors built
// for each input shape the context has run (CPU) or been set to (cuda), their bindings, and the
// run/enqueue entry points with their checks of the caller's inputs against the engine's profile.
#include "runtime/cuda_executor_or_stub.h"
#include "runtime/engine_impl.h"

namespace qyolo {

// ---- ExecutionContext --------------------------------------------------------------------

ExecutionContext::ExecutionContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ExecutionContext::~ExecutionContext() = default;

#ifdef QYOLO_HAS_CUDA
Result<std::unique_ptr<CudaExecutor>> build_cuda_executor(SpecializedGraph graph, const BuildOptions& options,
                                                          const TacticMap* tactics,
                                                          const PrecisionPlan* plan) {
  CudaBuildOptions o;
  const BuildMode mode = build_mode(options);
  o.precision = is_int8(mode)              ? CudaPrecision::kInt8
                : mode == BuildMode::kFp16 ? CudaPrecision::kFp16
                                           : CudaPrecision::kFp32;
  o.int8_fp16 = is_int8(mode) && is_fp16_elsewhere(mode);
  o.int8_fp16_choose = mode != BuildMode::kAllInt8Fp16;
  if (tactics) o.tactics = *tactics;
  if (plan) o.plan = *plan;
  return CudaExecutor::build(std::move(graph), o);
}
#else
Result<std::unique_ptr<CudaExecutor>> build_cuda_executor(SpecializedGraph, const BuildOptions&,
                                                          const TacticMap*, const PrecisionPlan*) {
  return unsupported("this qyolo was built without CUDA (no nvcc at build time); use --device cpu");
}
#endif

ExecutionContext::Impl::~Impl() = default;

Status ExecutionContext::Impl::run(const Shape& shape, const std::map<std::string, Tensor>& inputs,
                                   std::map<std::string, Tensor>& outputs) {
  if (engine->options.device == Device::kCuda) {
#ifdef QYOLO_HAS_CUDA
    QYOLO_ASSIGN_OR_RETURN(CudaExecutor * exec, cuda_executor_for(shape));
    return exec->run(inputs, outputs);
#else
    return build_cuda_executor({}, engine->options).status();
#endif
  }
  QYOLO_ASSIGN_OR_RETURN(CpuExecutor * exec, executor_for(shape));
  return exec->run(inputs, outputs);
}

Result<CudaExecutor*> ExecutionContext::Impl::cuda_executor_for(const Shape& shape) {
  if (engine->options.device != Device::kCuda)
    return invalid_argument("this engine runs on " + std::string(device_name(engine->options.device)) +
                            ", not cuda");
#ifdef QYOLO_HAS_CUDA
  auto it = cuda_executors.find(shape);
  if (it == cuda_executors.end()) {
    QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, engine->prepare(shape));
    const TacticMap seed = engine->tactics();
    // Every executor after the build's lowers the engine's plan (no per-layer choice again).
    QYOLO_ASSIGN_OR_RETURN(auto exec,
                           build_cuda_executor(std::move(sg), engine->options, &seed, &engine->plan));
    engine->merge_tactics(exec->tactics());  // later contexts / shapes skip what this one timed
    constexpr size_t kMaxCachedShapes = 8;
    if (cuda_executors.size() >= kMaxCachedShapes) {
      // Evict the oldest-keyed shape, never the one set_input_shape() selected.
      auto victim = cuda_executors.begin();
      if (victim->first == input_shape) ++victim;
      cuda_executors.erase(victim);
    }
    it = cuda_executors.emplace(shape, std::move(exec)).first;
  }
  return it->second.get();
#else
  return build_cuda_executor({}, engine->options).status();
#endif
}

Result<CpuExecutor*> ExecutionContext::Impl::executor_for(const Shape& shape) {
  auto it = executors.find(shape);
  if (it != executors.end()) return it->second.get();
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, engine->prepare(shape));
  QYOLO_ASSIGN_OR_RETURN(auto exec, CpuExecutor::build(std::move(sg)));
  constexpr size_t kMaxCachedShapes = 8;  // bounds memory when shapes vary (rectangular eval)
  if (executors.size() >= kMaxCachedShapes) executors.erase(executors.begin());
  auto* raw = exec.get();
  executors[shape] = std::move(exec);
  return raw;
}

const Shape& ExecutionContext::input_shape() const {
  return impl_->input_shape;
}

Status ExecutionContext::set_input_shape(const Shape& shape) {
  const Engine::Impl& e = *impl_->engine;
  if (shape.size() != 4)
    return invalid_argument("input '" + e.info.input_name + "' must have rank 4 (NCHW), got shape " +
                            shape_str(shape));
  if (!e.profile.contains(shape)) return outside_profile(e.info.input_name, shape, e.profile);
  if (e.options.device == Device::kCuda) {
    QYOLO_RETURN_IF_ERROR(impl_->cuda_executor_for(shape).status());
  } else {
    QYOLO_RETURN_IF_ERROR(impl_->executor_for(shape).status());
  }
  impl_->input_shape = shape;
  return Status::ok();
}

Result<std::vector<TensorBinding>> ExecutionContext::bindings() {
  const Engine::Impl& e = *impl_->engine;
  if (impl_->input_shape.empty())
    return invalid_argument("no input shape: call set_input_shape() first (the engine's profile is min " +
                            shape_str(e.profile.min) + ", max " + shape_str(e.profile.max) + ")");
  std::vector<TensorBinding> out;
  if (e.options.device == Device::kCuda) {
#ifdef QYOLO_HAS_CUDA
    QYOLO_ASSIGN_OR_RETURN(CudaExecutor * exec, impl_->cuda_executor_for(impl_->input_shape));
    for (const auto& b : exec->inputs()) out.push_back({b.name, b.dtype, b.shape, true});
    for (const auto& b : exec->outputs()) out.push_back({b.name, b.dtype, b.shape, false});
    return out;
#else
    return build_cuda_executor({}, e.options).status();
#endif
  }
  QYOLO_ASSIGN_OR_RETURN(CpuExecutor * exec, impl_->executor_for(impl_->input_shape));
  const SpecializedGraph& sg = exec->graph();
  for (const auto* list : {&sg.graph.inputs, &sg.graph.outputs})
    for (const ValueInfo& v : *list) {
      auto it = sg.values.find(v.name);
      if (it == sg.values.end()) return internal_error("binding '" + v.name + "' has no value description");
      out.push_back({v.name, it->second.dtype, it->second.shape, list == &sg.graph.inputs});
    }
  return out;
}

Status ExecutionContext::enqueue(const std::vector<const void*>& device_inputs,
                                 const std::vector<void*>& device_outputs, void* cuda_stream) {
  const Engine::Impl& e = *impl_->engine;
  if (e.options.device != Device::kCuda)
    return invalid_argument(
        "enqueue() takes device pointers and needs a cuda engine; this engine runs on cpu (use run(), or "
        "build with "
        "--device cuda)");
#ifdef QYOLO_HAS_CUDA
  if (impl_->input_shape.empty())
    return invalid_argument("enqueue() before set_input_shape(): the engine's profile is min " +
                            shape_str(e.profile.min) + ", max " + shape_str(e.profile.max));
  QYOLO_ASSIGN_OR_RETURN(CudaExecutor * exec, impl_->cuda_executor_for(impl_->input_shape));
  if (device_inputs.size() != exec->inputs().size() || device_outputs.size() != exec->outputs().size())
    return invalid_argument("enqueue() got " + std::to_string(device_inputs.size()) + " input and " +
                            std::to_string(device_outputs.size()) + " output pointers; the engine has " +
                            std::to_string(exec->inputs().size()) + " inputs and " +
                            std::to_string(exec->outputs().size()) + " outputs (see bindings())");
  for (size_t i = 0; i < device_inputs.size(); ++i)
    if (device_inputs[i] == nullptr)
      return invalid_argument("enqueue(): input '" + exec->inputs()[i].name + "' is null");
  for (size_t i = 0; i < device_outputs.size(); ++i)
    if (device_outputs[i] == nullptr)
      return invalid_argument("enqueue(): output '" + exec->outputs()[i].name + "' is null");
  return exec->enqueue(device_inputs, device_outputs, static_cast<cudaStream_t>(cuda_stream));
#else
  return build_cuda_executor({}, e.options).status();
#endif
}

// The model's NCHW shape of a run() input, after checking its dtype and rank against the engine's
// input format.
static Result<Shape> model_input_shape(const Engine::Impl& e, const Tensor& input) {
  const std::string& name = e.info.input_name;
  const bool bytes = e.options.input_format == InputFormat::kUint8Nhwc;
  const DataType want = bytes ? DataType::kUInt8 : DataType::kFloat32;
  if (input.dtype() != want)
    return invalid_argument("input '" + name + "' must be " + dtype_name(want) +
                            " (the engine's input format is " + input_format_name(e.options.input_format) +
                            "), got " + dtype_name(input.dtype()));
  if (input.rank() != 4)
    return invalid_argument("input '" + name + "' must have rank 4 (" + (bytes ? "NHWC" : "NCHW") +
                            "), got shape " + shape_str(input.shape()));
  const Shape& s = input.shape();
  return bytes ? Shape{s[0], s[3], s[1], s[2]} : s;
}

Status ExecutionContext::run(const Tensor& input, Tensor& output) {
  const auto& info = impl_->engine->info;
  QYOLO_ASSIGN_OR_RETURN(Shape shape, model_input_shape(*impl_->engine, input));
  // The input map first: it holds its own reference, so `input` may be `output` itself.
  const std::map<std::string, Tensor> inputs{{info.input_name, input}};
  std::map<std::string, Tensor> outputs;
  outputs[info.output_name] = std::move(output);  // its storage is reused when nothing else holds it
  Status st = impl_->run(shape, inputs, outputs);
  auto it = outputs.find(info.output_name);
  if (it != outputs.end()) output = std::move(it->second);
  if (!st.is_ok()) return st;
  if (it == outputs.end())
    return internal_error("the executor produced no output '" + info.output_name + "'");
  return Status::ok();
}

Status ExecutionContext::run(const Tensor& input, std::vector<Tensor>& outputs) {
  const auto& info = impl_->engine->info;
  QYOLO_ASSIGN_OR_RETURN(Shape shape, model_input_shape(*impl_->engine, input));
  const std::map<std::string, Tensor> inputs{{info.input_name, input}};
  std::map<std::string, Tensor> by_name;
  // Storage the caller passes in is reused when nothing else holds it (as in run(input, output)).
  for (size_t k = 0; k < outputs.size() && k < info.output_names.size(); ++k)
    by_name[info.output_names[k]] = std::move(outputs[k]);
  outputs.clear();
  QYOLO_RETURN_IF_ERROR(impl_->run(shape, inputs, by_name));
  for (const auto& name : info.output_names) {
    auto it = by_name.find(name);
    if (it == by_name.end()) return internal_error("the executor produced no output '" + name + "'");
    outputs.push_back(std::move(it->second));
  }
  return Status::ok();
}

}  // namespace qyolo
