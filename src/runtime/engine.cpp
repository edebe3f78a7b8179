#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "backends/cpu/conv2d_int8.h"
#include "ir/file_io.h"
#include "ir/shape_arith.h"
#include "onnx/onnx_import.h"
#include "passes/image_input.h"
#include "quant/activation_equalization.h"
#include "quant/equalization_sidecar.h"
#include "quant/int8_dataflow.h"
#include "quant/output_quantization.h"
#include "quant/precision_plan_pass.h"
#include "quant/quant_params.h"
#include "quant/quantize_graph.h"
#include "quant/weight_overrides.h"
#include "quant/weight_refine.h"
#include "runtime/cuda_executor_or_stub.h"
#include "runtime/engine_impl.h"
#include "yolo/metadata.h"

namespace qyolo {

// ---- small helpers ---------------------------------------------------------------------------

const char* device_name(Device d) {
  return d == Device::kCpu ? "cpu" : "cuda";
}
const char* precision_name(Precision p) {
  switch (p) {
    case Precision::kFp32:
      return "fp32";
    case Precision::kFp16:
      return "fp16";
    case Precision::kInt8:
      return "int8";
  }
  return "?";
}
BuildMode build_mode(const BuildOptions& o) {
  switch (o.precision) {
    case Precision::kFp32:
      return BuildMode::kFp32;
    case Precision::kFp16:
      return BuildMode::kFp16;
    case Precision::kInt8:
      return !o.int8_fp16 ? BuildMode::kInt8
             : o.int8_all ? BuildMode::kAllInt8Fp16
                          : BuildMode::kInt8Fp16Auto;
  }
  return BuildMode::kFp32;
}
const char* build_mode_name(BuildMode m) {
  switch (m) {
    case BuildMode::kFp32:
      return "fp32";
    case BuildMode::kFp16:
      return "fp16";
    case BuildMode::kInt8:
      return "int8";
    case BuildMode::kInt8Fp16Auto:
      return "int8+fp16 auto";
    case BuildMode::kAllInt8Fp16:
      return "all-int8 (+fp16)";
  }
  return "?";
}
const char* build_mode_flags(BuildMode m) {
  switch (m) {
    case BuildMode::kFp32:
      return "";
    case BuildMode::kFp16:
      return " --fp16";
    case BuildMode::kInt8:
      return " --int8";
    case BuildMode::kInt8Fp16Auto:
      return " --int8 --fp16";
    case BuildMode::kAllInt8Fp16:
      return " --int8 --fp16 --all-int8";
  }
  return "";
}
Result<Device> parse_device(const std::string& s) {
  if (s == "cpu") return Device::kCpu;
  if (s == "cuda" || s == "gpu") return Device::kCuda;
  return invalid_argument("unknown device '" + s + "' (expected cpu or cuda)");
}
const char* input_format_name(InputFormat f) {
  return f == InputFormat::kUint8Nhwc ? "uint8-nhwc" : "float32-nchw";
}
Result<InputFormat> parse_input_format(const std::string& s) {
  if (s == "float32-nchw" || s == "float32") return InputFormat::kFloat32Nchw;
  if (s == "uint8-nhwc" || s == "uint8") return InputFormat::kUint8Nhwc;
  return invalid_argument("unknown input format '" + s + "' (expected float32-nchw or uint8-nhwc)");
}
Result<Precision> parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::kFp32;
  if (s == "fp16") return Precision::kFp16;
  if (s == "int8") return Precision::kInt8;
  return invalid_argument("unknown precision '" + s + "' (expected fp32, fp16 or int8)");
}

std::string cudnn_version_str(int v) {
  // cuDNN 9: major * 10000 + minor * 100 + patch; cuDNN 8: major * 1000 + minor * 100 + patch.
  const int major_div = v >= 90000 ? 10000 : 1000;
  return std::to_string(v / major_div) + "." + std::to_string(v % major_div / 100) + "." +
         std::to_string(v % 100);
}

std::string CudaTarget::str(bool with_cudnn) const {
  std::string s = (gpu_name.empty() ? std::string("<unknown GPU>") : gpu_name) + " (sm_" +
                  std::to_string(cc_major) + std::to_string(cc_minor);
  if (with_cudnn) s += ", cuDNN " + cudnn_version_str(cudnn_version);
  return s + ")";
}

