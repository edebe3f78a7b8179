// QyoloYoloDecode (qyolo-internal, created by the fuse_yolo_decode pass; not an ONNX op): one
// level of the YOLOv5 detect-head decode tail in one op.
//
// Inputs:  X           [N, A*C, H, W] float (the head conv's output; C = 5 + classes)
//          GRID        [1, A, H, W, 2] float constant
//          ANCHOR_GRID [1, A, H, W, 2] float constant
// Attributes: num_anchors (int, A), stride, c1, c2, c3 (floats).
// Output:  Y           [N, A, H, W, C] float, with s = sigmoid(X[n, a*C + c, h, w]):
//   c in {0, 1}: Y[n,a,h,w,c] = (s * c1 + GRID[0,a,h,w,c]) * stride
//   c in {2, 3}: Y[n,a,h,w,c] = pow(s * c2, c3) * ANCHOR_GRID[0,a,h,w,c-2]
//   c >= 4:      Y[n,a,h,w,c] = s
// which is, operation for operation (fp32, same rounding order), the exported graph
//   S = Sigmoid(Transpose(Reshape(X, [N, A, C, H, W]), perm [0,1,3,4,2]))
//   xy, wh, conf = Split(S, axis 4, [2, 2, C-4])
//   Y = Concat((xy * c1 + GRID) * stride, (wh * c2) ^ c3 * ANCHOR_GRID, conf, axis 4)
#pragma once

#include "ir/graph.h"

namespace qyolo {

inline constexpr const char* kYoloDecodeOp = "QyoloYoloDecode";

struct YoloDecodeAttrs {
  int64_t num_anchors = 3;
  float stride = 8.f, c1 = 2.f, c2 = 2.f, c3 = 2.f;
  // Shape facts, filled by parse from X's shape.
  int64_t n = 0, channels = 0, h = 0, w = 0;  // channels = C (per anchor)
  static Result<YoloDecodeAttrs> parse(const Node& node, const Shape& x);
  Shape out_shape() const { return {n, num_anchors, h, w, channels}; }
  Shape grid_shape() const { return {1, num_anchors, h, w, 2}; }
};

}  // namespace qyolo
