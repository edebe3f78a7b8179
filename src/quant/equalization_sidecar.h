// The activation-equalisation sidecar: the factors `qyolo calibrate` chose (it equalises by
// default, docs/accuracy.md) stored next to the calibration cache as CACHE + ".equalize", so that
// the cache and its factors travel together without a file the user passes. An INT8 build from a
// cache finds the sidecar itself (BuildOptions::equalization_sidecar); without one, the cache
// builds the plain per-tensor quantisation, as a TensorRT cache always did (the cache keeps every
// tensor's own scale; the equalised tensors' scales are extra entries named T + "/qyolo_equalized").
//
// File (little-endian): magic "QYOLOEQS" | u32 version 1 | u64 FNV-1a of the cache file's bytes |
// the factors as weight overrides (src/quant/weight_overrides.h: named "qyolo.equalize:" + T).
// The cache hash pairs the sidecar with the calibration it was written with: a cache rewritten
// since (another calibration, another tool) refuses the stale sidecar instead of mixing them.
#pragma once

#include <optional>
#include <string>

#include "passes/passes.h"

namespace qyolo {

inline constexpr const char* kEqualizationSidecarSuffix = ".equalize";

std::string equalization_sidecar_path(const std::string& cache_path);

// Writes the sidecar of the cache at `cache_path` (which must exist: its bytes are hashed).
Status write_equalization_sidecar(const std::string& cache_path, const EqualizationFactors& factors);

// Removes a sidecar left by an earlier calibration (a new cache without equalisation must not
// pair with it); ok when there is none.
Status remove_equalization_sidecar(const std::string& cache_path);

// The factors of the sidecar next to `cache_path`; nullopt when there is none. Errors name the
// sidecar: not a sidecar, corrupted, or written for another version of the cache.
Result<std::optional<EqualizationFactors>> read_equalization_sidecar(const std::string& cache_path);

}  // namespace qyolo
