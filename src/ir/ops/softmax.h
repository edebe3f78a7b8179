// Softmax. Opset < 13: the input is viewed as 2-D [prod(dims[:axis]), prod(dims[axis:])] (axis
// default 1) and normalised over the second dim. Opset >= 13: normalised along `axis` alone
// (default -1). Either way the kernel sees [outer, n, inner] and normalises over n.
// Backends do not see the opset: they parse with opset 13 semantics, and infer_softmax rejects the
// (rare) opset < 13 nodes whose flattened semantics differ from that reading.
#pragma once

#include "ir/graph.h"

namespace qyolo {

struct SoftmaxAttrs {
  int64_t outer = 1, n = 1, inner = 1;
  static Result<SoftmaxAttrs> parse(const Node& node, int64_t opset, const Shape& x);
};

}  // namespace qyolo
