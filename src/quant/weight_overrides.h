// Weight overrides: float tensors that replace initializers of the prepared graph (after the
// graph passes, i.e. the names of folded conv weights and biases), so that a weight-side PTQ
// method (src/quant/weight_refine.h: clipped weights, corrected biases) is decided once and stored
// with the engine (engine file format 3). Backends see ordinary float weights: the CPU and CUDA
// INT8 convs quantise them per channel with max|W[c]| / 127 as always, so a clipped channel
// (max|W'[c]| = alpha) gets the scale alpha / 127 on both without any backend change.
//
// File (little-endian; str = u64 length + bytes; shape = u32 rank + u64 dims):
//   magic "QYOLOWTS" | u32 version 1 | u64 n, n x (str name, shape, numel x f32) | u64 FNV-1a of
//   everything before it
#pragma once

#include <map>
#include <string>

#include "passes/specialize.h"

namespace qyolo {

using WeightOverrides = std::map<std::string, Tensor>;  // initializer name -> float32 replacement

// Replaces each named initializer (and its constant value) of `g`. Errors when a name is not a
// float32 initializer of the graph or the shapes differ (overrides made for another model).
Status apply_weight_overrides(SpecializedGraph& g, const WeightOverrides& overrides);

// Serialised form (the layout above) and back; `source` names the data in errors.
std::string format_weight_overrides(const WeightOverrides& overrides);
Result<WeightOverrides> parse_weight_overrides(const std::string& bytes, const std::string& source);

Status write_weight_overrides(const std::string& path, const WeightOverrides& overrides);
Result<WeightOverrides> read_weight_overrides(const std::string& path);

}  // namespace qyolo
