#include "ir/ops/range.h"

#include <cmath>

#include "ir/op_registry.h"
#include "ir/shape_arith.h"

namespace qyolo {

// Counts are computed in long double and saturated at 2^62 (more than any tensor may hold; the
// caller's shape check turns that into an error): limit - start of two int64s may overflow int64.
int64_t range_count_int(int64_t start, int64_t limit, int64_t delta) {
  const long double n = std::ceil((static_cast<long double>(limit) - start) / delta);
  return n <= 0 ? 0 : n >= 0x1p62L ? int64_t{1} << 62 : static_cast<int64_t>(n);
}

int64_t range_count_float(double start, double limit, double delta) {
  const double n = std::ceil((limit - start) / delta);
  return !(n > 0) ? 0 : n >= 0x1p62 ? int64_t{1} << 62 : static_cast<int64_t>(n);
}

Status infer_range(InferContext& ctx) {
  const DataType t = ctx.input(0) ? ctx.input(0)->dtype : DataType::kFloat32;
  for (size_t i = 0; i < 3; ++i) {
    const ValueDesc* d = ctx.input(i);
    if (d == nullptr) return ctx.error("input " + std::to_string(i) + " is required");
    if (shape_numel(d->shape) != 1)
      return ctx.error("inputs must be scalars, input " + std::to_string(i) + " has shape " +
                       shape_str(d->shape));
    if (d->dtype != t) return ctx.error("inputs have different element types");
    if (!d->value) return ctx.const_ints(i).status();  // the "must be constant" error
  }
  if (t != DataType::kFloat32 && t != DataType::kInt32 && t != DataType::kInt64)
    return ctx.error(std::string("element type ") + dtype_name(t) + " is not supported");
  int64_t n;
  if (t == DataType::kFloat32) {
    double s = ctx.input(0)->value->to_float_vector()[0];
    double l = ctx.input(1)->value->to_float_vector()[0];
    double d = ctx.input(2)->value->to_float_vector()[0];
    if (d == 0 || !std::isfinite(d) || !std::isfinite(s) || !std::isfinite(l))
      return ctx.error("start/limit/delta must be finite and delta non-zero");
    n = range_count_float(s, l, d);
  } else {
    int64_t s = ctx.input(0)->value->to_int64_vector()[0];
    int64_t l = ctx.input(1)->value->to_int64_vector()[0];
    int64_t d = ctx.input(2)->value->to_int64_vector()[0];
    if (d == 0) return ctx.error("delta must be non-zero");
    n = range_count_int(s, l, d);
  }
  QYOLO_RETURN_IF_ERROR(checked_numel({n}, ctx.node.describe() + ": output").status());
  ctx.outputs[0].dtype = t;
  ctx.outputs[0].shape = {n};
  return Status::ok();
}

}  // namespace qyolo
