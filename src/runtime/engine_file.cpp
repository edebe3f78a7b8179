// The engine file: its byte format, written and read (Engine::save / Engine::load in engine.cpp
// build the engine around it). A file from another format version, another qyolo version or with a
// bad checksum is refused with the file's name; every count and size is checked against the bytes
// left before it is used, so a truncated or hostile file gives an error, never a huge allocation.
#include <cmath>
#include <cstdio>
#include <cstring>

#include "quant/quant_params.h"
#include "runtime/engine_impl.h"

namespace qyolo {

namespace {

// Engine file (all integers little-endian; str = u64 length + bytes; shape = u32 rank + u64 dims):
//   magic "QYOLOENG" | u32 format version (kEngineFormatVersion) | str qyolo version | str source
//   | u32 device | u32 precision | u32 int8-fp16 (0 off, 1 on, 2 on + all-int8; + 4 float outputs;
//     + 8 uint8 NHWC image input)
//   | str float-layers regex
//   | shape min, opt, max
//   | u64 n, n x (str tensor, f32 scale)                              activation scales
//   | u64 n, n x (str initializer, shape, numel x f32)                 weight overrides (version 3)
//   | str gpu name | u32 cc major | u32 cc minor | u32 cudnn version   (version 2; empty/0 for cpu)
//   | u64 n, n x (str problem key, u64 m, m x i64)                     tactics (version 2)
//   | str precision plan (src/ir/precision_plan.cpp)                  (version 4)
//   | str ONNX bytes | u64 FNV-1a of everything before it
constexpr char kMagic[8] = {'Q', 'Y', 'O', 'L', 'O', 'E', 'N', 'G'};
constexpr uint32_t kFormatVersion = kEngineFormatVersion;

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

std::string float_str(float v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", static_cast<double>(v));
  return buf;
}

class Reader {
 public:
  // Reads `b` (which must outlive the reader) from byte `pos`.
  Reader(const std::string& b, std::string path, size_t pos = 0) : b_(b), path_(std::move(path)), pos_(pos) {}
  Status need(size_t n) {
    if (n > b_.size() - pos_)
      return corrupt("engine file '" + path_ + "' is truncated");  // no pos_ + n overflow
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
  size_t remaining() const { return b_.size() - pos_; }
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
  size_t pos_;
};

}  // namespace

std::string serialize_engine_file(const EngineFileContents& c) {
  Writer w;
  w.bytes().append(kMagic, 8);
  w.u32(kFormatVersion);
  w.str(QYOLO_VERSION_STRING);
  w.str(c.source);
  w.u32(static_cast<uint32_t>(c.options.device));
  w.u32(static_cast<uint32_t>(c.options.precision));
  // 2: --int8 --fp16 --all-int8; + 4: --float-output; + 8: uint8 NHWC image input
  w.u32((c.options.int8_fp16 ? (c.options.int8_all ? 2u : 1u) : 0u) | (c.options.float_outputs ? 4u : 0u) |
        (c.options.input_format == InputFormat::kUint8Nhwc ? 8u : 0u));
  w.str(c.options.float_layers_regex);
  w.shape(c.profile.min);
  w.shape(c.profile.opt);
  w.shape(c.profile.max);
  w.u64(c.scales.size());
  for (const auto& [name, scale] : c.scales) {
    w.str(name);
    w.f32(scale);
  }
  w.u64(c.weights.size());
  for (const auto& [name, t] : c.weights) {
    w.str(name);
    w.shape(t.shape());
    w.bytes().append(reinterpret_cast<const char*>(t.data<float>()), t.nbytes());
  }
  w.str(c.target.gpu_name);
  w.u32(static_cast<uint32_t>(c.target.cc_major));
  w.u32(static_cast<uint32_t>(c.target.cc_minor));
  w.u32(static_cast<uint32_t>(c.target.cudnn_version));
  w.u64(c.tactics.size());
  for (const auto& [key, choice] : c.tactics) {
    w.str(key);
    w.u64(choice.size());
    for (int64_t v : choice) w.u64(static_cast<uint64_t>(v));
  }
  w.str(serialize_precision_plan(c.plan));
  w.str(c.onnx_bytes);
  const uint64_t checksum = engine_file_checksum(w.bytes());
  w.u64(checksum);
  return std::move(w.bytes());
}

Result<EngineFileContents> parse_engine_file(std::string payload, const std::string& path) {
  if (payload.size() < 8 || std::memcmp(payload.data(), kMagic, 8) != 0)
    return corrupt("'" + path + "' is not a qyolo engine file (bad magic)");
  if (payload.size() < 8 + 4 + 8) return corrupt("engine file '" + path + "' is truncated");
  uint64_t stored;
  std::memcpy(&stored, payload.data() + payload.size() - 8, 8);
  payload.resize(payload.size() - 8);  // everything the checksum covers
  Reader rd(payload, path, /*pos=*/8);
  QYOLO_ASSIGN_OR_RETURN(uint32_t format, rd.u32());
  if (format != kFormatVersion)
    return version_mismatch("engine file '" + path + "' has format version " + std::to_string(format) +
                            ", this qyolo (" QYOLO_VERSION_STRING ") reads version " +
                            std::to_string(kFormatVersion) + "; rebuild it with `qyolo build`");
  if (engine_file_checksum(payload) != stored)
    return corrupt("engine file '" + path + "' is corrupted (checksum mismatch)");
  QYOLO_ASSIGN_OR_RETURN(std::string version, rd.str());
  if (version != QYOLO_VERSION_STRING)
    return version_mismatch("engine file '" + path + "' was built by qyolo " + version + ", this is qyolo " +
                            QYOLO_VERSION_STRING + "; rebuild it with `qyolo build`");
  EngineFileContents c;
  BuildOptions& options = c.options;
  QYOLO_ASSIGN_OR_RETURN(c.source, rd.str());
  QYOLO_ASSIGN_OR_RETURN(uint32_t device, rd.u32());
  QYOLO_ASSIGN_OR_RETURN(uint32_t precision, rd.u32());
  if (device > 1 || precision > 2) return corrupt("engine file '" + path + "': bad device/precision field");
  options.device = static_cast<Device>(device);
  options.precision = static_cast<Precision>(precision);
  QYOLO_ASSIGN_OR_RETURN(uint32_t int8_fp16, rd.u32());
  options.float_outputs = (int8_fp16 & 4u) != 0;
  options.input_format = (int8_fp16 & 8u) != 0 ? InputFormat::kUint8Nhwc : InputFormat::kFloat32Nchw;
  int8_fp16 &= ~12u;
  if (int8_fp16 > 2) return corrupt("engine file '" + path + "': bad int8-fp16 field");
  options.int8_fp16 = int8_fp16 >= 1;
  options.int8_all = int8_fp16 == 2;
  QYOLO_ASSIGN_OR_RETURN(options.float_layers_regex, rd.str());
  ShapeProfile& profile = c.profile;
  QYOLO_ASSIGN_OR_RETURN(profile.min, rd.shape());
  QYOLO_ASSIGN_OR_RETURN(profile.opt, rd.shape());
  QYOLO_ASSIGN_OR_RETURN(profile.max, rd.shape());
  options.profile = profile;
  QYOLO_ASSIGN_OR_RETURN(uint64_t n_scales, rd.u64());
  for (uint64_t i = 0; i < n_scales; ++i) {
    QYOLO_ASSIGN_OR_RETURN(std::string name, rd.str());
    QYOLO_ASSIGN_OR_RETURN(float s, rd.f32());
    if (!is_valid_scale(s))
      return corrupt("engine file '" + path + "': tensor '" + name + "' has scale " + float_str(s) +
                     ", not a positive normal float");
    c.scales[name] = s;
  }
  QYOLO_ASSIGN_OR_RETURN(uint64_t n_weights, rd.u64());
  for (uint64_t i = 0; i < n_weights; ++i) {
    QYOLO_ASSIGN_OR_RETURN(std::string name, rd.str());
    QYOLO_ASSIGN_OR_RETURN(Shape shape, rd.shape());
    uint64_t numel = 1;
    for (int64_t d : shape) {
      if (static_cast<uint64_t>(d) > rd.remaining() / 4 + 1 ||
          (numel *= static_cast<uint64_t>(d)) > rd.remaining() / 4)
        return corrupt("engine file '" + path + "' is truncated (weights '" + name + "')");
    }
    Tensor t(DataType::kFloat32, shape);
    for (int64_t j = 0; j < t.numel(); ++j) {
      QYOLO_ASSIGN_OR_RETURN(t.data<float>()[j], rd.f32());
      if (!std::isfinite(t.data<float>()[j]))
        return corrupt("engine file '" + path + "': weights '" + name + "' hold a non-finite value");
    }
    c.weights[name] = std::move(t);
  }
  CudaTarget& target = c.target;
  QYOLO_ASSIGN_OR_RETURN(target.gpu_name, rd.str());
  QYOLO_ASSIGN_OR_RETURN(uint32_t cc_major, rd.u32());
  QYOLO_ASSIGN_OR_RETURN(uint32_t cc_minor, rd.u32());
  QYOLO_ASSIGN_OR_RETURN(uint32_t cudnn, rd.u32());
  if (cc_major > 1000 || cc_minor > 1000 || cudnn > 100000000)
    return corrupt("engine file '" + path + "': bad GPU record");
  target.cc_major = static_cast<int>(cc_major);
  target.cc_minor = static_cast<int>(cc_minor);
  target.cudnn_version = static_cast<int>(cudnn);
  QYOLO_ASSIGN_OR_RETURN(uint64_t n_tactics, rd.u64());
  for (uint64_t i = 0; i < n_tactics; ++i) {
    QYOLO_ASSIGN_OR_RETURN(std::string key, rd.str());
    QYOLO_ASSIGN_OR_RETURN(uint64_t m, rd.u64());
    if (m > rd.remaining() / 8)
      return corrupt("engine file '" + path + "' is truncated (tactic '" + key + "')");
    std::vector<int64_t> choice;
    for (uint64_t k = 0; k < m; ++k) {
      QYOLO_ASSIGN_OR_RETURN(uint64_t v, rd.u64());
      choice.push_back(static_cast<int64_t>(v));
    }
    c.tactics[key] = std::move(choice);
  }
  QYOLO_ASSIGN_OR_RETURN(std::string plan, rd.str());
  QYOLO_ASSIGN_OR_RETURN(c.plan, parse_precision_plan(plan, "engine file '" + path + "'"));
  QYOLO_ASSIGN_OR_RETURN(c.onnx_bytes, rd.str());
  if (rd.remaining() != 0)
    return corrupt("engine file '" + path + "': " + std::to_string(rd.remaining()) +
                   " unexpected bytes after the model");
  return c;
}

uint64_t engine_file_checksum(const std::string& payload) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : payload) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace qyolo
