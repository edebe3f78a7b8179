// Erf: float32 elementwise (kept out of the unary family, like Floor/Ceil/Round).
#include "ir/op_registry.h"

namespace qyolo {

Status infer_erf(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  if (x == nullptr) return ctx.error("input 0 is required");
  if (x->dtype != DataType::kFloat32)
    return ctx.error(std::string("supports float32 only, got ") + dtype_name(x->dtype));
  ctx.outputs[0].dtype = x->dtype;
  ctx.outputs[0].shape = x->shape;
  return Status::ok();
}

}  // namespace qyolo
