#include "ir/ops/avg_pool.h"

#include "ir/op_registry.h"

namespace qyolo {

Status infer_avg_pool(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  if (x->dtype != DataType::kFloat32)
    return unsupported(ctx.node.describe() + ": AveragePool supports float32 only, got " +
                       dtype_name(x->dtype));
  QYOLO_ASSIGN_OR_RETURN(PoolAttrs a, PoolAttrs::parse(ctx.node, x->shape));
  ctx.outputs[0].dtype = x->dtype;
  ctx.outputs[0].shape = a.out_shape;
  return Status::ok();
}

}  // namespace qyolo
