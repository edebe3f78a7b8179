// Fuzz target: the CLI's --min/--opt/--max-shapes (and bench --shapes) parser (issue 17). A spec
// that parses must have positive dims and print back to the same dims.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "qyolo/engine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string spec(reinterpret_cast<const char*>(data), size);
  std::string name;
  auto s = qyolo::parse_shape_spec(spec, &name);
  if (!s) return 0;
  if (s->empty()) std::abort();
  for (int64_t d : *s)
    if (d <= 0) std::abort();
  auto again = qyolo::parse_shape_spec(qyolo::shape_str(*s));
  if (!again || *again != *s) std::abort();
  return 0;
}
