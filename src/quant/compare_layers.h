// Layer-wise FP32 vs INT8 comparison (like polygraphy's per-layer output comparison / PPQ's
// graphwise error analysis): both engines run the same fused graph on the same images; every
// tensor produced by a node is compared (error accumulates through the network, as deployed).
#pragma once

#include <string>
#include <vector>

#include "qyolo/engine.h"

namespace qyolo {

struct LayerError {
  std::string tensor;
  std::string node;     // producing node
  std::string op;       // its op type (Conv[int8] for quantised convs)
  double snr_db = 0;    // 10 log10(sum ref^2 / sum (ref - int8)^2)
  double cosine = 0;    // cosine similarity
  double max_abs_err = 0;
  int64_t elements = 0;
  int position = 0;     // the producing node's place in the (fused, topologically sorted) graph
};

// Sorted by SNR, worst first.
Result<std::vector<LayerError>> compare_layers(const Engine& fp32, const Engine& int8,
                                               const std::vector<std::string>& image_files, int input_h,
                                               int input_w);

}  // namespace qyolo
