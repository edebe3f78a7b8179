#include "ir/op_registry.h"

namespace qyolo {
// STUB: to be implemented.
Status infer_dequantize_linear(InferContext& ctx) { return unsupported(ctx.node.describe() + ": not implemented yet"); }
}  // namespace qyolo
