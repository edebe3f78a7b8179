// Least-squares refit of INT8 conv weights to their quantised inputs (qyolo calibrate --refine
// fit). `qyolo compare --split` shows yolov5n's INT8 error is mostly activation quantisation at a
// few convs whose weights amplify the input's quantisation error (e.g. /model.2/cv1 reads the same
// tensor and scale as /model.2/cv2 yet errs 13x more). Per INT8 conv, with x the FP32 input patch
// (im2col, plus a constant 1 for the bias) and q = Q(x) the patch the INT8 conv actually reads
// (the calibrated input scale, round half even, saturated), the new [W' b'] minimises
//     sum over calibration patches ||[W b] x - [W' b'] q||^2 + ridge * ||[W' b'] - [W b]||^2
// i.e. [W' b']^T = (A + ridge I)^-1 (B^T [W b]^T + ridge [W b]^T), A = sum q q^T, B = sum x q^T:
// the closed form of AdaQuant's layer objective for the weights in float. Patches are sampled
// (at most max_positions output positions per image, a strided grid shifted per image). The INT8
// conv then rounds W' per channel as usual. Stored as weight overrides (weights and biases).
#pragma once

#include <string>
#include <vector>

#include "quant/weight_refine.h"

namespace qyolo {

struct RefitOptions {
  int max_positions = 1024;  // sampled output positions per image and conv
  double ridge = 1e-3;       // times the mean of diag(A)
};

struct RefitReport {
  int convs = 0;
  int images = 0;
  // Per conv, the relative residual sum ||W x - W' q||^2 / sum ||W x||^2 (pre-activation, on the
  // sampled patches) before (W' = W) and after the refit, averaged over the convs.
  double residual_before = 0, residual_after = 0;
  struct Conv {
    std::string node;
    double before = 0, after = 0;
  };
  std::vector<Conv> per_conv;
};

// Refits every conv the INT8 engine of `int8_options` runs in INT8 (regular convs: group 1) on
// `image_files` letterboxed to input_h x input_w, starting from the FP32 model's weights. Returns
// `base` plus the refitted weights and biases (a conv without a bias is refitted without one).
Result<WeightOverrides> refit_int8_weights(const std::string& onnx_path, const BuildOptions& int8_options,
                                           const WeightOverrides& base,
                                           const std::vector<std::string>& image_files, int input_h,
                                           int input_w, const RefitOptions& options,
                                           RefitReport* report = nullptr, const RefineLogFn& log = nullptr);

// Solves (A + ridge_abs I) Z = R for symmetric positive semi-definite A (n x n, row-major) and R
// (n x m), by Cholesky in double. Errors if A + ridge_abs I is not positive definite.
Result<std::vector<double>> solve_spd(std::vector<double> a, std::vector<double> r, int64_t n, int64_t m,
                                      double ridge_abs);

}  // namespace qyolo
