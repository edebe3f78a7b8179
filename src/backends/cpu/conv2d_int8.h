// INT8 convolution kernel (see conv2d_int8.cpp); chosen by make_cpu_conv2d for Conv nodes that
// quantize_graph marked with qyolo_input_scale.
#pragma once

#include "backends/cpu/cpu_kernel.h"

#include <cstdint>

namespace qyolo {
Result<std::unique_ptr<CpuKernel>> make_cpu_conv2d_int8(const Node& node);

namespace cpu {
// The factor oneDNN applies to s8 weights of an s8 x s8 convolution on this CPU: 1 with VNNI
// (vpdpbusd sums in int32), 0.5 without it (AVX2, AVX-512 before VNNI: vpmaddubsw's int16 pair
// sums could overflow, so the weights reorder halves them, rounding half to even, and the output
// scale doubles). Asked of oneDNN once (a small convolution's weights descriptor).
float int8_conv_weight_adjust();
// The weight the convolution computes with for a quantised weight q: q, or 2 * nearbyint(q / 2)
// (a 7-bit grid; +-127 becomes +-128) where the adjust is 0.5.
int32_t int8_conv_effective_weight(int8_t q);
}  // namespace cpu
}  // namespace qyolo
