// NonMaxSuppression (ONNX opset 10/11) as a plain function: the CPU kernel runs it, and shape
// inference runs it on constant inputs to learn the output's row count (a data-dependent shape
// that qyolo, which specialises every shape at build time, knows only for constants).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

namespace qyolo {

struct NmsSelectParams {
  int64_t batches = 0, classes = 0, boxes = 0;  // boxes [batches, boxes, 4], scores [batches, classes, boxes]
  int64_t max_per_class = 0;                    // 0 or less: nothing is selected (ONNX default)
  float iou_threshold = 0.f;             // a box is suppressed when its IoU with a kept one is above this
  std::optional<float> score_threshold;  // boxes with score <= this are never candidates
  bool center_point_box = false;         // boxes are [x_c, y_c, w, h]; else two corners [y1, x1, y2, x2]
};

// Rows (batch, class, box) in ONNX Runtime's order: batch, class, then score descending (the lower
// box index first on equal scores).
std::vector<std::array<int64_t, 3>> nms_select(const float* boxes, const float* scores,
                                               const NmsSelectParams& p);

}  // namespace qyolo
