// Per-channel activation equalisation (SmoothQuant-style scales, folded into the graph): choosing
// the factors on calibration images and storing them with the weight overrides.
//
// For an equalizable tensor T (src/passes/passes.h: a conv output read only by convs) with
// per-channel ranges a_c = max |T_c| over the calibration images, s_c = max((a_c / max a)^alpha,
// min_factor). equalize_activations then runs T' = T / s_c (after the producer's activation) and
// scales the readers' weights W[:, c] *= s_c: the float network is unchanged, and a per-tensor
// INT8 scale of T' resolves channels of small range (s_c < 1) with more steps.
//
// Storage: the factors travel in the weight overrides (engine file, --refined-weights files) as
// entries named kEqualizePrefix + T holding s (float32, shape [C]); Engine::Impl::prepare applies
// them before the other overrides, whose names are those of the equalised graph.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "passes/passes.h"
#include "quant/weight_overrides.h"
#include "qyolo/engine.h"

namespace qyolo {

inline constexpr const char* kEqualizePrefix = "qyolo.equalize:";

// The equalisation entries of `w` (by tensor name) and the rest.
EqualizationFactors equalization_factors_of(const WeightOverrides& w);
WeightOverrides without_equalization(const WeightOverrides& w);
// `w` with `factors` added as entries (replacing any earlier ones).
WeightOverrides with_equalization(WeightOverrides w, const EqualizationFactors& factors);

// s_c = max((a_c / max a)^alpha, min_factor); all 1 when every a_c is 0.
std::vector<float> equalization_factors(const std::vector<float>& channel_amax, double alpha,
                                        double min_factor);

struct EqualizeOptions {
  double alpha = 0.5;
  double min_factor = 1.0 / 64;
  std::string tensors_regex = ".*";  // among the equalizable tensors (ECMAScript, whole name)
  bool with_concat = false;          // also Concat outputs (equalizable_tensors)
};

struct EqualizeReport {
  int tensors = 0;     // equalised
  int candidates = 0;  // equalizable in the model
  int images = 0;
  std::vector<std::string> names;
  double seconds = 0;
};

// Network inputs one at a time (float32 [1, C, H, W]); an empty Tensor ends them.
using InputSource = std::function<Result<Tensor>()>;
// `image_files` letterboxed to h x w, as inference pre-processes them.
InputSource image_inputs(const std::vector<std::string>& image_files, int h, int w);

// Per-channel max |T_c| of `tensors` on the FP32 `engine` over the inputs.
Result<EqualizationFactors> channel_absmax(const Engine& fp32, const std::vector<std::string>& tensors,
                                           const InputSource& inputs);

// The factors for every equalizable tensor of `fp32`'s model matching options.tensors_regex, from
// their ranges on the inputs (of shape `input_shape`).
Result<EqualizationFactors> choose_activation_equalization(const Engine& fp32, const Shape& input_shape,
                                                           const InputSource& inputs,
                                                           const EqualizeOptions& options,
                                                           EqualizeReport* report = nullptr);

}  // namespace qyolo
