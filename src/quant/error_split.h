// Where the INT8 error comes from (qyolo compare --split): weight rounding alone versus activation
// quantisation alone, per conv and for the whole network, measured as the network output's
// noise-to-signal ratio (OutputError, src/quant/mixed_precision.h) on calibration images.
//   weights:     FP32 network, the conv's weights replaced by their INT8 rounding
//                (fake_quantize_weights): its error against FP32.
//   activations: that network with the conv in INT8, against the weights-only network: the
//                INT8 conv quantises the already-rounded weights back to the same integers, so
//                the difference is the activation quantisation alone.
//   both:        the conv in INT8 with its own weights, against FP32 (the sensitivity ranking).
#pragma once

#include <string>
#include <vector>

#include "quant/mixed_precision.h"
#include "quant/weight_overrides.h"

namespace qyolo {

struct ErrorSplit {
  std::string node;  // conv name; "(all INT8 convs)" for the whole network
  double nsr_weights = 0, nsr_activations = 0, nsr_both = 0;
};

// The whole network first, then every INT8 conv whose name matches `layers_regex` (empty: all),
// sorted by nsr_both, worst first. `base`: the INT8 engine's weight overrides (refined weights),
// in place for the whole-network row; the per-conv rows split the model's own weights.
Result<std::vector<ErrorSplit>> split_int8_error(
    const std::string& onnx_path, const BuildOptions& int8_options, const WeightOverrides& base,
    const std::vector<Tensor>& images, const std::string& layers_regex, const StatusLineFn& log = nullptr);

// Every INT8 conv's weights replaced by their INT8 rounding (names as in the prepared graph).
Result<WeightOverrides> rounded_int8_weights(const Engine& int8_engine);

}  // namespace qyolo
