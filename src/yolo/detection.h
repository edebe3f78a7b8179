// qyolo — one detected box.
#pragma once

namespace qyolo {

// Axis-aligned box in pixels (xyxy), its confidence and class index. Which pixel space
// (network input or original image) depends on the producer; see postprocess() / unletterbox().
struct Detection {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  float score = 0;
  int class_id = 0;
};

}  // namespace qyolo
