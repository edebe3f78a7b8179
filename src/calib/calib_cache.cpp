#include "calib/calib_cache.h"

#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>
#include <vector>

#include "ir/file_io.h"
#include "quant/quant_params.h"

namespace qyolo {
namespace {

std::string fmt_double(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

std::string_view rstrip(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string_view lstrip(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

bool is_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

Result<std::string> read_text(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return not_found("calibration file '" + path.string() + "' does not exist");
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error("cannot open calibration file '" + path.string() + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return io_error("failed reading calibration file '" + path.string() + "'");
  return ss.str();
}

// One PPQ value: a number (the range) or [min, max].
Result<double> ppq_amax(const nlohmann::json& v, const std::string& where) {
  if (v.is_number()) {
    const double r = std::fabs(v.get<double>());
    if (!std::isfinite(r)) return corrupt(where + ": range is not finite");
    return r;
  }
  if (v.is_array()) {
    if (v.size() != 2 || !v[0].is_number() || !v[1].is_number())
      return corrupt(where + ": a list range must be [min, max] numbers, got " +
                     v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    const double r = std::max(std::fabs(v[0].get<double>()), std::fabs(v[1].get<double>()));
    if (!std::isfinite(r))
      return corrupt(where + ": range " + v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
                     " is not finite");
    return r;
  }
  return corrupt(where + ": range must be a number or [min, max], got " +
                 v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace

uint32_t float_to_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof(b));
  return b;
}

float float_from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

Result<CalibrationTable> parse_calibration_cache(std::string_view text, const std::string& source) {
  CalibrationTable table;
  size_t line_no = 0;
  bool have_header = false;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    const size_t end = nl == std::string_view::npos ? text.size() : nl;
    std::string_view line = rstrip(text.substr(pos, end - pos));
    pos = end + 1;
    ++line_no;
    const std::string where = source + ":" + std::to_string(line_no);
    if (!have_header) {
      if (line_no == 1 && line.size() >= 3 && static_cast<unsigned char>(line[0]) == 0xEF &&
          static_cast<unsigned char>(line[1]) == 0xBB && static_cast<unsigned char>(line[2]) == 0xBF)
        line.remove_prefix(3);  // UTF-8 BOM from editors
      if (line.empty()) continue;
      // TRT-<version>-<Algorithm>
      const size_t dash = line.size() > 4 ? line.find('-', 4) : std::string_view::npos;
      if (line.substr(0, 4) != "TRT-" || dash == std::string_view::npos ||
          !is_digits(line.substr(4, dash - 4)) || dash + 1 >= line.size())
        return corrupt(where + ": expected a header 'TRT-<version>-<Algorithm>', got '" + std::string(line) +
                       "'");
      table.header_version = std::string(line.substr(4, dash - 4));
      table.algorithm = std::string(line.substr(dash + 1));
      have_header = true;
      continue;
    }
    if (line.empty()) continue;
    const size_t sep = line.rfind(": ");
    if (sep == std::string_view::npos)
      return corrupt(where + ": expected '<tensor>: <hex scale>', got '" + std::string(line) + "'");
    const std::string name(line.substr(0, sep));
    const std::string_view hex = lstrip(line.substr(sep + 2));
    if (name.empty()) return corrupt(where + ": empty tensor name");
    uint32_t bits = 0;
    const auto [ptr, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), bits, 16);
    if (hex.empty() || hex.size() > 8 || ec != std::errc() || ptr != hex.data() + hex.size())
      return corrupt(where + ": tensor '" + name + "': scale '" + std::string(hex) +
                     "' is not 1 to 8 hex digits");
    const float scale = float_from_bits(bits);
    if (!is_valid_scale(scale))
      return corrupt(where + ": tensor '" + name + "': scale " + std::string(hex) + " = " +
                     fmt_double(scale) +
                     " is not a positive normal float (0, -0, denormal, inf and NaN are refused)");
    if (!table.scales.emplace(name, scale).second)
      return corrupt(where + ": tensor '" + name + "' appears twice");
  }
  if (!have_header)
    return corrupt(source + ": empty calibration cache (no 'TRT-<version>-<Algorithm>' header)");
  return table;
}

Result<CalibrationTable> read_calibration_cache(const std::filesystem::path& path) {
  QYOLO_ASSIGN_OR_RETURN(std::string text, read_text(path));
  return parse_calibration_cache(text, path.string());
}

Result<std::string> format_calibration_cache(const CalibrationTable& table) {
  const std::string version = table.header_version.empty() ? kCalibCacheVersion : table.header_version;
  if (!is_digits(version))
    return invalid_argument("calibration cache version '" + version + "' must be decimal digits");
  if (table.algorithm.empty() || table.algorithm.find_first_of("\r\n") != std::string::npos)
    return invalid_argument("calibration cache algorithm '" + table.algorithm +
                            "' is empty or has a newline");
  std::string out = "TRT-" + version + "-" + table.algorithm + "\n";
  for (const auto& [name, scale] : table.scales) {  // std::map: sorted, deterministic
    if (name.empty() || name.find_first_of("\r\n") != std::string::npos)
      return invalid_argument("tensor name '" + name + "' is empty or has a newline");
    if (!is_valid_scale(scale))
      return invalid_argument("tensor '" + name + "': scale " + fmt_double(scale) +
                              " is not a positive normal float");
    char hex[16];
    std::snprintf(hex, sizeof(hex), "%08x", static_cast<unsigned>(float_to_bits(scale)));
    out += name;
    out += ": ";
    out += hex;
    out += '\n';
  }
  return out;
}

Status write_calibration_cache(const std::filesystem::path& path, const CalibrationTable& table) {
  QYOLO_ASSIGN_OR_RETURN(std::string text, format_calibration_cache(table));
  return write_file_atomically(path.string(), text, "calibration cache");
}

Result<CalibrationTable> parse_ppq_json(std::string_view text, const std::string& source) {
  const nlohmann::json doc =
      nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return corrupt(source + ": not valid json");
  if (!doc.is_object() || !doc.contains("act_quant_info") || !doc["act_quant_info"].is_object())
    return corrupt(source + ": expected an object with an \"act_quant_info\" object (PPQ json)");
  CalibrationTable table;
  table.algorithm = kPpqAlgorithmName;
  for (const auto& [name, value] : doc["act_quant_info"].items()) {
    const std::string where = source + ": tensor '" + name + "'";
    QYOLO_ASSIGN_OR_RETURN(double amax, ppq_amax(value, where));
    const float scale = static_cast<float>(amax / kInt8QMax);
    if (!is_valid_scale(scale))
      return corrupt(where + ": range " + fmt_double(amax) + " gives scale " + fmt_double(scale) +
                     ", not a positive normal float (a range must be > 0 and < 4e40)");
    table.scales[name] = scale;
  }
  return table;
}

Result<CalibrationTable> read_ppq_json(const std::filesystem::path& path) {
  QYOLO_ASSIGN_OR_RETURN(std::string text, read_text(path));
  return parse_ppq_json(text, path.string());
}

Result<CalibrationTable> read_calibration_file(const std::filesystem::path& path) {
  QYOLO_ASSIGN_OR_RETURN(std::string text, read_text(path));
  std::string_view v = text;
  if (v.size() >= 3 && v.substr(0, 3) == "\xEF\xBB\xBF") v.remove_prefix(3);
  const size_t first = v.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && v[first] == '{') return parse_ppq_json(v, path.string());
  return parse_calibration_cache(text, path.string());
}

}  // namespace qyolo
