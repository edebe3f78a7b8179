// Fuzz target: qyolo engine files (issue 17). The input is an engine file without its trailing
// checksum; the target appends the right one, so mutations reach the field parser instead of
// stopping at "checksum mismatch". A file that parses has its model imported and specialised at
// the stored opt shape, and an INT8 engine's precision plan lowered onto it (what Engine::load does
// before building the CPU executor).
#include <cstdint>
#include <string>

#include "onnx/onnx_import.h"
#include "passes/passes.h"
#include "passes/specialize.h"
#include "quant/precision_plan_pass.h"
#include "runtime/engine_impl.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string file(reinterpret_cast<const char*>(data), size);
  const uint64_t checksum = qyolo::engine_file_checksum(file);
  file.append(reinterpret_cast<const char*>(&checksum), 8);
  auto c = qyolo::parse_engine_file(std::move(file), "fuzz.qengine");
  if (!c) return 0;
  auto g = qyolo::import_onnx_bytes(c->onnx_bytes, c->source, "/nonexistent-fuzz-dir");
  if (!g || g->inputs.size() != 1) return 0;
  auto sg = qyolo::specialize(*g, {{g->inputs[0].name, c->profile.opt}});
  if (!sg || c->options.precision != qyolo::Precision::kInt8 || !qyolo::run_default_passes(*sg).is_ok()) return 0;
  if (!qyolo::apply_precision_plan(*sg, c->plan, "fuzz.qengine").is_ok()) return 0;
  if (c->options.device == qyolo::Device::kCpu) (void)qyolo::apply_int8_storage(*sg, c->plan, "fuzz.qengine");
  return 0;
}
