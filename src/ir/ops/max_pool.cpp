#include "ir/ops/max_pool.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<PoolAttrs> PoolAttrs::parse(const Node& node, const Shape& x) {
  auto err = [&](const std::string& what) { return invalid_argument(node.describe() + ": " + what); };
  if (x.size() < 3 || x.size() > 5)
    return err("input X must have rank 3..5 (N, C, 1-3 spatial dims), got " + shape_str(x));
  PoolAttrs a;
  QYOLO_ASSIGN_OR_RETURN(std::vector<int64_t> kernel, node.attr_ints("kernel_shape"));
  QYOLO_ASSIGN_OR_RETURN(int64_t ceil_mode, node.attr_int("ceil_mode", 0));
  QYOLO_ASSIGN_OR_RETURN(int64_t count_include_pad, node.attr_int("count_include_pad", 0));
  if (node.op_type == "MaxPool") {
    QYOLO_ASSIGN_OR_RETURN(int64_t storage_order, node.attr_int("storage_order", 0));
    if (storage_order != 0 && storage_order != 1) return err("storage_order must be 0 or 1");
  }
  a.ceil_mode = ceil_mode != 0;
  a.count_include_pad = count_include_pad != 0;
  QYOLO_ASSIGN_OR_RETURN(
      a.window, resolve_window(node, std::vector<int64_t>(x.begin() + 2, x.end()), kernel, a.ceil_mode));
  a.out_shape = {x[0], x[1]};
  for (int64_t o : a.window.out) a.out_shape.push_back(o);
  return a;
}

Status infer_max_pool(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  if (x->dtype != DataType::kFloat32 && x->dtype != DataType::kInt8 && x->dtype != DataType::kUInt8)
    return unsupported(ctx.node.describe() + ": MaxPool supports float32, int8 and uint8, got " +
                       dtype_name(x->dtype));
  QYOLO_ASSIGN_OR_RETURN(PoolAttrs a, PoolAttrs::parse(ctx.node, x->shape));
  ctx.outputs[0].dtype = x->dtype;
  ctx.outputs[0].shape = a.out_shape;
  return Status::ok();
}

}  // namespace qyolo
