// Fuzz target: PPQ json calibration files (issue 17), through the same dispatcher the CLI uses
// (read_calibration_file picks PPQ json by the leading '{'). Parsed scales must all be valid.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "calib/calib_cache.h"
#include "quant/quant_params.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto t = qyolo::parse_ppq_json(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
  if (!t) return 0;
  for (const auto& [name, scale] : t->scales)
    if (!qyolo::is_valid_scale(scale)) std::abort();
  return 0;
}
