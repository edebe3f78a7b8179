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
  // nms.iou < 0 takes ultralytics' default for the model's head: iou_objectness for heads with an
  // objectness score (YOLOv5 detect.py: 0.45), iou_no_objectness for heads without one
  // (YOLOv8/YOLO11 `yolo predict` and `yolo val`: 0.7). options() then shows the value used.
  float iou_objectness = 0.45f, iou_no_objectness = 0.7f;
  // How the model's outputs encode detections: "" reads the first output as a decoded ultralytics
  // head (YOLOv5 [N, A, 5+nc] or YOLOv8/YOLO11 [N, 4+nc, A]); "yolov5", "yolov8", "yolo11",
  // "yolox" are built-in descriptions that also decode raw grids; anything else is a JSON head
  // description file (docs/heads.md): strides, anchors, box encoding, parts, several outputs.
  std::string head;
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
  // the GPU pipeline's buffers), runs it once on blank images, binds the head description to the
  // model's outputs and checks that they decode to a detection head (scores in [0, 1], boxes in
  // input pixels). Later detect() calls of that size then time the steady state.
  // Returns the seconds it took. detect() does the same work on its first call of a new size, and
  // reports it in last_setup_s instead of the network time.
  Result<double> prepare(int batch = 1);
  // Letterboxes into an NCHW tensor (exactly the inference pre-processing; calibration reuses it).
  static Tensor preprocess(const std::vector<const Image*>& images, int h, int w,
                           std::vector<LetterboxInfo>* infos);
  // Same in an engine's input format: for InputFormat::kUint8Nhwc the letterboxed bytes, uint8
  // [N, h, w, 3] (the float tensor above is exactly these bytes / 255).
  static Tensor preprocess(const std::vector<const Image*>& images, int h, int w,
                           std::vector<LetterboxInfo>* infos, InputFormat format);
  // The model's NCHW shape of an input tensor in `format` (set_input_shape() takes that).
  static Shape model_shape(const Tensor& input, InputFormat format);

  const Engine& engine() const { return *engine_; }
  const DetectOptions& options() const { return options_; }
  // The head as bound to the model's outputs (after prepare() or the first detect()), e.g.
  // "yolov8: dfl boxes (reg_max 16), 3 levels (strides 8, 16, 32), 8400 points, 80 classes, ...".
  std::string head_description() const;
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
  struct HeadState;  // src/runtime/detector.cpp
  std::unique_ptr<HeadState> head_;
  std::vector<Tensor> outputs_;  // the network's outputs, kept so that the next run reuses them
  // Binds the head to these outputs' shapes; the first call also resolves score activations
  // ("auto"), checks the decoded head and settles a negative nms.iou. Returns the decoded tensor
  // (an output itself when it needs no decoding).
  Result<Tensor> decode_outputs(const std::vector<Tensor>& outputs);
};

}  // namespace qyolo
