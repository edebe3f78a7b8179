// YOLO decode + class-aware NMS on the GPU, with the semantics of the CPU postprocess
// (src/yolo/postprocess.cpp: ultralytics non_max_suppression, torchvision nms): candidates need
// obj > conf and obj*cls > conf (v5), sorted by score with ties in anchor order, at most max_nms
// enter a greedy NMS over boxes offset by class * max_wh, at most max_det kept per image.
#pragma once

#include <cuda_runtime.h>

#include <memory>
#include <vector>

#include "backends/cuda/cuda_check.h"
#include "yolo/head.h"
#include "yolo/head_decode.h"
#include "yolo/postprocess.h"

namespace qyolo::cuda {

// The head decode of src/yolo/head_decode.h on the GPU: raw head outputs (device memory) -> the
// decoded tensor [N, P, 5+nc] / [N, 4+nc, P] that GpuPostprocessor reads. One thread per point.
class GpuHeadDecoder {
 public:
  static constexpr int kMaxOutputs = 32;
  // `outputs`: device pointers of every model output (bound order); `decoded`: decoded_shape()
  // floats. Both stay fixed for the decoder's life (uploads its parameters once).
  static Result<std::unique_ptr<GpuHeadDecoder>> create(const BoundHead& head, const std::vector<const float*>& outputs,
                                                        float* decoded);
  ~GpuHeadDecoder();
  // Decodes; also queues the copy of its probability check to the host. Never allocates or syncs.
  Status enqueue(cudaStream_t stream);
  // After the stream has synchronised: an error when the last decode found scores that the head
  // takes as probabilities outside [0, 1] (the CPU decode's error).
  Status check() const;

  struct Pointers {  // passed by value to the kernel
    const float* p[kMaxOutputs];
  };

 private:
  GpuHeadDecoder() = default;
  std::string name_;
  int64_t total_ = 0;
  Pointers ptrs_{};
  float* decoded_ = nullptr;
  DeviceBuffer params_, bad_;
  HostBuffer bad_host_;
};

class GpuPostprocessor {
 public:
  // output_shape: the head output [N, A, 5+nc] (v5) or [N, 4+nc, A] (v8). max_candidates bounds
  // the candidates kept per image before sorting (default: A, or A * nc with multi_label, capped
  // at 2^20); exceeding it is reported by download().
  static Result<std::unique_ptr<GpuPostprocessor>> create(const Shape& output_shape, HeadKind kind,
                                                          const NmsOptions& options, int max_candidates = -1);
  ~GpuPostprocessor();

  // Decodes the float32 head output in device memory and runs NMS; results stay on the device.
  // Never allocates or synchronises.
  Status enqueue(const float* output, cudaStream_t stream);

  // Device results of the last enqueue: detections [N][max_det] (Detection structs, network-input
  // pixels, score descending) and counts [N].
  const Detection* device_detections() const { return dets_.as<Detection>(); }
  const int* device_counts() const { return counts_.as<int>(); }

  // Copies the results to the host (synchronises `stream`).
  Result<std::vector<std::vector<Detection>>> download(cudaStream_t stream);

 private:
  GpuPostprocessor() = default;
  struct Params;
  std::unique_ptr<Params> p_;
  DeviceBuffer counts_, overflow_, keys_, keys_sorted_, vals_, vals_sorted_, boxes_, scores_, classes_, begin_, end_,
      temp_, dets_, suppressed_, allowed_;
  size_t temp_bytes_ = 0;
};

}  // namespace qyolo::cuda
