// Graph passes on a specialised graph (concrete shapes known). Each returns how many rewrites it made.
#pragma once

#include <map>
#include <string>
#include <vector>

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

// CPU layout plan: a float Conv output (no fused residual) read only by QyoloYoloDecode nodes
// is written channels-last (the Conv gets kChannelsLastOutputAttr; its shape stays NCHW, its
// bytes are NHWC) and the decodes read it so (kChannelsLastInputAttr): the head conv's oneDNN
// output needs no reorder to NCHW and each anchor's C channels are contiguous for the decode.
// Returns the number of such convs.
inline constexpr char kChannelsLastOutputAttr[] = "qyolo_channels_last_output";
inline constexpr char kChannelsLastInputAttr[] = "qyolo_channels_last_input";
Result<int> plan_channels_last_decode(SpecializedGraph& g);
// CPU layout plan of float values: a float value between Convs (FP32, or INT8 ones writing float:
// fused residuals, the head), 2-D MaxPool, nearest Resize and channel Concat is kept channels-last
// (the producer gets kChannelsLastOutputAttr; a Conv or QyoloYoloDecode reading it as input 0, or
// an int8 Concat of the int8 plan quantising it, kChannelsLastInputAttr; a Conv's float residual
// and the inputs of a float MaxPool, Resize or Concat are channels-last exactly when its output
// is, except that an int8-writing Conv of the int8 plan reads a float residual in either layout
// (kChannelsLastResidualAttr when channels-last); an int8 Concat's float inputs all or none). oneDNN's convs
// read and write nhwc directly, so no activation is reordered to and from NCHW around every conv (in yolov5n
// FP32 those reorders were ~25% of the time). Graph inputs and outputs stay NCHW. Returns the number of
// channels-last values.
inline constexpr char kChannelsLastResidualAttr[] = "qyolo_channels_last_residual";
Result<int> plan_channels_last_float(SpecializedGraph& g);
// Per-channel activation equalisation. For a conv output T read only by convs, factors s_c > 0
// per channel: T' = T / s_c and every reader's W[:, c] *= s_c, so the float network is unchanged
// while one per-tensor INT8 scale for T' acts like per-channel scales for T (channels of small
// range get s_c < 1 and more of the int8 grid). Factors by tensor name (src/quant/activation_equalization.h).
using EqualizationFactors = std::map<std::string, std::vector<float>>;
// T' is named T + this suffix.
inline constexpr const char* kEqualizedSuffix = "/qyolo_equalized";
// fuse: where the producer is a conv without residual (and not hardswish), it gets the per-channel
// multiplier 1 / s_c as this attribute (floats, applied after its activation: ConvAttrs) and writes
// T' itself; otherwise (or for any other producer) an explicit Mul computes T' from T, so that
// calibration observes both (T keeps the model's own scale for a TensorRT cache).
inline constexpr const char* kOutputMultiplierAttr = "qyolo_output_multiplier";
// The tensors to choose factors for: outputs of such a conv (not a graph output) whose every reader
// is a conv reading it as its data input only, on weights of its own. `with_concat`: also Concat
// outputs read that way (YOLOv5's C3 cv3 and SPPF cv2 inputs), equalised by an explicit Mul: the
// Concat and its inputs then stay float, rounded once at the readers' T' scale.
std::vector<std::string> equalizable_tensors(const SpecializedGraph& g, bool with_concat = false);
// Errors for a tensor not read only by such convs, or factors that do not match its channels.
Result<int> equalize_activations(SpecializedGraph& g, const EqualizationFactors& factors, bool fuse);

struct PassOptions {
  bool fold_batch_norm = true;
  bool fuse_epilogues = true;
  // Residual Adds fused into the conv; off during calibration so both Add inputs are observed.
  bool fuse_residual = true;
  bool fuse_yolo_decode = true;
  // Activation equalisation (factors from the weight overrides) fused into the producer conv;
  // off during calibration so that both T and T' are observed, and for the CUDA backend (whose
  // kernels do not apply the multiplier: it runs the explicit Mul).
  bool fuse_equalization = true;
};
// The standard pipeline (run after specialize()).
Status run_default_passes(SpecializedGraph& g, const PassOptions& options = {});

}  // namespace qyolo
