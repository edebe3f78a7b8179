// The CUDA executor, complete: from src/backends/cuda in builds with CUDA; without CUDA no executor
// is ever built (build_cuda_executor errors), and an empty class lets the code that holds and
// destroys executors (the engine's build, ExecutionContext's caches) compile.
#pragma once

#ifdef QYOLO_HAS_CUDA
#include "backends/cuda/cuda_executor.h"
#else
namespace qyolo {
class CudaExecutor {};
}  // namespace qyolo
#endif
