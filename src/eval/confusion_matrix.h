// Detection confusion matrix in the layout and with the thresholds of ultralytics' ConfusionMatrix
// (task "detect"); pairs are matched one-to-one greedily, best IoU first.
#pragma once

#include <cstdint>
#include <vector>

#include "eval/coco_eval.h"

namespace qyolo {

// Rows: predicted class, columns: true class, both indexed by gt.categories order; index
// categories.size() is background (row: ground truth no detection matched, column: detections that
// matched no ground truth). Per image, detections with score > conf are matched to non-crowd
// ground truth with IoU > iou, best IoU first, each detection and each ground truth at most once.
// Detections of categories absent from gt.categories are left out.
std::vector<std::vector<int64_t>> confusion_matrix(const GroundTruth& gt,
                                                   const std::vector<CocoDetection>& dets, float conf,
                                                   float iou);

}  // namespace qyolo
