#include "quant/equalization_sidecar.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ir/file_io.h"
#include "quant/activation_equalization.h"

namespace qyolo {

namespace {

constexpr char kMagic[8] = {'Q', 'Y', 'O', 'L', 'O', 'E', 'Q', 'S'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeader = 8 + 4 + 8;

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

Result<std::string> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return io_error("cannot open '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

std::string equalization_sidecar_path(const std::string& cache_path) {
  return cache_path + kEqualizationSidecarSuffix;
}

Status write_equalization_sidecar(const std::string& cache_path, const EqualizationFactors& factors) {
  QYOLO_ASSIGN_OR_RETURN(std::string cache, read_bytes(cache_path));
  std::string b(kMagic, 8);
  const uint32_t version = kVersion;
  const uint64_t hash = fnv1a(cache);
  b.append(reinterpret_cast<const char*>(&version), 4);
  b.append(reinterpret_cast<const char*>(&hash), 8);
  b += format_weight_overrides(with_equalization({}, factors));
  return write_file_atomically(equalization_sidecar_path(cache_path), b);
}

Status remove_equalization_sidecar(const std::string& cache_path) {
  std::error_code ec;
  std::filesystem::remove(equalization_sidecar_path(cache_path), ec);
  if (ec) return io_error("cannot remove '" + equalization_sidecar_path(cache_path) + "': " + ec.message());
  return Status::ok();
}

Result<std::optional<EqualizationFactors>> read_equalization_sidecar(const std::string& cache_path) {
  const std::string path = equalization_sidecar_path(cache_path);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<EqualizationFactors>();
  QYOLO_ASSIGN_OR_RETURN(std::string b, read_bytes(path));
  if (b.size() < kHeader || std::memcmp(b.data(), kMagic, 8) != 0)
    return corrupt("'" + path + "' is not a qyolo equalisation sidecar (bad magic)");
  uint32_t version;
  uint64_t hash;
  std::memcpy(&version, b.data() + 8, 4);
  std::memcpy(&hash, b.data() + 12, 8);
  if (version != kVersion)
    return version_mismatch("equalisation sidecar '" + path + "' has version " + std::to_string(version) +
                            ", this qyolo reads version " + std::to_string(kVersion));
  QYOLO_ASSIGN_OR_RETURN(std::string cache, read_bytes(cache_path));
  if (fnv1a(cache) != hash)
    return invalid_argument("equalisation sidecar '" + path + "' was written with another version of '" +
                            cache_path +
                            "' (the cache changed since): calibrate again, or delete the sidecar to "
                            "build without equalisation");
  QYOLO_ASSIGN_OR_RETURN(WeightOverrides w, parse_weight_overrides(b.substr(kHeader), path));
  if (!without_equalization(w).empty())
    return corrupt("equalisation sidecar '" + path + "' holds entries other than equalisation factors");
  return std::optional<EqualizationFactors>(equalization_factors_of(w));
}

}  // namespace qyolo
