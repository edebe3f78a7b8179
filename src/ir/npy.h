// qyolo — NumPy .npy files (format 1.0/2.0/3.0, little-endian, C order) <-> Tensor.
// Used for reference tensors (../shared/reference) and for dumping intermediate activations.
#pragma once

#include <string>

#include "qyolo/status.h"
#include "qyolo/tensor.h"

namespace qyolo {

// Reads float32/float16/int8/uint8/int32/int64/bool arrays. Errors: kNotFound (missing file),
// kCorrupt (bad magic, malformed header, truncated or oversized data), kUnsupported (big-endian or
// other dtypes, fortran_order=True).
Result<Tensor> read_npy(const std::string& path);

// Writes format 1.0 (2.0 when the header does not fit), header padded to 64 bytes like NumPy.
// Atomic: the data goes to `path + ".tmp"` first and is renamed over `path`.
Status write_npy(const std::string& path, const Tensor& tensor);

}  // namespace qyolo
