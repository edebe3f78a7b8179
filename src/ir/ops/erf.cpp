// Erf: float32 elementwise (kept out of the unary family, like Floor/Ceil/Round), with the same
// shape and dtype rule as those.
#include "ir/op_registry.h"

namespace qyolo {

Status infer_erf(InferContext& ctx) { return infer_rounding(ctx); }

}  // namespace qyolo
