#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "onnx/onnx_import.h"
#include "quant/quantize_graph.h"
#include "runtime/engine_impl.h"

#ifdef QYOLO_HAS_CUDA
#include "backends/cuda/cuda_executor.h"
#endif

namespace qyolo {

// ---- small helpers ---------------------------------------------------------------------------

const char* device_name(Device d) { return d == Device::kCpu ? "cpu" : "cuda"; }
const char* precision_name(Precision p) {
  switch (p) {
    case Precision::kFp32: return "fp32";
    case Precision::kFp16: return "fp16";
    case Precision::kInt8: return "int8";
  }
  return "?";
}
Result<Device> parse_device(const std::string& s) {
  if (s == "cpu") return Device::kCpu;
  if (s == "cuda" || s == "gpu") return Device::kCuda;
  return invalid_argument("unknown device '" + s + "' (expected cpu or cuda)");
}
Result<Precision> parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::kFp32;
  if (s == "fp16") return Precision::kFp16;
  if (s == "int8") return Precision::kInt8;
  return invalid_argument("unknown precision '" + s + "' (expected fp32, fp16 or int8)");
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
  Shape s;
  std::stringstream ss(dims);
  std::string part;
  while (std::getline(ss, part, 'x')) {
    char* end = nullptr;
    long long v = std::strtoll(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || v <= 0)
      return invalid_argument("bad shape '" + spec + "': expected e.g. images:1x3x640x640");
    s.push_back(v);
  }
  if (s.empty()) return invalid_argument("bad shape '" + spec + "'");
  return s;
}

std::vector<std::string> parse_class_names(const std::string& lit) {
  std::vector<std::pair<int, std::string>> entries;
  std::regex re(R"((\d+)\s*:\s*(['"])((?:(?!\2).)*)\2)");
  for (auto it = std::sregex_iterator(lit.begin(), lit.end(), re); it != std::sregex_iterator(); ++it)
    entries.emplace_back(std::stoi((*it)[1].str()), (*it)[3].str());
  std::vector<std::string> names;
  for (auto& [idx, n] : entries) {
    if (idx < 0 || idx > 100000) continue;
    if (static_cast<size_t>(idx) >= names.size()) names.resize(static_cast<size_t>(idx) + 1);
    names[static_cast<size_t>(idx)] = n;
  }
  return names;
}

// ---- Engine --------------------------------------------------------------------------------

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;
const ModelInfo& Engine::info() const { return impl_->info; }
const BuildOptions& Engine::options() const { return impl_->options; }
ShapeProfile Engine::profile() const { return impl_->profile; }

Result<SpecializedGraph> Engine::Impl::prepare(const Shape& input_shape, const PassOptions& passes) const {
  if (!profile.contains(input_shape))
    return invalid_argument("input shape " + shape_str(input_shape) + " is outside the engine's profile (min " +
                            shape_str(profile.min) + ", max " + shape_str(profile.max) + ")");
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, specialize(graph, {{info.input_name, input_shape}}));
  QYOLO_RETURN_IF_ERROR(run_default_passes(sg, passes));
  if (options.precision == Precision::kInt8) {
    QuantizeOptions q;
    q.float_layers_regex = options.float_layers_regex;
    QYOLO_RETURN_IF_ERROR(quantize_graph(sg, activation_scales, q));
  }
  return sg;
}

