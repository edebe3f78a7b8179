#include "ir/op_registry.h"
#include "ir/ops/binary.h"

namespace qyolo {

Status infer_where(InferContext& ctx) {
  for (size_t i = 0; i < 3; ++i)
    if (ctx.input(i) == nullptr) return ctx.error("input " + std::to_string(i) + " is required");
  if (ctx.input(0)->dtype != DataType::kBool)
    return ctx.error(std::string("condition must be bool, got ") + dtype_name(ctx.input(0)->dtype));
  if (ctx.input(1)->dtype != ctx.input(2)->dtype)
    return ctx.error(std::string("X and Y have different element types (") + dtype_name(ctx.input(1)->dtype) +
                     " and " + dtype_name(ctx.input(2)->dtype) + ")");
  auto out = broadcast_all({ctx.input(0)->shape, ctx.input(1)->shape, ctx.input(2)->shape});
  if (!out) return ctx.error(out.status().message());
  ctx.outputs[0].dtype = ctx.input(1)->dtype;
  ctx.outputs[0].shape = std::move(out).value();
  return Status::ok();
}

}  // namespace qyolo
