// Resize (opset 10, 11-13+) and Upsample (opset 7-9): typed attributes + the coordinate mapping,
// shared by shape inference and the backends.
//
// Forms, told apart by the number of inputs (backends do not see the opset):
//   Upsample(X, scales)                 mode nearest|linear, asymmetric coordinates, floor rounding.
//   Resize(X, scales)        opset 10   same as Upsample.
//   Resize(X, roi, scales[, sizes])     opset 11+: all coordinate_transformation_modes, nearest
//                                       modes, linear/cubic, exclude_outside, extrapolation_value.
// roi/scales/sizes must be constants. Output size: sizes, else floor(in * scale). When sizes are
// given the scale used by the coordinate transform is out / in (as the ONNX reference does).
#pragma once

#include <optional>
#include <vector>

#include "ir/graph.h"

namespace qyolo {

enum class ResizeMode { kNearest, kLinear, kCubic };
enum class ResizeCoordMode {
  kHalfPixel,
  kPytorchHalfPixel,
  kAlignCorners,
  kAsymmetric,
  kTfHalfPixelForNN,
  kTfCropAndResize,
  kHalfPixelSymmetric,
};
// kSimple: opset 10 / Upsample behaviour (floor; ceil when downsampling).
enum class ResizeNearestMode { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kSimple };

struct ResizeAttrs {
  ResizeMode mode = ResizeMode::kNearest;
  ResizeCoordMode coord = ResizeCoordMode::kHalfPixel;
  ResizeNearestMode nearest = ResizeNearestMode::kRoundPreferFloor;
  float cubic_coeff_a = -0.75f;
  bool exclude_outside = false;
  float extrapolation_value = 0.f;
  std::vector<double> scales;  // per dim
  std::vector<double> roi;     // 2 * rank (starts, ends), tf_crop_and_resize only
  Shape out_shape;

  // Source coordinate (in input pixels) of output index `x` along dim d (input size `in`).
  double source_coord(size_t d, int64_t x, int64_t in) const;
  // Input index picked by nearest mode for source coordinate `c` along dim d, clamped to [0, in).
  int64_t nearest_index(size_t d, double c, int64_t in) const;

  // Inputs as the node has them: roi (float), scales (float), sizes (int64); nullopt when omitted
  // or an empty tensor.
  static Result<ResizeAttrs> parse(const Node& node, const Shape& x,
                                   const std::optional<std::vector<float>>& roi,
                                   const std::optional<std::vector<float>>& scales,
                                   const std::optional<std::vector<int64_t>>& sizes);
};

}  // namespace qyolo