namespace {

Result<std::unique_ptr<Engine::Impl>> make_impl(std::string onnx_bytes, const std::string& source,
                                                const BuildOptions& options) {
  auto impl = std::make_unique<Engine::Impl>();
  std::string base_dir = std::filesystem::path(source).parent_path().string();
  QYOLO_ASSIGN_OR_RETURN(impl->graph, import_onnx_bytes(onnx_bytes, source, base_dir.empty() ? "." : base_dir));
  impl->onnx_bytes = std::move(onnx_bytes);
  impl->options = options;
  const Graph& g = impl->graph;
  if (g.inputs.size() != 1)
    return unsupported(source + ": qyolo engines take exactly one image input, the model has " +
                       std::to_string(g.inputs.size()));
  if (g.outputs.size() < 1) return corrupt(source + ": the model has no output");
  const ValueInfo& in = g.inputs[0];
  if (in.dims.size() != 4)
    return unsupported(source + ": input '" + in.name + "' has rank " + std::to_string(in.dims.size()) + " (" +
                       in.dims_str() + "); an NCHW image input of rank 4 is expected");
  if (in.dtype != DataType::kFloat32)
    return unsupported(source + ": input '" + in.name + "' is " + dtype_name(in.dtype) + ", float32 expected");
  ModelInfo& info = impl->info;
  info.source = source;
  info.input_name = in.name;
  for (const auto& d : in.dims) info.input_dims.push_back(d.is_static() ? d.value : -1);
  info.output_name = g.outputs[0].name;
  info.opset = static_cast<int>(g.opset);
  if (auto it = g.metadata.find("names"); it != g.metadata.end()) info.class_names = parse_class_names(it->second);
  if (auto it = g.metadata.find("stride"); it != g.metadata.end()) info.stride = std::max(1, std::atoi(it->second.c_str()));
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
        return invalid_argument("profile shape " + shape_str(*s) + " must have rank 4 (NCHW) for input '" + in.name + "'");
      for (size_t i = 0; i < 4; ++i)
        if (fixed[i] >= 0 && (*s)[i] != fixed[i])
          return invalid_argument("profile shape " + shape_str(*s) + " conflicts with the model's input '" + in.name +
                                  "' (" + in.dims_str() + ")");
    }
    for (size_t i = 0; i < 4; ++i)
      if (!(p.min[i] <= p.opt[i] && p.opt[i] <= p.max[i]))
        return invalid_argument("profile must satisfy min <= opt <= max in every dim (min " + shape_str(p.min) +
                                ", opt " + shape_str(p.opt) + ", max " + shape_str(p.max) + ")");
    impl->profile = p;
  } else if (dynamic) {
    // No profile given: a generous default (the CPU backend specialises per shape anyway).
    Shape mn = fixed, opt = fixed, mx = fixed;
    const int64_t dflt_min[4] = {1, 3, 32, 32}, dflt_opt[4] = {1, 3, 640, 640}, dflt_max[4] = {64, 3, 4096, 4096};
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
  return impl;
}

Status finish_build(Engine::Impl& impl) {
  if (impl.options.precision == Precision::kInt8 && !impl.info.has_qdq && impl.activation_scales.empty()) {
    if (impl.options.calibration_file.empty())
      return invalid_argument("INT8 needs a calibration cache (--cache) or a model with Q/DQ nodes; run `qyolo calibrate` first");
    QYOLO_ASSIGN_OR_RETURN(impl.activation_scales, load_activation_scales(impl.options.calibration_file, impl.graph));
  }
  if (impl.options.device == Device::kCpu && impl.options.precision == Precision::kFp16)
    return unsupported("fp16 precision needs --device cuda; the CPU backend runs fp32 or int8");
  if (impl.options.device == Device::kCuda && impl.options.precision == Precision::kInt8)
    return unsupported("INT8 on the CUDA backend is not implemented yet; use --device cpu for INT8, or --fp16 on cuda");
  // Validate by preparing at the opt shape: unsupported ops / shapes fail here, not at run time.
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, impl.prepare(impl.profile.opt));
  if (impl.options.device == Device::kCuda) {
    QYOLO_ASSIGN_OR_RETURN(auto exec, build_cuda_executor(std::move(sg), impl.options));
    return Status::ok();
  }
  QYOLO_ASSIGN_OR_RETURN(auto exec, CpuExecutor::build(std::move(sg)));
  return Status::ok();
}

// Engine file: magic, format version, qyolo version, options, scales, the ONNX bytes, FNV-1a checksum.
constexpr char kMagic[8] = {'Q', 'Y', 'O', 'L', 'O', 'E', 'N', 'G'};
constexpr uint32_t kFormatVersion = 1;

uint64_t fnv1a(const std::string& data) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

class Writer {
 public:
  void u32(uint32_t v) { buf_.append(reinterpret_cast<const char*>(&v), 4); }
  void u64(uint64_t v) { buf_.append(reinterpret_cast<const char*>(&v), 8); }
  void f32(float v) { buf_.append(reinterpret_cast<const char*>(&v), 4); }
  void str(const std::string& s) {
    u64(s.size());
    buf_ += s;
  }
  void shape(const Shape& s) {
    u32(static_cast<uint32_t>(s.size()));
    for (int64_t d : s) u64(static_cast<uint64_t>(d));
  }
  std::string& bytes() { return buf_; }

 private:
  std::string buf_;
};

