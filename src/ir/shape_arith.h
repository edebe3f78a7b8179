// qyolo — checked shape arithmetic, the one place where sizes computed from a file are checked.
//
// Dims, pads, strides and element counts come from ONNX files, engine files and the command line;
// a hostile value (2^62, INT64_MAX) must be an error naming its tensor/node and value, never a
// signed overflow, a wrapped size that passes a "needs N bytes" check, or a terabyte allocation.
// Every shape a loader reads or a shape inference produces goes through check_shape (via
// checked_numel / checked_nbytes); op code that combines attribute values uses ShapeArith.
#pragma once

#include <cstdint>
#include <string>

#include "qyolo/status.h"
#include "qyolo/tensor.h"

namespace qyolo {

// The largest single tensor a model may declare or infer (16 GiB). Initializers are also checked
// against the bytes actually present in the file before anything is allocated.
inline constexpr int64_t kMaxTensorBytes = int64_t{1} << 34;

// Raw primitives (true = overflowed). shape_numel uses checked_mul and saturates.
inline bool checked_mul(int64_t a, int64_t b, int64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}
inline bool checked_add(int64_t a, int64_t b, int64_t* out) {
  return __builtin_add_overflow(a, b, out);
}
inline bool checked_sub(int64_t a, int64_t b, int64_t* out) {
  return __builtin_sub_overflow(a, b, out);
}

// Accumulates the first overflow of a chain of operations, so shape code reads like arithmetic:
//   ShapeArith m;  int64_t eff = m.add(m.mul(k - 1, dilation), 1);  ...
//   if (!m.ok()) return m.status(node.describe() + ": window");
// After an overflow every result is 0 and status() names the operation and its operands.
class ShapeArith {
 public:
  int64_t add(int64_t a, int64_t b) { return apply(a, b, '+', checked_add); }
  int64_t sub(int64_t a, int64_t b) { return apply(a, b, '-', checked_sub); }
  int64_t mul(int64_t a, int64_t b) { return apply(a, b, '*', checked_mul); }
  bool ok() const { return failure_.empty(); }
  // kInvalidArgument "<what>: <a> * <b> overflows int64"; ok() must be false.
  Status status(const std::string& what) const;

 private:
  int64_t apply(int64_t a, int64_t b, char op, bool (*f)(int64_t, int64_t, int64_t*));
  std::string failure_;
};

// Element count of a shape whose dims must all be >= 0; an overflow or a negative dim is an error
// naming `what` (e.g. "tensor 'w'") and the shape.
Result<int64_t> checked_numel(const Shape& s, const std::string& what);
// Byte size, also refusing more than kMaxTensorBytes.
Result<int64_t> checked_nbytes(const Shape& s, DataType dtype, const std::string& what);

}  // namespace qyolo
