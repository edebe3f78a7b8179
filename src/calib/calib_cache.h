// qyolo — calibration tables on disk: the TensorRT calibration cache text format, and PPQ json.
//
// TensorRT cache:
//   TRT-<version>-<Algorithm>            e.g. TRT-8601-EntropyCalibration2, TRT-100300-MinMaxCalibration
//   <tensor name>: <hex>                  one line per tensor
// <hex> is the IEEE-754 float32 scale (amax / 127, see quant/quant_params.h) printed as a
// big-endian integer, e.g. 3c010a14. We write TRT-8601-<Algorithm> (the algorithm names come
// from calib_algo_cache_name in calib/calibrator.h), 8 lowercase hex digits, tensors sorted by
// name. Reading accepts real TensorRT caches: names may contain ':', '/', spaces, brackets (the
// value follows the LAST ": "), 1 to 8 hex digits of either case, trailing whitespace / CRLF and
// blank lines. Tensors the model does not have are returned too; the caller decides.
//
// PPQ json (PPQ's TensorRT export): {"act_quant_info": {"<tensor>": range, ...}} where range is
// the float dynamic range, i.e. amax (PPQ writes scale * 127; its TensorRT builder sets
// dynamic_range = (-|range|, |range|)). A value may also be a list [min, max], read as
// amax = max(|min|, |max|). scale = amax / 127.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "qyolo/status.h"

namespace qyolo {

inline constexpr const char* kCalibCacheVersion = "8601";
inline constexpr const char* kPpqAlgorithmName = "PPQ";  // CalibrationTable::algorithm of a PPQ file

struct CalibrationTable {
  std::string header_version;           // "8601" from TRT-8601-...; empty for PPQ json
  std::string algorithm;                // "EntropyCalibration2", ...; "PPQ" for PPQ json
  std::map<std::string, float> scales;  // tensor name -> scale (real = scale * q)
};

// Bit-exact float <-> IEEE-754 bits.
uint32_t float_to_bits(float f);
float float_from_bits(uint32_t bits);

// Parses cache text; `source` names the file in errors. Errors (kCorrupt) carry the 1-based line
// number: bad header, a line without ": ", empty name, bad hex, a scale that is not a positive
// normal float (0, -0, denormal, negative, inf, NaN: see is_valid_scale in quant/quant_params.h),
// a duplicate tensor.
Result<CalibrationTable> parse_calibration_cache(std::string_view text, const std::string& source);
Result<CalibrationTable> read_calibration_cache(const std::filesystem::path& path);

// The cache text; header_version defaults to kCalibCacheVersion when empty. Rejects an empty
// algorithm, names containing a newline or that are empty, and scales that are not positive normal
// floats.
Result<std::string> format_calibration_cache(const CalibrationTable& table);
// Atomic: writes <path>.tmp.<pid> in the same directory, then renames it over path.
Status write_calibration_cache(const std::filesystem::path& path, const CalibrationTable& table);

Result<CalibrationTable> parse_ppq_json(std::string_view text, const std::string& source);
Result<CalibrationTable> read_ppq_json(const std::filesystem::path& path);

// PPQ json when the first non-whitespace character (after an optional UTF-8 BOM) is '{',
// otherwise a TensorRT cache.
Result<CalibrationTable> read_calibration_file(const std::filesystem::path& path);

}  // namespace qyolo