Result<CudaTarget> current_cuda_target() {
#ifdef QYOLO_HAS_CUDA
  if (cuda::device_count() == 0)
    return device_error("no CUDA device is visible (cudaGetDeviceCount found none)");
  int dev = 0;
  QYOLO_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  QYOLO_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  CudaTarget t;
  t.gpu_name = prop.name;
  t.cc_major = prop.major;
  t.cc_minor = prop.minor;
  t.cudnn_version = static_cast<int>(cudnnGetVersion());
  return t;
#else
  return unsupported("this qyolo was built without CUDA (no nvcc at build time); use --device cpu");
#endif
}

bool ShapeProfile::contains(const Shape& s) const {
  if (s.size() != min.size() || s.size() != max.size()) return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] < min[i] || s[i] > max[i]) return false;
  return true;
}

Result<Shape> parse_shape_spec(const std::string& spec, std::string* name) {
  std::string dims = spec;
  auto colon = spec.rfind(':');
  if (colon != std::string::npos) {
    if (name) *name = spec.substr(0, colon);
    dims = spec.substr(colon + 1);
  }
  // Dims are decimal digits only (no sign, spaces or overflow: from_chars reports them), > 0.
  Shape s;
  size_t pos = 0;
  while (true) {
    const size_t x = std::min(dims.find('x', pos), dims.size());
    const std::string part = dims.substr(pos, x - pos);
    int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || ec != std::errc() || ptr != part.data() + part.size() || v <= 0)
      return invalid_argument("bad shape '" + spec + "': dim '" + part +
                              "' is not a positive integer (expected e.g. images:1x3x640x640)");
    s.push_back(v);
    if (x == dims.size()) break;
    pos = x + 1;
  }
  return s;
}

std::optional<std::array<int64_t, 2>> parse_imgsz_metadata(const std::string& text) {
  auto hw = parse_imgsz_literal(text);
  if (!hw) return std::nullopt;
  return *hw;
}

std::vector<std::string> parse_class_names(const std::string& lit) {
  auto names = parse_names_literal(lit);
  return names ? *names : std::vector<std::string>{};
}

// The error for an input shape outside the engine's profile: the input, the shape, the profile.
Status outside_profile(const std::string& input, const Shape& shape, const ShapeProfile& p) {
  return invalid_argument("input '" + input + "' shape " + shape_str(shape) +
                          " is outside the engine's profile (min " + shape_str(p.min) + ", opt " +
                          shape_str(p.opt) + ", max " + shape_str(p.max) +
                          "; build with --min-shapes/--opt-shapes/--max-shapes to change it)");
}

// ---- Engine --------------------------------------------------------------------------------

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;
const ModelInfo& Engine::info() const {
  return impl_->info;
}
const BuildOptions& Engine::options() const {
  return impl_->options;
}
ShapeProfile Engine::profile() const {
  return impl_->profile;
}

EnginePlan Engine::precision_plan() const {
  const PrecisionPlan& p = impl_->plan;
  EnginePlan out;
  out.float_precision = node_precision_name(p.float_precision);
  for (const auto& [name, precision] : p.nodes) out.nodes.push_back({name, node_precision_name(precision)});
  for (const auto& [name, t] : p.tensors) out.tensors.push_back({name, t.storage, t.scale, t.zero_point});
  return out;
}

TacticMap Engine::Impl::tactics() const {
  std::lock_guard<std::mutex> lock(tactics_mu_);
  return tactics_;
}

void Engine::Impl::merge_tactics(const TacticMap& more) const {
  std::lock_guard<std::mutex> lock(tactics_mu_);
  for (const auto& [key, choice] : more) tactics_.emplace(key, choice);
}

Result<SpecializedGraph> Engine::Impl::prepare_float(const Shape& input_shape,
                                                     const PassOptions& passes) const {
  if (!profile.contains(input_shape)) return outside_profile(info.input_name, input_shape, profile);
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, specialize(graph, {{info.input_name, input_shape}}));
  QYOLO_RETURN_IF_ERROR(run_default_passes(sg, passes));
  // Equalisation first: the other overrides name (and hold) the weights of the equalised graph.
  QYOLO_RETURN_IF_ERROR(
      equalize_activations(sg, equalization_factors_of(weight_overrides), passes.fuse_equalization).status());
  QYOLO_RETURN_IF_ERROR(apply_weight_overrides(sg, without_equalization(weight_overrides)));
  return sg;
}

