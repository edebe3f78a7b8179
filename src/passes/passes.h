// Graph passes on a specialised graph (concrete shapes known). Each returns how many rewrites it made.
#pragma once

#include "passes/specialize.h"

namespace qyolo {

// Conv -> BatchNormalization (inference) folded into the conv's weights and bias.
Result<int> fold_batch_norm(SpecializedGraph& g);

// Conv -> activation fused into the Conv (attribute qyolo_activation): SiLU written as
// x*sigmoid(x), Sigmoid, Relu, LeakyRelu, HardSwish. Then Conv -> Add(residual of the same
// shape) fused as the Conv's 4th input. Only when the intermediate has no other consumer.
Result<int> fuse_conv_epilogues(SpecializedGraph& g, bool fuse_residual = true);

struct PassOptions {
  bool fold_batch_norm = true;
  bool fuse_epilogues = true;
  // Residual Adds fused into the conv; off during calibration so both Add inputs are observed.
  bool fuse_residual = true;
};
// The standard pipeline (run after specialize()).
Status run_default_passes(SpecializedGraph& g, const PassOptions& options = {});

}  // namespace qyolo
