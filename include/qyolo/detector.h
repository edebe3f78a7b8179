// qyolo public API — Detector: images in, detections in original-image pixels out. Letterbox -> engine -> NMS -> unletterbox.
#pragma once

#include <memory>
#include <vector>

#include <optional>

#include "qyolo/detection.h"
#include "qyolo/engine.h"
#include "qyolo/image.h"

namespace qyolo {

struct DetectOptions {
  int input_h = 640, input_w = 640;  // letterbox size (must fit the engine's profile)
  NmsOptions nms;
};

class Detector {
 public:
  static Result<std::unique_ptr<Detector>> create(std::shared_ptr<const Engine> engine, const DetectOptions& options);

  // One batch (the engine's profile must allow batch = images.size()).
  Result<std::vector<std::vector<Detection>>> detect(const std::vector<const Image*>& images);
  // Letterboxes into an NCHW tensor (exactly the inference pre-processing; calibration reuses it).
  static Tensor preprocess(const std::vector<const Image*>& images, int h, int w, std::vector<LetterboxInfo>* infos);

  const Engine& engine() const { return *engine_; }
  const DetectOptions& options() const { return options_; }
  // Last run's time split (seconds): pre-processing, network, post-processing.
  double last_pre_s = 0, last_infer_s = 0, last_post_s = 0;

 private:
  std::shared_ptr<const Engine> engine_;
  std::unique_ptr<ExecutionContext> context_;
  DetectOptions options_;
  std::optional<int> head_;  // yolo::HeadKind, decided from the first output's shape
};

}  // namespace qyolo
