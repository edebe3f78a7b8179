// Floor, Ceil, Round (half to even): float32 elementwise ops outside the unary family, so a backend
// without their kernels refuses them by name instead of running another unary op.
#include "ir/op_registry.h"

namespace qyolo {

Status infer_rounding(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  if (x == nullptr) return ctx.error("input 0 is required");
  if (x->dtype != DataType::kFloat32)
    return ctx.error(std::string("supports float32 only, got ") + dtype_name(x->dtype));
  ctx.outputs[0].dtype = x->dtype;
  ctx.outputs[0].shape = x->shape;
  return Status::ok();
}

}  // namespace qyolo
