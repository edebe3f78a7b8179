// Post-training calibration: runs the FP32 engine over calibration images (through exactly the
// inference pre-processing, Detector::preprocess) and collects per-tensor statistics of every
// tensor an INT8 layer reads or writes, then applies the chosen threshold function.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "calib/calibrator.h"
#include "qyolo/engine.h"

namespace qyolo {

struct CalibrationOptions {
  CalibAlgo algo = CalibAlgo::kMse;  // best on the held-out proxy (docs/accuracy.md)
  double percentile = 99.99;
  int num_images = 128;  // must not exceed the images available
  int batch = 8;
  Shape shape;  // N is ignored (batch is used); C,H,W = the calibration profile
};

struct CalibrationReport {
  int images = 0;
  Shape shape;  // the shape calibration ran at
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

}  // namespace qyolo
