// QyoloImageToFloat (qyolo-internal, created by the uint8 image-input pass, src/passes/image_input.h;
// not an ONNX op): the network's normalisation of an image given as bytes.
//
// Input:  X [N, H, W, C] uint8 (letterboxed pixels, channels innermost, as images are stored)
// Output: Y [N, C, H, W] float32, Y[n, c, h, w] = X[n, h, w, c] / 255.f
// which is exactly the float input the letterbox writes (src/image/letterbox.h: x / 255.f), so an
// engine taking bytes computes what the float engine computes on the letterbox's float image.
#pragma once

#include "ir/graph.h"

namespace qyolo {

inline constexpr const char* kImageToFloatOp = "QyoloImageToFloat";

// Y's shape for X's: [N, H, W, C] -> [N, C, H, W]; an error naming the node unless X is rank 4.
Result<Shape> image_to_float_shape(const Node& node, const Shape& x);

}  // namespace qyolo
