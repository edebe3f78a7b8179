// Post-training calibration: runs the FP32 engine over calibration batches (image folders through
// exactly the inference pre-processing, Detector::preprocess; or any source of pre-processed
// batches) and collects per-tensor statistics of every tensor an INT8 layer reads or writes, then
// applies the chosen threshold function. The public entry points are in qyolo/calibration.h.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "calib/calibrator.h"
#include "qyolo/calibration.h"
#include "qyolo/engine.h"

namespace qyolo {

struct CalibrationOptions {
  CalibAlgo algo = CalibAlgo::kMse;  // best on the held-out proxy (docs/accuracy.md)
  double percentile = 99.99;
  int num_images = 128;  // image folders: must not exceed the images available; batch sources: cap (0 = all)
  int batch = 8;         // image folders only
  Shape shape;           // image folders: N is ignored (batch is used); C,H,W = the calibration profile
};

struct CalibrationReport {
  int images = 0;
  int dropped = 0;  // images of a last partial batch that a fixed-batch model cannot run
  Shape shape;      // the (first) shape calibration ran at
  int tensors = 0;
  double seconds = 0;
};

using ProgressFn = std::function<void(size_t done, size_t total)>;

// One calibration pass, one table per algorithm in `algos` (same order); options.algo is ignored.
Result<std::vector<CalibrationTable>> calibrate_algorithms(const Engine& engine,
                                                           const std::string& image_folder,
                                                           const CalibrationOptions& options,
                                                           const std::vector<CalibAlgo>& algos,
                                                           CalibrationReport* report = nullptr,
                                                           const ProgressFn& progress = nullptr);

// `engine` must be an FP32 engine (calibration observes float activations).
Result<CalibrationTable> calibrate(const Engine& engine, const std::string& image_folder,
                                   const CalibrationOptions& options, CalibrationReport* report = nullptr,
                                   const ProgressFn& progress = nullptr);

// Same over the batches `next` returns (see calibrate_batches in qyolo/calibration.h for the rules
// on batch sizes); `total` is the planned number of images for progress (0: unknown).
Result<CalibrationTable> calibrate_from_batches(const Engine& engine, const BatchSource& next,
                                                const CalibrationOptions& options,
                                                CalibrationReport* report = nullptr,
                                                const ProgressFn& progress = nullptr, size_t total = 0);

// One pass over the batches, one table per algorithm in `algos` (same order); options.algo is ignored.
Result<std::vector<CalibrationTable>> calibrate_algorithms_from_batches(
    const Engine& engine, const BatchSource& next, const CalibrationOptions& options,
    const std::vector<CalibAlgo>& algos, CalibrationReport* report = nullptr,
    const ProgressFn& progress = nullptr, size_t total = 0);

}  // namespace qyolo