Result<SpecializedGraph> Engine::Impl::prepare(const Shape& input_shape, const PassOptions& passes) const {
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, prepare_float(input_shape, passes));
  if (is_int8(build_mode(options))) {
    QYOLO_RETURN_IF_ERROR(apply_precision_plan(sg, plan, plan_origin));
    // The CPU keeps the plan's int8 tensors int8 between layers; the CUDA executor places its own
    // int8 copies (issue 19).
    if (options.device == Device::kCpu) QYOLO_RETURN_IF_ERROR(apply_int8_storage(sg, plan, plan_origin));
  }
  if (options.device == Device::kCpu) {
    QYOLO_RETURN_IF_ERROR(plan_channels_last_float(sg).status());
    QYOLO_RETURN_IF_ERROR(plan_channels_last_decode(sg).status());
  }
  // Last, so that calibration scales and precision choices keep naming the float image.
  if (options.input_format == InputFormat::kUint8Nhwc)
    QYOLO_RETURN_IF_ERROR(use_uint8_image_input(sg, info.input_name).with_context(info.source));
  return sg;
}

namespace {

Result<std::unique_ptr<Engine::Impl>> make_impl(std::string onnx_bytes, const std::string& source,
                                                const BuildOptions& options) {
  auto impl = std::make_unique<Engine::Impl>();
  std::string base_dir = std::filesystem::path(source).parent_path().string();
  QYOLO_ASSIGN_OR_RETURN(impl->graph,
                         import_onnx_bytes(onnx_bytes, source, base_dir.empty() ? "." : base_dir));
  impl->onnx_bytes = std::move(onnx_bytes);
  impl->options = options;
  if (options.float_outputs && remove_output_quantization(impl->graph) == 0)
    return invalid_argument(source +
                            ": float outputs asked for (--float-output), but no output of the model ends in "
                            "a QuantizeLinear -> DequantizeLinear pair");
  const Graph& g = impl->graph;
  if (g.inputs.size() != 1)
    return unsupported(source + ": qyolo engines take exactly one image input, the model has " +
                       std::to_string(g.inputs.size()));
  if (g.outputs.size() < 1) return corrupt(source + ": the model has no output");
  const ValueInfo& in = g.inputs[0];
  if (in.dims.size() != 4)
    return unsupported(source + ": input '" + in.name + "' has rank " + std::to_string(in.dims.size()) +
                       " (" + in.dims_str() + "); an NCHW image input of rank 4 is expected");
  if (in.dtype != DataType::kFloat32)
    return unsupported(source + ": input '" + in.name + "' is " + dtype_name(in.dtype) +
                       ", float32 expected");
  ModelInfo& info = impl->info;
  info.source = source;
  info.input_name = in.name;
  for (const auto& d : in.dims) info.input_dims.push_back(d.is_static() ? d.value : -1);
  info.output_name = g.outputs[0].name;
  for (const auto& o : g.outputs) info.output_names.push_back(o.name);
  info.opset = static_cast<int>(g.opset);
  // ultralytics metadata (names, stride, imgsz, task); unreadable fields are left out (`qyolo info` lists
  // them).
  const UltralyticsMetadata meta = parse_ultralytics_metadata(g.metadata);
  info.class_names = meta.names;
  info.task = meta.task;
  if (meta.stride) info.stride = *meta.stride;
  for (const auto& n : g.nodes)
    if (n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear") info.has_qdq = true;

  // Profile: the model's fixed dims, or the user's profile for dynamic dims.
  Shape fixed;
  bool dynamic = false;
  for (int64_t d : info.input_dims) {
    fixed.push_back(d);
    if (d < 0) dynamic = true;
  }
  if (options.profile) {
    const ShapeProfile& p = *options.profile;
    for (const Shape* s : {&p.min, &p.opt, &p.max}) {
      if (s->size() != 4)
        return invalid_argument("profile shape " + shape_str(*s) + " must have rank 4 (NCHW) for input '" +
                                in.name + "'");
      for (size_t i = 0; i < 4; ++i)
        if (fixed[i] >= 0 && (*s)[i] != fixed[i])
          return invalid_argument("profile shape " + shape_str(*s) + " conflicts with the model's input '" +
                                  in.name + "' (" + in.dims_str() + ")");
    }
    for (size_t i = 0; i < 4; ++i)
      if (!(p.min[i] <= p.opt[i] && p.opt[i] <= p.max[i]))
        return invalid_argument("profile must satisfy min <= opt <= max in every dim (min " +
                                shape_str(p.min) + ", opt " + shape_str(p.opt) + ", max " + shape_str(p.max) +
                                ")");
    impl->profile = p;
  } else if (dynamic) {
    // No profile given: a generous default (the CPU backend specialises per shape anyway). Its opt
    // H/W, the default image size, is the model's ultralytics `imgsz` metadata where it has one.
    Shape mn = fixed, opt = fixed, mx = fixed;
    int64_t dflt_min[4] = {1, 3, 32, 32}, dflt_opt[4] = {1, 3, 640, 640}, dflt_max[4] = {64, 3, 4096, 4096};
    if (meta.imgsz) {
      for (int i = 0; i < 2; ++i)
        if ((*meta.imgsz)[i] >= dflt_min[2 + i] && (*meta.imgsz)[i] <= dflt_max[2 + i])
          dflt_opt[2 + i] = (*meta.imgsz)[i];
    }
    for (size_t i = 0; i < 4; ++i)
      if (fixed[i] < 0) {
        mn[i] = dflt_min[i];
        opt[i] = dflt_opt[i];
        mx[i] = dflt_max[i];
      }
    impl->profile = {mn, opt, mx};
  } else {
    impl->profile = {fixed, fixed, fixed};
  }
  // Profiles come from the command line or an engine file: every dim positive, every shape sized.
  for (const Shape* s : {&impl->profile.min, &impl->profile.opt, &impl->profile.max}) {
    for (int64_t d : *s)
      if (d <= 0)
        return invalid_argument(source + ": input '" + in.name + "': profile shape " + shape_str(*s) +
                                " must have positive dims");
    auto bytes = checked_nbytes(*s, DataType::kFloat32, source + ": input '" + in.name + "' profile");
    if (!bytes) return bytes.status();
  }
  return impl;
}

// New INT8 builds: the per-channel MSE weight clip (BuildOptions::weight_clip), chosen once on the
// prepared graph at the opt shape and kept as weight overrides (stored in the engine file).
Status choose_weight_clip(Engine::Impl& impl) {
  const BuildOptions& o = impl.options;
  // A Q/DQ model carries its own weight quantisation.
  const BuildMode mode = build_mode(o);
  if (!is_int8(mode) || !o.weight_clip || impl.info.has_qdq || !impl.weight_overrides.empty() ||
      !o.weights_file.empty() || mode == BuildMode::kInt8Fp16Auto)
    return Status::ok();
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, impl.prepare(impl.profile.opt));
  impl.weight_overrides = clip_int8_weights(sg, {});
  return Status::ok();
}

// The rules a new build's precision plan starts from (src/quant/precision_plan_pass.h).
PlanRules plan_rules(const BuildOptions& o) {
  const BuildMode mode = build_mode(o);
  PlanRules r;
  r.int8 = is_int8(mode);
  r.float_precision =
      o.device == Device::kCuda && is_fp16_elsewhere(mode) ? NodePrecision::kFp16 : NodePrecision::kFp32;
  r.float_layers_regex = o.float_layers_regex;
  r.cpu_int8_dataflow = o.device == Device::kCpu && r.int8;
  r.asymmetric_activations = o.asymmetric_activations && r.cpu_int8_dataflow;
  return r;
}

// A stored plan must fit the engine's options: INT8 only in INT8 engines, FP16 only on cuda, int8
// storage only on the CPU.
Status check_stored_plan(const Engine::Impl& impl) {
  const PlanRules r = plan_rules(impl.options);
  const PrecisionPlan& plan = impl.plan;
  auto bad = [&](const std::string& what) { return corrupt(impl.plan_origin + ": precision plan " + what); };
  if (plan.float_precision != r.float_precision)
    return bad(std::string("runs the other nodes in ") + node_precision_name(plan.float_precision) +
               ", the " + device_name(impl.options.device) + " " + precision_name(impl.options.precision) +
               " engine in " + node_precision_name(r.float_precision));
  for (const auto& [name, p] : plan.nodes) {
    if ((p == NodePrecision::kInt8 && !r.int8) ||
        (p == NodePrecision::kFp16 && r.float_precision != NodePrecision::kFp16))
      return bad("runs node '" + name + "' in " + node_precision_name(p) + ", which a " +
                 device_name(impl.options.device) + " " + precision_name(impl.options.precision) +
                 " engine does not run");
  }
  for (const auto& [name, t] : plan.tensors) {
    if (t.storage == DataType::kInt8 && !r.cpu_int8_dataflow)
      return bad("stores tensor '" + name + "' int8, which only CPU INT8 engines do");
    if (t.zero_point != 0 && !r.cpu_int8_dataflow)
      return bad("quantises tensor '" + name + "' with zero point " + std::to_string(t.zero_point) +
                 ", which only CPU INT8 engines do");
  }
  return Status::ok();
}

// Cuda tactics that only the per-layer INT8/FP16 choice reads (its timings and verdict): the plan
// holds the choice, so engine files leave them out.
TacticMap without_precision_choice(TacticMap t) {
  for (auto it = t.begin(); it != t.end();) {
    if (it->first.rfind("convtime:", 0) == 0 || it->first.rfind("engine-precision:", 0) == 0)
      it = t.erase(it);
    else
      ++it;
  }
  return t;
}

// A new INT8 build from a cache: the equalisation sidecar beside it (quant/equalization_sidecar.h)
// becomes the engine's weights, checked against the model here so that a mismatch names the file.
Status use_equalization_sidecar(Engine::Impl& impl) {
  const BuildOptions& o = impl.options;
  if (!o.equalization_sidecar || o.precision != Precision::kInt8 || impl.info.has_qdq ||
      o.calibration_file.empty() || !impl.weight_overrides.empty())
    return Status::ok();
  QYOLO_ASSIGN_OR_RETURN(auto factors, read_equalization_sidecar(o.calibration_file));
  if (!factors || factors->empty()) return Status::ok();
  impl.weight_overrides = with_equalization({}, *factors);
  Status st = impl.prepare_float(impl.profile.opt).status();
  if (!st)
    return invalid_argument("equalisation sidecar '" + equalization_sidecar_path(o.calibration_file) +
                            "' does not match the model '" + impl.info.source + "': " + st.message() +
                            " (calibrate this model again, or build with --no-equalization)");
  return Status::ok();
}

Status finish_build(Engine::Impl& impl, bool new_build) {
  if (impl.options.int8_all && !impl.options.int8_fp16)
    return invalid_argument(
        "--all-int8 applies to --int8 --fp16 engines (--int8 alone already runs every eligible conv in "
        "INT8)");
  if (impl.options.precision == Precision::kInt8 && !impl.info.has_qdq && impl.activation_scales.empty()) {
    if (impl.options.calibration_file.empty())
      return invalid_argument(
          "INT8 needs a calibration cache (--cache) or a model with Q/DQ nodes; run `qyolo calibrate` first");
    QYOLO_ASSIGN_OR_RETURN(impl.activation_scales,
                           load_activation_scales(impl.options.calibration_file, impl.graph));
  }
  if (!impl.options.weights_file.empty()) {
    QYOLO_ASSIGN_OR_RETURN(impl.weight_overrides, read_weight_overrides(impl.options.weights_file));
  } else if (new_build) {
    QYOLO_RETURN_IF_ERROR(use_equalization_sidecar(impl));
  }
  // Equalised tensors are read through T' = T / s: its scale must come from a calibration of that
  // same equalisation (qyolo calibrate --equalize), or the reader convs would quietly stay float.
  if (impl.options.precision == Precision::kInt8 && !impl.info.has_qdq)
    for (const auto& [t, s] : equalization_factors_of(impl.weight_overrides))
      if (!impl.activation_scales.count(t + kEqualizedSuffix))
        return invalid_argument(
            "the weights equalise '" + t + "' but the calibration cache has no scale for '" + t +
            kEqualizedSuffix + "': use the cache that `qyolo calibrate --equalize` wrote with these weights");
  if (impl.options.device == Device::kCpu &&
      (impl.options.precision == Precision::kFp16 || impl.options.int8_fp16))
    return unsupported("fp16 precision needs --device cuda; the CPU backend runs fp32 or int8");
  if (impl.options.int8_fp16 && impl.options.precision != Precision::kInt8)
    return invalid_argument("the int8-fp16 option applies to INT8 engines only");
  // The precision plan: a new build makes it from the rules on the float graph at the opt shape (a
  // cuda build refines it below with the executor's choice); a loaded engine lowers its stored one.
  std::optional<SpecializedGraph> float_graph;
  if (new_build) {
    QYOLO_ASSIGN_OR_RETURN(float_graph, impl.prepare_float(impl.profile.opt));
    impl.plan_origin = impl.info.source;
    QYOLO_ASSIGN_OR_RETURN(
        impl.plan, make_precision_plan(*float_graph, impl.activation_scales, plan_rules(impl.options)));
    QYOLO_RETURN_IF_ERROR(choose_weight_clip(impl));
  } else {
    QYOLO_RETURN_IF_ERROR(check_stored_plan(impl));
  }
  // Validate by preparing at the opt shape: unsupported ops / shapes fail here, not at run time.
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, impl.prepare(impl.profile.opt));
  impl.plan_summary = plan_summary(impl.plan, sg);
  if (impl.options.device == Device::kCuda) {
    // A new build records the GPU; a loaded engine has been checked against it already. The
    // executor starts from the stored tactics (none for a new build: it times them) and its
    // choices become the engine's (serialised by save(), reused by every context). A new build's
    // executor also makes the per-layer INT8/FP16 choice, which becomes the plan's; a loaded
    // engine's executor lowers the stored plan.
    if (impl.cuda_target.gpu_name.empty()) {
      QYOLO_ASSIGN_OR_RETURN(impl.cuda_target, current_cuda_target());
    }
    const TacticMap seed = impl.tactics();
    auto built = build_cuda_executor(std::move(sg), impl.options, &seed, new_build ? nullptr : &impl.plan);
    if (!built) return new_build ? built.status() : built.status().with_context(impl.plan_origin);
    auto exec = std::move(*built);
#ifdef QYOLO_HAS_CUDA
    if (new_build) {
      QYOLO_RETURN_IF_ERROR(refine_precision_plan(impl.plan, *float_graph, exec->conv_precisions()));
      impl.plan_summary = plan_summary(impl.plan, exec->graph());
    }
    impl.set_tactics(without_precision_choice(exec->tactics()));
    if (is_int8(build_mode(impl.options))) {
      const CudaExecutor::Cost cost = exec->cost();
      if (cost.conv_macs > 0)
        impl.build_note = std::to_string(std::lround(100.0 * cost.int8_macs / cost.conv_macs)) +
                          "% of the conv MACs in INT8 at " + shape_str(impl.profile.opt);
    }
#endif
    return Status::ok();
  }
  QYOLO_ASSIGN_OR_RETURN(auto exec, CpuExecutor::build(std::move(sg)));
  return Status::ok();
}

}  // namespace

