#include "ir/ops/global_avg_pool.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<GlobalAvgPoolAttrs> GlobalAvgPoolAttrs::parse(const Node& node, const Shape& x) {
  if (x.size() < 3)
    return invalid_argument(node.describe() + ": input must have rank >= 3 (N, C, spatial...), got " +
                            shape_str(x));
  GlobalAvgPoolAttrs a;
  a.out_shape = x;
  for (size_t i = 2; i < x.size(); ++i) a.out_shape[i] = 1;
  return a;
}

Status infer_global_avg_pool(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  if (x->dtype != DataType::kFloat32)
    return unsupported(ctx.node.describe() + ": GlobalAveragePool supports float32 only, got " +
                       dtype_name(x->dtype));
  QYOLO_ASSIGN_OR_RETURN(GlobalAvgPoolAttrs a, GlobalAvgPoolAttrs::parse(ctx.node, x->shape));
  ctx.outputs[0].dtype = x->dtype;
  ctx.outputs[0].shape = a.out_shape;
  return Status::ok();
}

}  // namespace qyolo
