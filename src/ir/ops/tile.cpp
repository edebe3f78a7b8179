#include "ir/ops/tile.h"

#include "ir/op_registry.h"
#include "ir/shape_arith.h"

namespace qyolo {

Result<TileAttrs> TileAttrs::parse(const Node& node, const Shape& x, const std::vector<int64_t>& repeats) {
  if (repeats.size() != x.size())
    return invalid_argument(node.describe() + ": repeats has " + std::to_string(repeats.size()) +
                            " values for input " + shape_str(x));
  TileAttrs a;
  a.repeats = repeats;
  a.out_shape = x;
  ShapeArith m;
  for (size_t i = 0; i < x.size(); ++i) {
    if (repeats[i] < 0) return invalid_argument(node.describe() + ": repeats must be non-negative");
    a.out_shape[i] = m.mul(x[i], repeats[i]);
  }
  if (!m.ok()) return m.status(node.describe() + ": tiling " + shape_str(x) + " by " + shape_str(repeats));
  return a;
}

Status infer_tile(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  QYOLO_ASSIGN_OR_RETURN(std::vector<int64_t> repeats, ctx.const_ints(1));
  QYOLO_ASSIGN_OR_RETURN(TileAttrs a, TileAttrs::parse(ctx.node, x->shape, repeats));
  ctx.outputs[0].dtype = x->dtype;
  ctx.outputs[0].shape = a.out_shape;
  return Status::ok();
}

}  // namespace qyolo
