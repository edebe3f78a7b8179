// GPU detection pipeline for cuda engines: decoded uint8 RGB images -> pinned staging buffer ->
// device (one cudaMemcpyAsync per image) -> letterbox kernels straight into the batch input ->
// CudaExecutor::enqueue -> GpuHeadDecoder (raw heads: the decode of src/yolo/head_decode.h into
// one decoded tensor; decoded heads skip it) -> GpuPostprocessor (candidates + class-aware NMS)
// -> one download of the detections. Everything runs on the pipeline's stream with one synchronisation per batch.
//
// Detections come back in network-input pixels together with the letterbox geometry; the Detector
// maps them to the original image with the same function as its CPU path (unletterbox), so the two
// paths differ only where the work runs. Device buffers are sized once per batch shape and reused;
// the image staging buffers grow (never per image).
//
// Built with CUDA only (QYOLO_HAS_CUDA): elsewhere create() returns kUnsupported. No CUDA types in
// this header.
#pragma once

#include <memory>
#include <vector>

#include "qyolo/detection.h"
#include "qyolo/engine.h"
#include "qyolo/image.h"
#include "qyolo/status.h"
#include "qyolo/tensor.h"
#include "yolo/head.h"

namespace qyolo {

class GpuPipeline {
 public:
  // Seconds per stage of the last run: pre = staging + upload + letterbox, infer = the network
  // (plus building its executor on a shape's first run), post = decode + NMS + download
  // (pre + infer + post = the run's wall time).
  struct Times {
    double pre_s = 0, infer_s = 0, post_s = 0;
    double setup_s = 0;  // building the executor / buffers for a new input shape (first run only)
  };

  // `context` (of a cuda engine) runs the network through its CUDA executors and must outlive the
  // pipeline. num_classes_hint: the model's class count, or -1 (chooses the head layout).
  static Result<std::unique_ptr<GpuPipeline>> create(ExecutionContext& context, const NmsOptions& nms,
                                                     int num_classes_hint = -1);
  ~GpuPipeline();
  // Reads the outputs with this head description (alternatives as load_head gives them, score
  // activations resolved: see resolve_activation) instead of taking the first output as a decoded
  // head, and NMS with `nms` instead of create()'s options. Before the first run only.
  Status set_head(const std::vector<HeadSpec>& specs, const NmsOptions& nms);
  GpuPipeline(const GpuPipeline&) = delete;
  GpuPipeline& operator=(const GpuPipeline&) = delete;

  // One batch: every image letterboxed to input_h x input_w (the engine's profile must allow
  // [images.size(), 3, input_h, input_w]). Returns per-image detections in network-input pixels
  // (score descending) and fills infos with each image's letterbox geometry.
  Result<std::vector<std::vector<Detection>>> run(const std::vector<const Image*>& images, int input_h,
                                                  int input_w, std::vector<LetterboxInfo>* infos,
                                                  Times* times = nullptr);

  // Test hooks: the network input (float32 or float16 NCHW, as the executor binds it) and the
  // decoded head (float32, what the NMS reads: the output itself for a decoded head) of the last
  // run, copied to the host (synchronous); the head as bound at the last run's shape.
  Result<Tensor> last_input() const;
  Result<Tensor> last_output() const;
  std::string last_head_description() const;

  struct Impl;

 private:
  GpuPipeline() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qyolo
