#include "backends/cuda/cublaslt_gemm.h"

#include <algorithm>
#include <sstream>

namespace qyolo::cuda {

namespace {
constexpr int kMaxAlgos = 8;
const float kOne = 1.f, kZero = 0.f;
}  // namespace

LtGemmPlan::~LtGemmPlan() {
  if (d_) cublasLtMatrixLayoutDestroy(d_);
  if (b_) cublasLtMatrixLayoutDestroy(b_);
  if (a_) cublasLtMatrixLayoutDestroy(a_);
  if (op_) cublasLtMatmulDescDestroy(op_);
}

Result<std::unique_ptr<LtGemmPlan>> LtGemmPlan::create(cublasLtHandle_t handle, cudaStream_t stream,
                                                       const LtGemmProblem& p, const void* weights,
                                                       size_t workspace_limit, DeviceBuffer* tuning_workspace,
                                                       int64_t* heuristic_index) {
  const int64_t pitch = p.y_pitch != 0 ? p.y_pitch : p.k;
  if (p.pixels < 1 || p.k < 1 || p.c < 1 || pitch < p.k) return invalid_argument("cuBLASLt conv: bad GEMM shape");
  auto plan = std::unique_ptr<LtGemmPlan>(new LtGemmPlan());
  QYOLO_CUDA_CHECK(cublasLtMatmulDescCreate(&plan->op_, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  QYOLO_CUDA_CHECK(cublasLtMatmulDescSetAttribute(plan->op_, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  QYOLO_CUDA_CHECK(cublasLtMatmulDescSetAttribute(plan->op_, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  // Column-major views of the row-major buffers: W [K][C] is C x K, X [M][C] is C x M, Y [M][pitch]
  // is K x M with leading dimension pitch.
  const auto u = [](int64_t v) { return static_cast<uint64_t>(v); };
  QYOLO_CUDA_CHECK(cublasLtMatrixLayoutCreate(&plan->a_, CUDA_R_16F, u(p.c), u(p.k), p.c));
  QYOLO_CUDA_CHECK(cublasLtMatrixLayoutCreate(&plan->b_, CUDA_R_16F, u(p.c), u(p.pixels), p.c));
  QYOLO_CUDA_CHECK(cublasLtMatrixLayoutCreate(&plan->d_, CUDA_R_16F, u(p.k), u(p.pixels), pitch));

  cublasLtMatmulPreference_t pref = nullptr;
  QYOLO_CUDA_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  struct PrefOwner {
    cublasLtMatmulPreference_t p;
    ~PrefOwner() { cublasLtMatmulPreferenceDestroy(p); }
  } pref_owner{pref};
  const uint64_t ws_cap = std::min<uint64_t>(workspace_limit, tuning_workspace ? tuning_workspace->size() : 0);
  QYOLO_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_cap,
                                                        sizeof(ws_cap)));
  // Activations live at 16-byte (not cuBLASLt's default 256-byte) alignment in the arena.
  const uint32_t align = 16;
  for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    QYOLO_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof(align)));
  cublasLtMatmulHeuristicResult_t results[kMaxAlgos];
  int returned = 0;
  if (cublasLtMatmulAlgoGetHeuristic(handle, plan->op_, plan->a_, plan->b_, plan->d_, plan->d_, pref, kMaxAlgos,
                                     results, &returned) != CUBLAS_STATUS_SUCCESS ||
      returned == 0)
    return unsupported("cuBLASLt proposes no algorithm for this GEMM");

  std::ostringstream os;
  int best = -1;
  if (heuristic_index && *heuristic_index >= 0 && *heuristic_index < returned &&
      results[*heuristic_index].state == CUBLAS_STATUS_SUCCESS) {
    best = static_cast<int>(*heuristic_index);
    os << "cublasLt algo " << best << " (stored tactic)";
  } else {
    // Time each on scratch data (finite values).
    QYOLO_ASSIGN_OR_RETURN(auto xb, DeviceBuffer::allocate(static_cast<size_t>(p.pixels * p.c) * 2));
    QYOLO_ASSIGN_OR_RETURN(auto yb, DeviceBuffer::allocate(static_cast<size_t>(p.pixels * pitch) * 2));
    QYOLO_CUDA_CHECK(cudaMemsetAsync(xb.get(), 0x11, xb.size(), stream));
    void* ws = tuning_workspace ? tuning_workspace->get() : nullptr;
    float best_ms = 0.f;
    int timed = 0;
    for (int i = 0; i < returned; ++i) {
      if (results[i].state != CUBLAS_STATUS_SUCCESS || results[i].workspaceSize > ws_cap) continue;
      auto ms = time_launches(stream, 1, 3, [&]() -> Status {
        QYOLO_CUDA_CHECK(cublasLtMatmul(handle, plan->op_, &kOne, weights, plan->a_, xb.get(), plan->b_, &kZero,
                                        yb.get(), plan->d_, yb.get(), plan->d_, &results[i].algo, ws,
                                        results[i].workspaceSize, stream));
        return Status::ok();
      });
      if (!ms) {
        cudaGetLastError();
        continue;
      }
      ++timed;
      if (best < 0 || *ms < best_ms) best = i, best_ms = *ms;
    }
    QYOLO_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (best < 0) return unsupported("no cuBLASLt algorithm ran for this GEMM");
    plan->ms_ = best_ms;
    os << "cublasLt algo " << best << " (" << timed << " timed) " << best_ms << "ms";
  }
  if (heuristic_index) *heuristic_index = best;
  plan->algo_ = results[best].algo;
  plan->workspace_ = results[best].workspaceSize;
  os << " ws=" << plan->workspace_ / 1024 << "KiB";
  plan->info_ = os.str();
  return plan;
}

Status LtGemmPlan::execute(cublasLtHandle_t handle, const void* x, const void* w, void* y, void* workspace,
                           cudaStream_t stream) const {
  QYOLO_CUDA_CHECK(cublasLtMatmul(handle, op_, &kOne, w, a_, x, b_, &kZero, y, d_, y, d_, &algo_, workspace, workspace_,
                                  stream));
  return Status::ok();
}

}  // namespace qyolo::cuda
