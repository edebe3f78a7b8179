// cuDNN graph (backend) API convolution: an operation graph with one forward convolution, the
// engine configurations the heuristics (mode A) propose, each finalised into an execution plan
// and timed on scratch buffers at build; the fastest is kept. This reaches the engines the
// legacy cudnnConvolutionForward API does not (the ones PyTorch's cudnn.benchmark finds).
#pragma once

#include <cudnn.h>

#include <memory>
#include <optional>
#include <string>

#include "backends/cuda/cuda_check.h"
#include "ir/ops/conv2d.h"

namespace qyolo::cuda {

struct BackendDescTraits {
  static void destroy(cudnnBackendDescriptor_t d) { cudnnBackendDestroyDescriptor(d); }
};
using BackendDesc = Owner<cudnnBackendDescriptor_t, BackendDescTraits>;

struct GraphConvProblem {
  // x, w and y. CUDNN_DATA_INT8: int8 x and w (NHWC, channels padded to 16), int32
  // accumulation, y of y_dtype; the epilogue (always fused) starts with the per-channel
  // dequantisation (`scale` [K] fp32: real = scale * acc) and, for int8 y, ends with the
  // requantisation (`out_inv_scale` [1] fp32 on the device: y_q = round(y * out_inv_scale)).
  cudnnDataType_t dtype = CUDNN_DATA_HALF;
  cudnnDataType_t y_dtype = CUDNN_DATA_HALF;  // int8 x only: CUDNN_DATA_HALF or CUDNN_DATA_INT8
  bool nhwc = true;
  int64_t n = 0, c = 0, h = 0, w = 0;  // input
  int64_t k = 0, cg = 0, r = 0, s = 0; // filter (cg = c / group)
  int64_t oh = 0, ow = 0;
  int64_t pad[2] = {0, 0}, stride[2] = {1, 1}, dil[2] = {1, 1};
  // NHWC y only: elements between output pixels (0: k). Larger when y is a channel slice of a
  // concat's buffer (concat in place); the residual stays dense.
  int64_t y_pitch = 0;
  // Fused epilogue, y = act(conv + bias) + residual, through cuDNN's runtime-fusion engines
  // (compiled with NVRTC when the plan is finalised): bias [K] fp32 and residual (like y) are
  // passed to execute(). act: kNone, kRelu, kSilu (swish) or kSigmoid.
  bool fused = false;
  bool bias = false, residual = false;
  // int8 x: the residual is half, or int8 (NHWC, residual_pitch channels between pixels, 0: k)
  // added as residual_scale * r; otherwise like y.
  cudnnDataType_t residual_dtype = CUDNN_DATA_HALF;
  float residual_scale = 1.f;
  int64_t residual_pitch = 0;
  enum class Act { kNone, kRelu, kSilu, kSigmoid } act = Act::kNone;
  // Fused epilogue: y = act(...) * multiplier[K] (fp32, passed to execute()) before the residual:
  // the activation-equalisation multiplier (ConvAttrs::output_multiplier).
  bool multiplier = false;
  // int8 x with half y: the epilogue also writes y8 = round(y * out_inv_scale) as int8 NHWC (y8_pitch
  // elements between pixels, 0: k), one more pointwise stage reading y: the int8 copy an INT8 reader
  // takes, where a residual reads y as half (no separate requantisation pass).
  bool int8_copy = false;
  int64_t y8_pitch = 0;
};

// The fused epilogue's activation for a conv's; nullopt when cuDNN's pointwise ops lack it.
std::optional<GraphConvProblem::Act> graph_activation(FusedActivation a);

class GraphConvPlan {
 public:
  // max_plans: engine configurations finalised and timed. Plans that compile at run time
  // (NVRTC) are skipped; so are reduced-precision reductions (fp16 accumulation) and, for fp32,
  // anything that down-converts inputs (TF32), unless allow_tf32.
  // The choice, storable in an engine file: rank in the heuristics' list and cuDNN's global
  // engine id (checked on reuse: another cuDNN may rank differently).
  struct Tactic {
    int64_t heuristic_index = -1;
    int64_t engine = -1;
  };
  // tactic: in: a stored choice to reuse without timing (heuristic_index < 0: none); out: the
  // choice made.
  static Result<std::unique_ptr<GraphConvPlan>> create(cudnnHandle_t handle, cudaStream_t stream,
                                                       const GraphConvProblem& p, const void* weights,
                                                       size_t workspace_limit, DeviceBuffer* tuning_workspace,
                                                       int max_plans, bool allow_tf32, Tactic* tactic = nullptr);
  size_t workspace_bytes() const { return workspace_; }
  // Measured time of the chosen engine at build (0 when reused from a stored tactic).
  float tuned_ms() const { return ms_; }
  // Runs the plan (the variant pack is rebuilt only when a pointer changed).
  // INT8 problems also take the dequantisation scales and, with int8 y, the requantisation scalar.
  Status execute(cudnnHandle_t handle, const void* x, const void* w, void* y, void* workspace,
                 const void* bias = nullptr, const void* residual = nullptr, const void* scale = nullptr,
                 const void* out_inv_scale = nullptr, const void* multiplier = nullptr, void* y8 = nullptr);
  std::string info() const { return info_; }
  // Another user of the same plan (its own variant pack): identical convolutions share plans.
  std::unique_ptr<GraphConvPlan> share() const {
    auto p = std::unique_ptr<GraphConvPlan>(new GraphConvPlan());
    p->plan_ = plan_;
    p->workspace_ = workspace_;
    p->ms_ = ms_;
    p->info_ = info_.find(" (shared)") == std::string::npos ? info_ + " (shared)" : info_;
    return p;
  }

 private:
  GraphConvPlan() = default;
  std::shared_ptr<BackendDesc> plan_;
  BackendDesc vp_;
  const void* vp_ptrs_[10] = {};
  size_t workspace_ = 0;
  float ms_ = 0;
  std::string info_;
};

}  // namespace qyolo::cuda
