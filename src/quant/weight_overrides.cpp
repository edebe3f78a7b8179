#include "quant/weight_overrides.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ir/file_io.h"

namespace qyolo {

namespace {

constexpr char kMagic[8] = {'Q', 'Y', 'O', 'L', 'O', 'W', 'T', 'S'};
constexpr uint32_t kVersion = 1;

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

template <typename T>
void put(std::string& b, T v) {
  b.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

class Reader {
 public:
  Reader(const std::string& b, const std::string& source) : b_(b), source_(source) {}
  template <typename T>
  Result<T> get() {
    if (sizeof(T) > b_.size() - pos_) return corrupt("weight overrides '" + source_ + "' are truncated");
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  Result<std::string> bytes(uint64_t n) {
    if (n > b_.size() - pos_) return corrupt("weight overrides '" + source_ + "' are truncated");
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  size_t remaining() const { return b_.size() - pos_; }

 private:
  const std::string& b_;
  std::string source_;
  size_t pos_ = 0;
};

}  // namespace

Status apply_weight_overrides(SpecializedGraph& sg, const WeightOverrides& overrides) {
  for (const auto& [name, t] : overrides) {
    auto it = sg.graph.initializers.find(name);
    if (it == sg.graph.initializers.end() || it->second.dtype() != DataType::kFloat32)
      return invalid_argument(
          "weight override '" + name +
          "' is not a float initializer of this model (overrides made for another model?)");
    if (t.dtype() != DataType::kFloat32 || t.shape() != it->second.shape())
      return invalid_argument("weight override '" + name + "' has shape " + shape_str(t.shape()) +
                              ", the model's initializer " + shape_str(it->second.shape()));
    it->second = t;
    sg.values[name] = ValueDesc{DataType::kFloat32, t.shape(), t};
  }
  return Status::ok();
}

std::string format_weight_overrides(const WeightOverrides& overrides) {
  std::string b(kMagic, 8);
  put<uint32_t>(b, kVersion);
  put<uint64_t>(b, overrides.size());
  for (const auto& [name, t] : overrides) {
    put<uint64_t>(b, name.size());
    b += name;
    put<uint32_t>(b, static_cast<uint32_t>(t.rank()));
    for (int64_t d : t.shape()) put<uint64_t>(b, static_cast<uint64_t>(d));
    b.append(reinterpret_cast<const char*>(t.data<float>()), t.nbytes());
  }
  put<uint64_t>(b, fnv1a(b));
  return b;
}

Result<WeightOverrides> parse_weight_overrides(const std::string& file, const std::string& source) {
  if (file.size() < 8 + 4 + 8 + 8 || std::memcmp(file.data(), kMagic, 8) != 0)
    return corrupt("'" + source + "' is not a qyolo weight-overrides file (bad magic)");
  const std::string payload = file.substr(0, file.size() - 8);
  uint64_t stored;
  std::memcpy(&stored, file.data() + payload.size(), 8);
  if (fnv1a(payload) != stored)
    return corrupt("weight overrides '" + source + "' are corrupted (checksum mismatch)");
  Reader rd(payload, source);
  QYOLO_RETURN_IF_ERROR(rd.bytes(8).status());
  QYOLO_ASSIGN_OR_RETURN(uint32_t version, rd.get<uint32_t>());
  if (version != kVersion)
    return version_mismatch("weight overrides '" + source + "' have version " + std::to_string(version) +
                            ", this qyolo reads version " + std::to_string(kVersion));
  QYOLO_ASSIGN_OR_RETURN(uint64_t n, rd.get<uint64_t>());
  WeightOverrides out;
  for (uint64_t i = 0; i < n; ++i) {
    QYOLO_ASSIGN_OR_RETURN(uint64_t len, rd.get<uint64_t>());
    QYOLO_ASSIGN_OR_RETURN(std::string name, rd.bytes(len));
    QYOLO_ASSIGN_OR_RETURN(uint32_t rank, rd.get<uint32_t>());
    if (rank > 8) return corrupt("weight overrides '" + source + "': implausible rank for '" + name + "'");
    Shape shape;
    uint64_t numel = 1;
    for (uint32_t k = 0; k < rank; ++k) {
      QYOLO_ASSIGN_OR_RETURN(uint64_t d, rd.get<uint64_t>());
      if (d > rd.remaining() / 4 + 1)
        return corrupt("weight overrides '" + source + "': bad shape for '" + name + "'");
      numel *= d;
      if (numel > rd.remaining() / 4)
        return corrupt("weight overrides '" + source + "' are truncated ('" + name + "')");
      shape.push_back(static_cast<int64_t>(d));
    }
    Tensor t(DataType::kFloat32, shape);
    QYOLO_ASSIGN_OR_RETURN(std::string data, rd.bytes(numel * 4));
    std::memcpy(t.raw(), data.data(), data.size());
    for (int64_t j = 0; j < t.numel(); ++j)
      if (!std::isfinite(t.data<float>()[j]))
        return corrupt("weight overrides '" + source + "': '" + name + "' holds a non-finite value");
    if (!out.emplace(name, std::move(t)).second)
      return corrupt("weight overrides '" + source + "': '" + name + "' appears twice");
  }
  if (rd.remaining() != 0) return corrupt("weight overrides '" + source + "': unexpected bytes at the end");
  return out;
}

Status write_weight_overrides(const std::string& path, const WeightOverrides& overrides) {
  const std::string bytes = format_weight_overrides(overrides);
  return write_file_atomically(path, bytes);
}

Result<WeightOverrides> read_weight_overrides(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return not_found("weight overrides '" + path + "' do not exist");
  std::ifstream f(path, std::ios::binary);
  if (!f) return io_error("cannot open '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_weight_overrides(ss.str(), path);
}

}  // namespace qyolo
