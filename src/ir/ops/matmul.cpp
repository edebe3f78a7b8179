#include "ir/ops/matmul.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<MatMulPlan> plan_matmul(const Node& node, const Shape& a_in, const Shape& b_in) {
  if (a_in.empty() || b_in.empty())
    return invalid_argument(node.describe() + ": MatMul operands must have rank >= 1, got " +
                            shape_str(a_in) + " and " + shape_str(b_in));
  Shape a = a_in, b = b_in;
  if (a.size() == 1) a.insert(a.begin(), 1);
  if (b.size() == 1) b.push_back(1);
  MatMulPlan p;
  p.m = a[a.size() - 2];
  p.k = a.back();
  p.n = b.back();
  if (b[b.size() - 2] != p.k)
    return invalid_argument(node.describe() + ": MatMul of " + shape_str(a_in) + " and " + shape_str(b_in) +
                            ": inner dims " + std::to_string(p.k) + " and " +
                            std::to_string(b[b.size() - 2]) + " differ");
  const Shape a_batch(a.begin(), a.end() - 2), b_batch(b.begin(), b.end() - 2);
  auto batch = broadcast_shapes(a_batch, b_batch);
  if (!batch) return invalid_argument(node.describe() + ": batch dims: " + batch.status().message());
  const int64_t nb = shape_numel(*batch);
  // Offsets of each broadcast batch index into A and B (row-major, size-1 dims repeat).
  auto offsets = [&](const Shape& s, int64_t matrix) {
    std::vector<int64_t> off(static_cast<size_t>(nb));
    const size_t rank = batch->size(), pad = rank - s.size();
    for (int64_t i = 0; i < nb; ++i) {
      int64_t rem = i, o = 0, stride = matrix;
      for (size_t d = rank; d-- > 0;) {
        const int64_t dim = (*batch)[d], idx = rem % dim;
        rem /= dim;
        if (d < pad) continue;
        const int64_t sd = s[d - pad];
        if (sd != 1) o += idx * stride;
        stride *= sd;
      }
      off[static_cast<size_t>(i)] = o;
    }
    return off;
  };
  p.a_offsets = offsets(a_batch, p.m * p.k);
  p.b_offsets = offsets(b_batch, p.k * p.n);
  p.out = *batch;
  if (a_in.size() > 1) p.out.push_back(p.m);
  if (b_in.size() > 1) p.out.push_back(p.n);
  return p;
}

Result<GemmAttrs> GemmAttrs::parse(const Node& node, const Shape& a, const Shape& b) {
  GemmAttrs g;
  QYOLO_ASSIGN_OR_RETURN(g.alpha, node.attr_float("alpha", 1.f));
  QYOLO_ASSIGN_OR_RETURN(g.beta, node.attr_float("beta", 1.f));
  QYOLO_ASSIGN_OR_RETURN(int64_t ta, node.attr_int("transA", 0));
  QYOLO_ASSIGN_OR_RETURN(int64_t tb, node.attr_int("transB", 0));
  g.trans_a = ta != 0;
  g.trans_b = tb != 0;
  if (a.size() != 2 || b.size() != 2)
    return invalid_argument(node.describe() + ": Gemm operands must be 2-D, got " + shape_str(a) + " and " +
                            shape_str(b));
  g.m = g.trans_a ? a[1] : a[0];
  g.k = g.trans_a ? a[0] : a[1];
  g.n = g.trans_b ? b[0] : b[1];
  const int64_t kb = g.trans_b ? b[1] : b[0];
  if (kb != g.k)
    return invalid_argument(node.describe() + ": Gemm of " + shape_str(a) + (g.trans_a ? "^T" : "") +
                            " and " + shape_str(b) + (g.trans_b ? "^T" : "") + ": inner dims " +
                            std::to_string(g.k) + " and " + std::to_string(kb) + " differ");
  return g;
}

namespace {

Status infer_plain_matmul(InferContext& ctx) {
  const ValueDesc* a = ctx.input(0);
  const ValueDesc* b = ctx.input(1);
  if (a->dtype != DataType::kFloat32 || b->dtype != DataType::kFloat32)
    return unsupported(ctx.node.describe() + ": MatMul supports float32 only, got " + dtype_name(a->dtype) +
                       " and " + dtype_name(b->dtype));
  QYOLO_ASSIGN_OR_RETURN(MatMulPlan p, plan_matmul(ctx.node, a->shape, b->shape));
  ctx.outputs[0].dtype = DataType::kFloat32;
  ctx.outputs[0].shape = p.out;
  return Status::ok();
}

Status infer_gemm(InferContext& ctx) {
  const ValueDesc* a = ctx.input(0);
  const ValueDesc* b = ctx.input(1);
  const ValueDesc* c = ctx.input(2);
  for (const ValueDesc* v : {a, b, c})
    if (v && v->dtype != DataType::kFloat32)
      return unsupported(ctx.node.describe() + ": Gemm supports float32 only, got " + dtype_name(v->dtype));
  QYOLO_ASSIGN_OR_RETURN(GemmAttrs g, GemmAttrs::parse(ctx.node, a->shape, b->shape));
  const Shape out = {g.m, g.n};
  if (c) {
    auto bc = broadcast_shapes(c->shape, out);
    if (!bc || *bc != out)
      return ctx.error("C of shape " + shape_str(c->shape) + " does not broadcast to " + shape_str(out));
  }
  ctx.outputs[0].dtype = DataType::kFloat32;
  ctx.outputs[0].shape = out;
  return Status::ok();
}

}  // namespace

Status infer_matmul(InferContext& ctx) {
  return ctx.node.op_type == "Gemm" ? infer_gemm(ctx) : infer_plain_matmul(ctx);
}

}  // namespace qyolo
