// Kernel factories of the ops detector exports use beyond YOLOv5 (issue 16: YOLOv8/YOLO11 DFL and
// attention, reductions, padding, ...), one per stem as in src/ir/ops.def. Declared here rather than
// in cuda_kernel.h, which the INT8 conv (the slowest compile of the tree) includes.
#pragma once

#include "backends/cuda/cuda_kernel.h"

namespace qyolo::cuda {

inline bool is_float_dtype(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat16;
}

Result<std::unique_ptr<CudaKernel>> make_cuda_softmax(const Node& node);
Result<std::unique_ptr<CudaKernel>> make_cuda_matmul(const Node& node);    // MatMul and Gemm
Result<std::unique_ptr<CudaKernel>> make_cuda_rounding(const Node& node);  // Floor, Ceil, Round (unary.cu)
Result<std::unique_ptr<CudaKernel>> make_cuda_erf(const Node& node);       // unary.cu
Result<std::unique_ptr<CudaKernel>> make_cuda_reduce(const Node& node);
Result<std::unique_ptr<CudaKernel>> make_cuda_argmax(const Node& node);
Result<std::unique_ptr<CudaKernel>> make_cuda_top_k(const Node& node);
Result<std::unique_ptr<CudaKernel>> make_cuda_gather_elements(const Node& node);
Result<std::unique_ptr<CudaKernel>> make_cuda_layer_norm(const Node& node);
Result<std::unique_ptr<CudaKernel>> make_cuda_pad(const Node& node);
Result<std::unique_ptr<CudaKernel>> make_cuda_conv_transpose(const Node& node);

}  // namespace qyolo::cuda
