// cuBLASLt as a convolution tactic: a 1x1 stride-1 conv on NHWC activations is one GEMM,
// Y[M][K] = X[M][C] . W[K][C]^T with M = N*H*W pixels. In cuBLASLt's column-major terms that is
// D (K x M, ld = y pitch) = op_T(W: C x K, ld C) . (X: C x M, ld C). fp16 in and out, fp32
// accumulation; the algorithms cuBLASLt's heuristic proposes are timed at build and the fastest is
// kept (its rank in the heuristic list is the stored tactic).
#pragma once

#include <cublasLt.h>

#include <memory>
#include <string>

#include "backends/cuda/cuda_check.h"

namespace qyolo::cuda {

struct LtGemmProblem {
  int64_t pixels = 0;   // M = N * H * W
  int64_t k = 0;        // output channels
  int64_t c = 0;        // input channels
  int64_t y_pitch = 0;  // elements between output pixels (0: k)
};

class LtGemmPlan {
 public:
  // heuristic_index: in: a stored choice to reuse without timing (< 0: time them all); out: the
  // choice made. Fails (kUnsupported) when cuBLASLt has no algorithm for the problem.
  static Result<std::unique_ptr<LtGemmPlan>> create(cublasLtHandle_t handle, cudaStream_t stream,
                                                    const LtGemmProblem& p, const void* weights,
                                                    size_t workspace_limit, DeviceBuffer* tuning_workspace,
                                                    int64_t* heuristic_index);
  ~LtGemmPlan();
  LtGemmPlan(const LtGemmPlan&) = delete;
  LtGemmPlan& operator=(const LtGemmPlan&) = delete;

  Status execute(cublasLtHandle_t handle, const void* x, const void* w, void* y, void* workspace,
                 cudaStream_t stream) const;
  size_t workspace_bytes() const { return workspace_; }
  float tuned_ms() const { return ms_; }
  std::string info() const { return info_; }

 private:
  LtGemmPlan() = default;
  cublasLtMatmulDesc_t op_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, d_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
  size_t workspace_ = 0;
  float ms_ = 0.f;
  std::string info_;
};

}  // namespace qyolo::cuda
