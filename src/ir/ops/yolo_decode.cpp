#include "ir/ops/yolo_decode.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<YoloDecodeAttrs> YoloDecodeAttrs::parse(const Node& node, const Shape& x) {
  auto err = [&](const std::string& what) { return invalid_argument(node.describe() + ": " + what); };
  YoloDecodeAttrs a;
  QYOLO_ASSIGN_OR_RETURN(a.num_anchors, node.attr_int("num_anchors"));
  QYOLO_ASSIGN_OR_RETURN(a.stride, node.attr_float("stride"));
  QYOLO_ASSIGN_OR_RETURN(a.c1, node.attr_float("c1"));
  QYOLO_ASSIGN_OR_RETURN(a.c2, node.attr_float("c2"));
  QYOLO_ASSIGN_OR_RETURN(a.c3, node.attr_float("c3"));
  if (a.num_anchors <= 0) return err("num_anchors must be positive");
  if (x.size() != 4) return err("input X must be 4-D [N, A*C, H, W], got " + shape_str(x));
  if (x[1] % a.num_anchors != 0)
    return err("channels of X " + shape_str(x) + " are not a multiple of num_anchors " +
               std::to_string(a.num_anchors));
  a.n = x[0];
  a.channels = x[1] / a.num_anchors;
  a.h = x[2];
  a.w = x[3];
  if (a.channels < 4) return err("needs at least 4 channels per anchor, X is " + shape_str(x));
  return a;
}

Status infer_yolo_decode(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  const ValueDesc* grid = ctx.input(1);
  const ValueDesc* anchor = ctx.input(2);
  if (x == nullptr || grid == nullptr || anchor == nullptr) return ctx.error("X, GRID and ANCHOR_GRID are required");
  QYOLO_ASSIGN_OR_RETURN(YoloDecodeAttrs a, YoloDecodeAttrs::parse(ctx.node, x->shape));
  auto is_float = [](DataType t) { return t == DataType::kFloat32 || t == DataType::kFloat16; };
  if (!is_float(x->dtype) || !is_float(grid->dtype) || !is_float(anchor->dtype))
    return ctx.error("inputs must be float");
  if (grid->shape != a.grid_shape() || anchor->shape != a.grid_shape())
    return ctx.error("GRID " + shape_str(grid->shape) + " and ANCHOR_GRID " + shape_str(anchor->shape) +
                     " must be " + shape_str(a.grid_shape()));
  ctx.outputs[0].dtype = DataType::kFloat32;
  ctx.outputs[0].shape = a.out_shape();
  return Status::ok();
}

}  // namespace qyolo
