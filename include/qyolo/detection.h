// qyolo public API — detections and the NMS options that produce them.
#pragma once

#include <vector>

namespace qyolo {

// Axis-aligned box in pixels (xyxy), its confidence and class index. Which pixel space
// (network input or original image) depends on the producer; Detector returns original-image pixels.
struct Detection {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  float score = 0;
  int class_id = 0;
};

// Post-processing options, ultralytics YOLOv5 non_max_suppression semantics.
struct NmsOptions {
  float conf = 0.25f;        // candidates need obj > conf (v5) and class conf > conf
  float iou = 0.45f;         // suppress when IoU > iou (strictly)
  int max_det = 300;         // detections kept per image
  bool multi_label = false;  // one detection per (box, class) above conf; needs nc > 1
  bool agnostic = false;     // NMS across classes
  std::vector<int> classes;  // keep only these classes; empty = all
  int max_wh = 7680;         // per-class box offset for batched NMS
  int max_nms = 30000;       // candidates entering NMS (highest scores)
};

}  // namespace qyolo