class Reader {
 public:
  Reader(const std::string& b, std::string path) : b_(b), path_(std::move(path)) {}
  Status need(size_t n) {
    if (pos_ + n > b_.size()) return corrupt("engine file '" + path_ + "' is truncated");
    return Status::ok();
  }
  Result<uint32_t> u32() {
    QYOLO_RETURN_IF_ERROR(need(4));
    uint32_t v;
    std::memcpy(&v, b_.data() + pos_, 4);
    pos_ += 4;
    return v;
  }
  Result<uint64_t> u64() {
    QYOLO_RETURN_IF_ERROR(need(8));
    uint64_t v;
    std::memcpy(&v, b_.data() + pos_, 8);
    pos_ += 8;
    return v;
  }
  Result<float> f32() {
    QYOLO_RETURN_IF_ERROR(need(4));
    float v;
    std::memcpy(&v, b_.data() + pos_, 4);
    pos_ += 4;
    return v;
  }
  Result<std::string> str() {
    QYOLO_ASSIGN_OR_RETURN(uint64_t n, u64());
    QYOLO_RETURN_IF_ERROR(need(n));
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  Result<Shape> shape() {
    QYOLO_ASSIGN_OR_RETURN(uint32_t n, u32());
    if (n > 16) return corrupt("engine file '" + path_ + "': implausible shape rank " + std::to_string(n));
    Shape s;
    for (uint32_t i = 0; i < n; ++i) {
      QYOLO_ASSIGN_OR_RETURN(uint64_t d, u64());
      s.push_back(static_cast<int64_t>(d));
    }
    return s;
  }

 private:
  const std::string& b_;
  std::string path_;
  size_t pos_ = 0;
};

}  // namespace