// The bytes of the ONNX file a build starts from.
static Result<std::string> read_onnx_file(const std::string& onnx_path) {
  std::error_code ec;
  if (!std::filesystem::exists(onnx_path, ec))
    return not_found("ONNX file '" + onnx_path + "' does not exist");
  std::ifstream f(onnx_path, std::ios::binary);
  if (!f) return io_error("cannot open ONNX file '" + onnx_path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Result<std::shared_ptr<const Engine>> Engine::build(const std::string& onnx_path,
                                                    const BuildOptions& options) {
  QYOLO_ASSIGN_OR_RETURN(std::string bytes, read_onnx_file(onnx_path));
  QYOLO_ASSIGN_OR_RETURN(auto impl, make_impl(std::move(bytes), onnx_path, options));
  QYOLO_RETURN_IF_ERROR(finish_build(*impl, /*new_build=*/true));
  return std::shared_ptr<const Engine>(new Engine(std::move(impl)));
}

Result<std::shared_ptr<const Engine>> build_engine_with_weights(const std::string& onnx_path,
                                                                const BuildOptions& options,
                                                                std::map<std::string, Tensor> weights) {
  QYOLO_ASSIGN_OR_RETURN(std::string bytes, read_onnx_file(onnx_path));
  BuildOptions o = options;
  o.weights_file.clear();
  o.equalization_sidecar = false;  // the weights are used as given
  QYOLO_ASSIGN_OR_RETURN(auto impl, make_impl(std::move(bytes), onnx_path, o));
  impl->weight_overrides = std::move(weights);
  QYOLO_RETURN_IF_ERROR(finish_build(*impl, /*new_build=*/true));
  return std::shared_ptr<const Engine>(new Engine(std::move(impl)));
}

Status Engine::save(const std::string& path) const {
  EngineFileContents c;
  c.source = impl_->info.source;
  c.options = impl_->options;
  c.profile = impl_->profile;
  c.scales = impl_->activation_scales;
  c.weights = impl_->weight_overrides;
  const bool cuda = impl_->options.device == Device::kCuda;
  if (cuda) {
    c.target = impl_->cuda_target;
    c.tactics = impl_->tactics();
  }
  c.plan = impl_->plan;
  c.onnx_bytes = impl_->onnx_bytes;
  const std::string bytes = serialize_engine_file(c);
  return write_file_atomically(path, bytes, "engine file");
}

Result<std::shared_ptr<const Engine>> Engine::load(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return not_found("engine file '" + path + "' does not exist");
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  QYOLO_ASSIGN_OR_RETURN(EngineFileContents c, parse_engine_file(ss.str(), path));
  BuildOptions& options = c.options;
  const ShapeProfile& profile = c.profile;
  CudaTarget& target = c.target;
  TacticMap& tactics = c.tactics;
  const std::string& source = c.source;
  std::map<std::string, float>& scales = c.scales;
  std::string& onnx_bytes = c.onnx_bytes;

  std::string note;
  if (options.device == Device::kCuda) {
    // Like TensorRT, an engine is specific to the GPU model it was tuned on.
    if (target.gpu_name.empty())
      return corrupt("engine file '" + path + "': cuda engine without its GPU record");
    auto here = current_cuda_target();
    if (!here)
      return here.status().with_context("engine file '" + path + "' is a cuda engine built on " +
                                        target.str() + "; it cannot be loaded here");
    if (!here->same_gpu(target))
      return version_mismatch(
          "engine file '" + path + "' was built on " + target.str() + ", this GPU is " + here->str() +
          "; engines are specific to the GPU model: rebuild it here with `qyolo build --model " + source +
          " --device cuda" + build_mode_flags(build_mode(options)) +
          (is_int8(build_mode(options)) ? " [--cache <calibration cache>]" : "") +
          (options.float_layers_regex.empty() ? "" : " --float-layers '" + options.float_layers_regex + "'") +
          (options.float_outputs ? " --float-output" : "") +
          (options.input_format == InputFormat::kUint8Nhwc ? " --input-format uint8-nhwc" : "") +
          " --min-shapes " + shape_str(profile.min) + " --opt-shapes " + shape_str(profile.opt) +
          " --max-shapes " + shape_str(profile.max) + " --out " + path + "`");
    if (here->cudnn_version != target.cudnn_version) {
      // Tactics name cuDNN engines and knobs of that version: time them again (like a rebuild).
      if (!tactics.empty())
        note = "engine file '" + path + "' was tuned with cuDNN " + cudnn_version_str(target.cudnn_version) +
               ", this is cuDNN " + cudnn_version_str(here->cudnn_version) + ": its " +
               std::to_string(tactics.size()) + " tactics are timed again (rebuild the engine to keep them)";
      tactics.clear();
      target.cudnn_version = here->cudnn_version;
    }
  }
  QYOLO_ASSIGN_OR_RETURN(auto impl, make_impl(std::move(onnx_bytes), source, options));
  impl->activation_scales = std::move(scales);
  impl->weight_overrides = std::move(c.weights);
  impl->plan = std::move(c.plan);
  impl->plan_origin = "engine file '" + path + "'";
  if (options.device == Device::kCuda) {
    impl->cuda_target = target;
    impl->set_tactics(std::move(tactics));
    impl->load_note = std::move(note);
  }
  QYOLO_RETURN_IF_ERROR(finish_build(*impl, /*new_build=*/false));
  return std::shared_ptr<const Engine>(new Engine(std::move(impl)));
}

Result<std::unique_ptr<ExecutionContext>> Engine::create_context() const {
  auto impl = std::make_unique<ExecutionContext::Impl>();
  impl->engine = impl_.get();
  if (impl_->profile.min == impl_->profile.max) impl->input_shape = impl_->profile.opt;
  return std::make_unique<ExecutionContext>(std::move(impl));
}

std::string cpu_int8_caveat() {
  if (cpu::int8_conv_weight_adjust() == 1.f) return {};
  return "this CPU has no VNNI: oneDNN computes INT8 convolutions with 7-bit weights (it halves them "
         "against int16 overflow), so INT8 loses more accuracy here (yolov5n val500: -0.92 against -0.63 pt "
         "on a VNNI CPU) and runs at about FP32's speed (docs/cpu-int8.md)";
}

}  // namespace qyolo
