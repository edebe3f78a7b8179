#include "ir/shape_arith.h"

#include <algorithm>

namespace qyolo {

int64_t ShapeArith::apply(int64_t a, int64_t b, char op, bool (*f)(int64_t, int64_t, int64_t*)) {
  if (!ok()) return 0;
  int64_t r = 0;
  if (f(a, b, &r)) {
    failure_ = std::to_string(a) + " " + op + " " + std::to_string(b) + " overflows int64";
    return 0;
  }
  return r;
}

Status ShapeArith::status(const std::string& what) const {
  if (ok()) return internal_error(what + ": ShapeArith::status() called without an overflow");
  return invalid_argument(what + ": " + failure_);
}

Result<int64_t> checked_numel(const Shape& s, const std::string& what) {
  // `extent` counts a 0 dim as 1, so a zero-size tensor cannot carry a 2^62 dim either: with every
  // shape checked, any product or sum of a few of its dims fits in int64 and op code needs no checks
  // on them (only on values it combines them with: pads, repeats, scales, steps).
  int64_t n = 1, extent = 1;
  for (int64_t d : s) {
    if (d < 0)
      return invalid_argument(what + ": negative dimension " + std::to_string(d) + " in shape " +
                              shape_str(s));
    if (checked_mul(extent, std::max<int64_t>(d, 1), &extent) || extent > kMaxTensorBytes)
      return invalid_argument(what + ": shape " + shape_str(s) + " is too large (more than 2^34 elements)");
    n *= d;
  }
  return n;
}

Result<int64_t> checked_nbytes(const Shape& s, DataType dtype, const std::string& what) {
  QYOLO_ASSIGN_OR_RETURN(int64_t n, checked_numel(s, what));
  int64_t bytes = 0;
  if (checked_mul(n, static_cast<int64_t>(dtype_size(dtype)), &bytes) || bytes > kMaxTensorBytes)
    return invalid_argument(what + ": shape " + shape_str(s) + " of " + dtype_name(dtype) + " is " +
                            std::to_string(n) + " elements, more than the " +
                            std::to_string(kMaxTensorBytes >> 30) + " GiB a tensor may take");
  return bytes;
}

}  // namespace qyolo
