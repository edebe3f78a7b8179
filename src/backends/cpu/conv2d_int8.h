// INT8 convolution kernel (see conv2d_int8.cpp); chosen by make_cpu_conv2d for Conv nodes that
// quantize_graph marked with qyolo_input_scale.
#pragma once

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {
Result<std::unique_ptr<CpuKernel>> make_cpu_conv2d_int8(const Node& node);
}  // namespace qyolo
