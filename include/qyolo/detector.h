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
  // Letterbox size (must fit the engine's profile). 0 takes the engine's own: the H/W of its
  // profile's opt shape, i.e. a static model's input size, the ultralytics `imgsz` metadata of a
  // dynamic model (else 640), or --opt-shapes.
  int input_h = 0, input_w = 0;
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
  // One-time set-up for batches of `batch` images: builds the executor for that input shape (and
  // the GPU pipeline's buffers), runs it once on blank images and checks that the model's output
  // is a decoded detection head. Later detect() calls of that size then time the steady state.
  // Returns the seconds it took. detect() does the same work on its first call of a new size, and
  // reports it in last_setup_s instead of the network time.
  Result<double> prepare(int batch = 1);
  // Letterboxes into an NCHW tensor (exactly the inference pre-processing; calibration reuses it).
  static Tensor preprocess(const std::vector<const Image*>& images, int h, int w, std::vector<LetterboxInfo>* infos);

  const Engine& engine() const { return *engine_; }
  const DetectOptions& options() const { return options_; }
  // Where letterbox and decode+NMS run: kCuda on the GPU pipeline, else kCpu.
  Device prepost_device() const { return gpu_ ? Device::kCuda : Device::kCpu; }
  // Last run's time split (seconds): one-time set-up for a new batch size, pre-processing,
  // network, post-processing.
  double last_setup_s = 0, last_pre_s = 0, last_infer_s = 0, last_post_s = 0;

 private:
  Detector() = default;

  std::shared_ptr<const Engine> engine_;
  std::unique_ptr<ExecutionContext> context_;
  std::unique_ptr<GpuPipeline> gpu_;  // cuda engines; after context_, so destroyed before it
  DetectOptions options_;
  // Checks a host copy of the network output (the first one decides and checks the head kind).
  Status check_output(const Tensor& output);

  std::optional<int> head_;  // yolo::HeadKind, decided from the first output's shape
};

}  // namespace qyolo
