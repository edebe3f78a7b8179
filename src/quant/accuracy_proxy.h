// Held-out accuracy proxy for INT8 decisions: COCO mAP of a candidate engine measured against the
// FP32 model's own detections used as labels ("agreement mAP"), on calibration-side images that the
// scales were not computed from. No ground truth is needed, so every choice (calibrator, layers kept
// in float) can be made without looking at the evaluation set. The FP32 engine scores exactly 1.0
// against itself: each of its labels is one of its own detections (IoU 1), and its detections below
// the label threshold rank after every label, so they cost no precision at any recall.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "eval/coco_eval.h"
#include "qyolo/detector.h"
#include "qyolo/engine.h"

namespace qyolo {

struct ProxyOptions {
  float label_conf = 0.25f;      // reference detections at or above this score become labels
  int input_h = 0, input_w = 0;  // letterbox size; 0 = the engine's own
  std::string head;              // DetectOptions::head
};

// The reference's detections of each image (index = image) with score >= label_conf as ground
// truth: image ids 1..N, sizes from `sizes` (width, height), categories 0..num_classes-1.
GroundTruth pseudo_ground_truth(const std::vector<std::vector<Detection>>& reference,
                                const std::vector<std::pair<int, int>>& sizes, float label_conf,
                                int num_classes);

// mAP of `candidate` against pseudo_ground_truth(reference, ...). Both lists hold one entry per image.
Result<CocoMetrics> agreement_metrics(const std::vector<std::vector<Detection>>& reference,
                                      const std::vector<std::vector<Detection>>& candidate,
                                      const std::vector<std::pair<int, int>>& sizes, float label_conf);

class AccuracyProxy {
 public:
  // Decodes the images and runs the FP32 reference once (its detections become the labels).
  static Result<std::unique_ptr<AccuracyProxy>> create(std::shared_ptr<const Engine> reference,
                                                       const std::vector<std::string>& image_files,
                                                       const ProxyOptions& options = {});
  // Same, with the reference's detections given (e.g. saved from an earlier run of the same model
  // on the same images): one list per image file.
  static Result<std::unique_ptr<AccuracyProxy>> create(std::vector<std::vector<Detection>> reference,
                                                       const std::vector<std::string>& image_files,
                                                       const ProxyOptions& options = {});
  const std::vector<std::vector<Detection>>& reference() const { return reference_; }
  // Agreement of `candidate` with the reference on the same images (same letterbox, NMS as `qyolo
  // eval`: conf 0.001, IoU 0.65 for objectness heads, multi-label, 300 detections).
  Result<CocoMetrics> evaluate(std::shared_ptr<const Engine> candidate) const;
  size_t num_images() const { return images_.size(); }
  size_t num_labels() const;

 private:
  AccuracyProxy() = default;
  Status load_images(const std::vector<std::string>& image_files);
  Result<std::vector<std::vector<Detection>>> detect_all(std::shared_ptr<const Engine> engine) const;

  ProxyOptions options_;
  std::vector<Image> images_;
  std::vector<std::pair<int, int>> sizes_;
  std::vector<std::vector<Detection>> reference_;
};

// NMS settings of `qyolo eval` (the proxy and the evaluation must detect the same way).
DetectOptions eval_detect_options(int input_h, int input_w, const std::string& head);

}  // namespace qyolo
