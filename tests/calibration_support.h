// The INT8 tests' scales: a min-max calibration on the first coco128 images (../shared).
#pragma once

#include <filesystem>

#include "calib/calib_cache.h"
#include "quant/calibrate_model.h"
#include "test_support.h"

namespace qyolo::testing {

// Calibrates `fp32`'s model with min-max on the first `images` coco128 images (batch 1) and writes
// the table to `cache` (TensorRT cache format); returns the table.
inline Result<CalibrationTable> coco128_minmax_cache(const Engine& fp32, int images,
                                                     const std::filesystem::path& cache) {
  CalibrationOptions copt;
  copt.algo = CalibAlgo::kMinMax;
  copt.num_images = images;
  copt.batch = 1;
  QYOLO_ASSIGN_OR_RETURN(CalibrationTable table,
                         calibrate(fp32, (shared_dir() / "data/coco128").string(), copt));
  QYOLO_RETURN_IF_ERROR(write_calibration_cache(cache, table));
  return table;
}

}  // namespace qyolo::testing
