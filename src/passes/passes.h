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

// YOLOv5 detect-head decode tail per level (Reshape -> Transpose -> Sigmoid -> Split -> xy/wh
// arithmetic with constant grids -> Concat) replaced by one QyoloYoloDecode node
// (src/ir/ops/yolo_decode.h). Matches exactly; anything else is left untouched.
Result<int> fuse_yolo_decode(SpecializedGraph& g);

struct PassOptions {
  bool fold_batch_norm = true;
  bool fuse_epilogues = true;
  // Residual Adds fused into the conv; off during calibration so both Add inputs are observed.
  bool fuse_residual = true;
  bool fuse_yolo_decode = true;
};
// The standard pipeline (run after specialize()).
Status run_default_passes(SpecializedGraph& g, const PassOptions& options = {});

}  // namespace qyolo
