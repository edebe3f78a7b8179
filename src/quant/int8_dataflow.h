// The CPU INT8 plan: which activations stay int8 between layers, with which scale.
//
// quantize_graph marks the INT8 convs (qyolo_input_scale). Without this plan every INT8 conv
// quantises its float input and writes float. With it, a value is kept int8 (channels-last, the
// layout oneDNN's int8 kernels read without a reorder) when its producer can write int8 (an INT8 conv,
// MaxPool, nearest Resize, channel Concat) and every consumer reads int8 at one scale:
//   - an INT8 conv's input: the conv's qyolo_input_scale;
//   - an INT8 conv's fused residual (input 3), when that conv writes int8 and int8_residual is
//     on: any scale (rescaled in the epilogue), the value's own calibrated scale if nothing else
//     decides. Off by default: the float path adds the residual unquantised, and reading it
//     quantised cost 0.0093 val500 mAP on yolov5n (minmax cache, docs/cpu-int8.md). A SiLU or
//     sigmoid conv adds a float residual in its own epilogue and may still write int8 (the float
//     path's sum, then its reader's quantisation); other convs with a float residual write float;
//   - an int8 MaxPool / nearest Resize / Concat: that node's output scale (max, nearest copy and
//     concatenation commute with a monotone per-tensor quantisation, so this is exact).
// Each INT8 consumer quantised its float input with exactly that scale before, so an int8 value
// holds the same integers the float path produced (conv2d_int8.cpp keeps SiLU's arithmetic; only
// a ReLU/linear output rounds v * (1 / s) instead of v / s, an ulp apart at most).
// How it is recorded: the value's desc becomes int8 (its shape stays NCHW, its bytes are NHWC) and
// its producer gets the attribute qyolo_int8_output_scale; an INT8 conv reading an int8 residual
// gets qyolo_int8_residual_scale. Kernels: int8 inputs are read channels-last; a node with the
// output attribute writes int8 channels-last with that scale.
// A value with consumers that disagree (e.g. YOLOv5's upsampled conv output, concatenated at two
// scales) stays float; a Concat quantises float inputs into its int8 output.
// Asymmetric grids (a zero point, src/quant/quant_params.h): a scale above is a (scale, zero point)
// pair; an INT8 conv reads its input at qyolo_input_scale and qyolo_input_zero_point (0 when absent),
// a producer writes at qyolo_int8_output_scale and qyolo_int8_output_zero_point. Int8 residuals are
// symmetric only.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "passes/specialize.h"

namespace qyolo {

inline constexpr char kInt8OutputScaleAttr[] = "qyolo_int8_output_scale";
inline constexpr char kInt8OutputZeroPointAttr[] = "qyolo_int8_output_zero_point";
inline constexpr char kInt8ResidualScaleAttr[] = "qyolo_int8_residual_scale";
inline constexpr char kInputZeroPointAttr[] = "qyolo_input_zero_point";

// The grid of an int8 value: real = scale * (q - zero_point).
struct Int8Grid {
  float scale = 0.f;
  int32_t zero_point = 0;
  bool operator==(const Int8Grid&) const = default;
};

struct Int8DataflowOptions {
  bool int8_residual = false;  // fused residuals read as int8 (else their convs write float)
};

// Which values stay int8 (value -> grid) on a graph whose INT8 convs are marked. `scales` are the
// calibrated activation scales (for residual-only values).
Result<std::map<std::string, Int8Grid>> choose_int8_dataflow(const SpecializedGraph& sg,
                                                             const std::map<std::string, float>& scales,
                                                             const Int8DataflowOptions& options = {});

// Marks the `planned` values and their producers (see above) after checking that each fits: its
// producer writes int8 and every consumer reads it at that scale; errors name `where` and the value.
Status mark_int8_dataflow(SpecializedGraph& sg, const std::map<std::string, Int8Grid>& planned,
                          const std::string& where);

// The grid an INT8 conv reads its input at (qyolo_input_scale, qyolo_input_zero_point).
Result<Int8Grid> conv_input_grid(const Node& conv);

// choose_int8_dataflow, then mark_int8_dataflow. Returns the number of int8 values.
Result<int> plan_int8_dataflow(SpecializedGraph& sg, const std::map<std::string, float>& scales,
                               const Int8DataflowOptions& options = {});

}  // namespace qyolo