Result<std::shared_ptr<const Engine>> Engine::build(const std::string& onnx_path, const BuildOptions& options) {
  std::error_code ec;
  if (!std::filesystem::exists(onnx_path, ec)) return not_found("ONNX file '" + onnx_path + "' does not exist");
  std::ifstream f(onnx_path, std::ios::binary);
  if (!f) return io_error("cannot open ONNX file '" + onnx_path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  QYOLO_ASSIGN_OR_RETURN(auto impl, make_impl(ss.str(), onnx_path, options));
  QYOLO_RETURN_IF_ERROR(finish_build(*impl));
  return std::shared_ptr<const Engine>(new Engine(std::move(impl)));
}

Status Engine::save(const std::string& path) const {
  Writer w;
  w.bytes().append(kMagic, 8);
  w.u32(kFormatVersion);
  w.str(QYOLO_VERSION_STRING);
  w.str(impl_->info.source);
  w.u32(static_cast<uint32_t>(impl_->options.device));
  w.u32(static_cast<uint32_t>(impl_->options.precision));
  w.str(impl_->options.float_layers_regex);
  w.shape(impl_->profile.min);
  w.shape(impl_->profile.opt);
  w.shape(impl_->profile.max);
  w.u64(impl_->activation_scales.size());
  for (const auto& [name, scale] : impl_->activation_scales) {
    w.str(name);
    w.f32(scale);
  }
  w.str(impl_->onnx_bytes);
  uint64_t checksum = fnv1a(w.bytes());
  w.u64(checksum);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return io_error("cannot write engine file '" + tmp + "'");
    out.write(w.bytes().data(), static_cast<std::streamsize>(w.bytes().size()));
    if (!out) {
      std::filesystem::remove(tmp);
      return io_error("writing engine file '" + tmp + "' failed (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return io_error("cannot move '" + tmp + "' to '" + path + "': " + ec.message());
  return Status::ok();
}

Result<std::shared_ptr<const Engine>> Engine::load(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return not_found("engine file '" + path + "' does not exist");
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string bytes = ss.str();
  if (bytes.size() < 8 + 4 + 8 || std::memcmp(bytes.data(), kMagic, 8) != 0)
    return corrupt("'" + path + "' is not a qyolo engine file (bad magic)");
  uint64_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  std::string payload = bytes.substr(0, bytes.size() - 8);
  Reader r(payload, path);
  std::string magic(8, '\0');
  QYOLO_RETURN_IF_ERROR(r.need(8));
  QYOLO_ASSIGN_OR_RETURN(uint32_t format, (Reader(payload.substr(8), path).u32()));
  if (format != kFormatVersion)
    return version_mismatch("engine file '" + path + "' has format version " + std::to_string(format) +
                            ", this qyolo (" QYOLO_VERSION_STRING ") reads version " + std::to_string(kFormatVersion) +
                            "; rebuild it with `qyolo build`");
  if (fnv1a(payload) != stored)
    return corrupt("engine file '" + path + "' is corrupted (checksum mismatch)");
  Reader rd(payload.substr(12), path);
  QYOLO_ASSIGN_OR_RETURN(std::string version, rd.str());
  if (version != QYOLO_VERSION_STRING)
    return version_mismatch("engine file '" + path + "' was built by qyolo " + version + ", this is qyolo " +
                            QYOLO_VERSION_STRING + "; rebuild it with `qyolo build`");
  BuildOptions options;
  QYOLO_ASSIGN_OR_RETURN(std::string source, rd.str());
  QYOLO_ASSIGN_OR_RETURN(uint32_t device, rd.u32());
  QYOLO_ASSIGN_OR_RETURN(uint32_t precision, rd.u32());
  if (device > 1 || precision > 2) return corrupt("engine file '" + path + "': bad device/precision field");
  options.device = static_cast<Device>(device);
  options.precision = static_cast<Precision>(precision);
  QYOLO_ASSIGN_OR_RETURN(options.float_layers_regex, rd.str());
  ShapeProfile profile;
  QYOLO_ASSIGN_OR_RETURN(profile.min, rd.shape());
  QYOLO_ASSIGN_OR_RETURN(profile.opt, rd.shape());
  QYOLO_ASSIGN_OR_RETURN(profile.max, rd.shape());
  options.profile = profile;
  QYOLO_ASSIGN_OR_RETURN(uint64_t n_scales, rd.u64());
  std::map<std::string, float> scales;
  for (uint64_t i = 0; i < n_scales; ++i) {
    QYOLO_ASSIGN_OR_RETURN(std::string name, rd.str());
    QYOLO_ASSIGN_OR_RETURN(float s, rd.f32());
    scales[name] = s;
  }
  QYOLO_ASSIGN_OR_RETURN(std::string onnx_bytes, rd.str());
  QYOLO_ASSIGN_OR_RETURN(auto impl, make_impl(std::move(onnx_bytes), source, options));
  impl->activation_scales = std::move(scales);
  QYOLO_RETURN_IF_ERROR(finish_build(*impl));
  return std::shared_ptr<const Engine>(new Engine(std::move(impl)));
}

Result<std::unique_ptr<ExecutionContext>> Engine::create_context() const {
  auto impl = std::make_unique<ExecutionContext::Impl>();
  impl->engine = impl_.get();
  return std::make_unique<ExecutionContext>(std::move(impl));
}

// ---- ExecutionContext --------------------------------------------------------------------

ExecutionContext::ExecutionContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ExecutionContext::~ExecutionContext() = default;

#ifdef QYOLO_HAS_CUDA
Result<std::unique_ptr<CudaExecutor>> build_cuda_executor(SpecializedGraph graph, const BuildOptions& options) {
  CudaBuildOptions o;
  o.precision = options.precision == Precision::kFp16 ? CudaPrecision::kFp16 : CudaPrecision::kFp32;
  return CudaExecutor::build(std::move(graph), o);
}
#else
Result<std::unique_ptr<CudaExecutor>> build_cuda_executor(SpecializedGraph, const BuildOptions&) {
  return unsupported("this qyolo was built without CUDA (no nvcc at build time); use --device cpu");
}
#endif

ExecutionContext::Impl::~Impl() = default;

Status ExecutionContext::Impl::run(const Shape& shape, const std::map<std::string, Tensor>& inputs,
                                   std::map<std::string, Tensor>& outputs) {
  if (engine->options.device == Device::kCuda) {
#ifdef QYOLO_HAS_CUDA
    auto it = cuda_executors.find(shape);
    if (it == cuda_executors.end()) {
      QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, engine->prepare(shape));
      QYOLO_ASSIGN_OR_RETURN(auto exec, build_cuda_executor(std::move(sg), engine->options));
      constexpr size_t kMaxCachedShapes = 8;
      if (cuda_executors.size() >= kMaxCachedShapes) cuda_executors.erase(cuda_executors.begin());
      it = cuda_executors.emplace(shape, std::move(exec)).first;
    }
    return it->second->run(inputs, outputs);
#else
    return build_cuda_executor({}, engine->options).status();
#endif
  }
  QYOLO_ASSIGN_OR_RETURN(CpuExecutor * exec, executor_for(shape));
  return exec->run(inputs, outputs);
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

Status ExecutionContext::run(const Tensor& input, Tensor& output) {
  const auto& info = impl_->engine->info;
  if (input.dtype() != DataType::kFloat32)
    return invalid_argument("input '" + info.input_name + "' must be float32, got " + dtype_name(input.dtype()));
  if (input.rank() != 4)
    return invalid_argument("input '" + info.input_name + "' must have rank 4 (NCHW), got shape " +
                            shape_str(input.shape()));
  std::map<std::string, Tensor> outputs;
  QYOLO_RETURN_IF_ERROR(impl_->run(input.shape(), {{info.input_name, input}}, outputs));
  output = outputs.at(info.output_name);
  return Status::ok();
}

}  // namespace qyolo
