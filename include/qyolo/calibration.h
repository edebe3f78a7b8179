// qyolo public API — INT8 post-training calibration into a TensorRT-format calibration cache.
//
// The FP32 engine runs over calibration batches and every tensor an INT8 layer reads or writes is
// observed; the chosen algorithm turns its statistics into a scale, written as a TensorRT cache
// (TRT-8601-<Algorithm>) that BuildOptions::calibration_file reads back.
//
// Batches come from an image folder (our letterbox, exactly the inference pre-processing) or from
// the caller: any source of already pre-processed N x 3 x H x W float32 tensors (what a TensorRT
// IInt8Calibrator's get_batch returns, a polygraphy data loader, a trtexec-style .npy).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "qyolo/engine.h"
#include "qyolo/status.h"
#include "qyolo/tensor.h"

namespace qyolo {

struct CalibrationSettings {
  // "mse" (the default, chosen on the held-out accuracy proxy: docs/accuracy.md), "entropy"
  // (TensorRT's EntropyCalibration2), "minmax", "percentile"; or several separated by commas
  // ("minmax,mse"): one pass over the data, one cache per algorithm, each written to the cache path
  // with "{algo}" replaced by the name as given (the path must then contain {algo}).
  std::string algorithm = "mse";
  double percentile = 99.99;  // for "percentile"
  // Image folders: images used (the first by name) and batch size; `shape`'s H/W the letterbox
  // size (empty: the engine's profile opt shape). Batch sources: num_images caps the images used
  // (0: all), batch is ignored (each batch runs at its own size, see calibrate_batches).
  int num_images = 128;
  int batch = 8;
  Shape shape;
};

struct CalibrationSummary {
  std::string algorithm;  // the cache's name, e.g. "EntropyCalibration2" (several: comma-separated)
  int images = 0;         // images observed
  int dropped = 0;        // images of a last partial batch a fixed-batch model cannot run
  Shape shape;            // the (first) shape calibration ran at
  int tensors = 0;        // scales written
  double seconds = 0;
  // The caches written, one per algorithm in the settings' order.
  std::vector<std::string> caches;
};

// Called after each batch with (images done, images planned; 0 when unknown).
using CalibrationProgress = std::function<void(size_t done, size_t total)>;

// Returns the next batch, or an empty Tensor (Tensor().empty()) at the end; an error stops
// calibration and is returned as is.
using BatchSource = std::function<Result<Tensor>()>;

// Calibrates `engine` (FP32) on the images of `image_folder` (or its images/ subfolder) and writes
// the cache to `cache_path` (atomically).
Result<CalibrationSummary> calibrate_images(const Engine& engine, const std::string& image_folder,
                                            const CalibrationSettings& settings,
                                            const std::string& cache_path,
                                            const CalibrationProgress& progress = nullptr);

// Calibrates `engine` (FP32) on the batches `next` returns: float32 [N, C, H, W] with C, H, W
// inside the engine's profile. A fixed-batch model of batch B takes any N that is a multiple of B
// (and a last batch of any size, whose images past the last multiple of B are dropped and counted
// in CalibrationSummary::dropped); a dynamic model runs each batch at its own N within the profile.
// Errors name the batch (0-based) and its shape.
Result<CalibrationSummary> calibrate_batches(const Engine& engine, const BatchSource& next,
                                             const CalibrationSettings& settings,
                                             const std::string& cache_path,
                                             const CalibrationProgress& progress = nullptr);

// Reads a NumPy .npy array (float32/float16/int8/uint8/int32/int64/bool, C order).
Result<Tensor> load_npy(const std::string& path);

// The batches of a trtexec-style calibration array, `batch` images at a time (the last may be
// smaller): float32 [N, C, H, W] already pre-processed, or uint8 [N, H, W, 3] RGB images, which are
// letterboxed to `input_h` x `input_w` exactly as inference does. Other layouts and dtypes are an
// error naming `source` and the shape.
Result<BatchSource> npy_batches(const Tensor& array, int batch, int input_h, int input_w,
                                const std::string& source);

}  // namespace qyolo
