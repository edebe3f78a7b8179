// qyolo public API — Detector: images in, detections in original-image pixels out. Letterbox -> engine -> NMS -> unletterbox.
// On a cuda engine (CUDA builds) letterbox and decode+NMS run on the GPU around the network
// (src/runtime/gpu_pipeline.h); elsewhere on the CPU. Both give the same detections.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "qyolo/detection.h"
#include "qyolo/engine.h"
#include "qyolo/image.h"

namespace qyolo {

struct DetectOptions {
  int input_h = 640, input_w = 640;  // letterbox size (must fit the engine's profile)
  NmsOptions nms;
  // Cuda engines: letterbox and decode+NMS on the GPU (false: on the CPU around host copies of the
  // network input and output, the path every CPU engine takes).
  bool gpu_prepost = true;
};

class GpuPipeline;  // src/runtime/gpu_pipeline.h

class Detector {
 public:
  static Result<std::unique_ptr<Detector>> create(std::shared_ptr<const Engine> engine, const DetectOptions& options);
  ~Detector();

  // One batch, every image letterboxed to options().input_h x input_w (the engine's profile must
  // allow [images.size(), 3, input_h, input_w]).
  Result<std::vector<std::vector<Detection>>> detect(const std::vector<const Image*>& images);
  // Letterboxes into an NCHW tensor (exactly the inference pre-processing; calibration reuses it).
  static Tensor preprocess(const std::vector<const Image*>& images, int h, int w, std::vector<LetterboxInfo>* infos);

  const Engine& engine() const { return *engine_; }
  const DetectOptions& options() const { return options_; }
  // Where letterbox and decode+NMS run: kCuda on the GPU pipeline, else kCpu.
  Device prepost_device() const { return gpu_ ? Device::kCuda : Device::kCpu; }
  // Last run's time split (seconds): pre-processing, network, post-processing.
  double last_pre_s = 0, last_infer_s = 0, last_post_s = 0;

 private:
  Detector() = default;

  std::shared_ptr<const Engine> engine_;
  std::unique_ptr<ExecutionContext> context_;
  std::unique_ptr<GpuPipeline> gpu_;  // cuda engines; after context_, so destroyed before it
  DetectOptions options_;
  std::optional<int> head_;  // yolo::HeadKind, decided from the first output's shape
};

}  // namespace qyolo
