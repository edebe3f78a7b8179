// The image input as bytes (BuildOptions::input_format uint8-nhwc, TensorRT's
// --inputIOFormats=uint8:hwc): the specialised graph's float NCHW image input becomes a uint8
// [N, H, W, C] input of the same name, followed by one QyoloImageToFloat node (/ 255) whose float
// output every former reader takes. Backends may fuse that node into its reader (the CUDA direct
// stem conv reads the bytes itself).
#pragma once

#include <string>

#include "passes/specialize.h"

namespace qyolo {

// Rewrites input `input` (a float32 rank-4 graph input) as above. Errors name the input when it is
// not such a value or is also a graph output.
Status use_uint8_image_input(SpecializedGraph& g, const std::string& input);

// The name the float image gets inside the rewritten graph.
std::string float_image_name(const std::string& input);

}  // namespace qyolo
