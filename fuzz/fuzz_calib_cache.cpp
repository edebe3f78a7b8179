// Fuzz target: TensorRT calibration cache text (issue 17). Whatever parses must hold only valid
// scales and survive a write/read round trip bit-exactly.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "calib/calib_cache.h"
#include "quant/quant_params.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto t = qyolo::parse_calibration_cache(text, "fuzz.cache");
  if (!t) return 0;
  for (const auto& [name, scale] : t->scales)
    if (!qyolo::is_valid_scale(scale)) std::abort();
  auto out = qyolo::format_calibration_cache(*t);
  if (!out) return 0;  // e.g. a name the writer refuses
  auto back = qyolo::parse_calibration_cache(*out, "fuzz.cache");
  if (!back || back->scales != t->scales || back->algorithm != t->algorithm) std::abort();
  return 0;
}
