#include "ir/ops/transpose.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<TransposeAttrs> TransposeAttrs::parse(const Node& node, const Shape& x) {
  const int64_t rank = static_cast<int64_t>(x.size());
  std::vector<int64_t> rev(x.size());
  for (int64_t i = 0; i < rank; ++i) rev[static_cast<size_t>(i)] = rank - 1 - i;
  TransposeAttrs a;
  QYOLO_ASSIGN_OR_RETURN(a.perm, node.attr_ints("perm", rev));
  if (static_cast<int64_t>(a.perm.size()) != rank)
    return invalid_argument(node.describe() + ": perm has " + std::to_string(a.perm.size()) +
                            " entries for input " + shape_str(x));
  std::vector<bool> seen(x.size(), false);
  a.out_shape.resize(x.size());
  for (size_t i = 0; i < a.perm.size(); ++i) {
    int64_t p = a.perm[i];
    if (p < 0) p += rank;
    if (p < 0 || p >= rank || seen[static_cast<size_t>(p)])
      return invalid_argument(node.describe() + ": perm is not a permutation of 0.." +
                              std::to_string(rank - 1));
    seen[static_cast<size_t>(p)] = true;
    a.perm[i] = p;
    a.out_shape[i] = x[static_cast<size_t>(p)];
  }
  return a;
}

Status infer_transpose(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  QYOLO_ASSIGN_OR_RETURN(TransposeAttrs a, TransposeAttrs::parse(ctx.node, x->shape));
  ctx.outputs[0].dtype = x->dtype;
  ctx.outputs[0].shape = a.out_shape;
  return Status::ok();
}

}  // namespace qyolo
