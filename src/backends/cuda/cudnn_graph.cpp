#include "backends/cuda/cudnn_graph.h"

#include <algorithm>
#include <sstream>
#include <vector>

namespace qyolo::cuda {

namespace {

constexpr int64_t kUidX = 1, kUidW = 2, kUidY = 3, kUidBias = 4, kUidResidual = 5, kUidScale = 6, kUidOutInvScale = 7,
                  kUidMultiplier = 8, kUidY8 = 9;
constexpr int64_t kUidVirtual = 100;  // + n: intermediates of the fused epilogue

Result<BackendDesc> make(cudnnBackendDescriptorType_t t) {
  cudnnBackendDescriptor_t d = nullptr;
  QYOLO_CUDA_CHECK(cudnnBackendCreateDescriptor(t, &d));
  return BackendDesc(d);
}

Result<BackendDesc> tensor(int64_t uid, cudnnDataType_t dt, const int64_t dims[4], const int64_t strides[4],
                           bool is_virtual = false) {
  QYOLO_ASSIGN_OR_RETURN(BackendDesc d, make(CUDNN_BACKEND_TENSOR_DESCRIPTOR));
  const int64_t align = 16;
  if (is_virtual) {
    const bool v = true;
    QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(d.get(), CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &v));
  }
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(d.get(), CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(d.get(), CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(d.get(), CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(d.get(), CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(d.get(), CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align));
  QYOLO_CUDA_CHECK(cudnnBackendFinalize(d.get()));
  return d;
}

void strides_of(bool nhwc, int64_t c, int64_t h, int64_t w, int64_t out[4]) {
  if (nhwc) {
    out[0] = h * w * c, out[1] = 1, out[2] = w * c, out[3] = c;
  } else {
    out[0] = c * h * w, out[1] = h * w, out[2] = w, out[3] = 1;
  }
}

Result<BackendDesc> variant_pack(const void* x, const void* w, void* y, void* ws, const void* bias = nullptr,
                                 const void* residual = nullptr, const void* scale = nullptr,
                                 const void* out_inv_scale = nullptr, const void* multiplier = nullptr,
                                 void* y8 = nullptr) {
  QYOLO_ASSIGN_OR_RETURN(BackendDesc vp, make(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR));
  int64_t uids[9] = {kUidX, kUidW, kUidY};
  void* ptrs[9] = {const_cast<void*>(x), const_cast<void*>(w), y};
  int64_t n = 3;
  if (bias) uids[n] = kUidBias, ptrs[n++] = const_cast<void*>(bias);
  if (residual) uids[n] = kUidResidual, ptrs[n++] = const_cast<void*>(residual);
  if (scale) uids[n] = kUidScale, ptrs[n++] = const_cast<void*>(scale);
  if (out_inv_scale) uids[n] = kUidOutInvScale, ptrs[n++] = const_cast<void*>(out_inv_scale);
  if (multiplier) uids[n] = kUidMultiplier, ptrs[n++] = const_cast<void*>(multiplier);
  if (y8) uids[n] = kUidY8, ptrs[n++] = y8;
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(vp.get(), CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(vp.get(), CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(vp.get(), CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws));
  QYOLO_CUDA_CHECK(cudnnBackendFinalize(vp.get()));
  return vp;
}

// One pointwise operation y = mode(x [, alpha2 * b]) in fp32 math.
Result<BackendDesc> pointwise_op(cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                                 cudnnBackendDescriptor_t y, float alpha2 = 1.f) {
  QYOLO_ASSIGN_OR_RETURN(BackendDesc pw, make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR));
  const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(pw.get(), CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(pw.get(), CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec));
  QYOLO_CUDA_CHECK(cudnnBackendFinalize(pw.get()));
  QYOLO_ASSIGN_OR_RETURN(BackendDesc op, make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR));
  cudnnBackendDescriptor_t d = pw.get();
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &d));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x));
  if (b) QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b));
  if (b && alpha2 != 1.f)
    QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &alpha2));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y));
  QYOLO_CUDA_CHECK(cudnnBackendFinalize(op.get()));
  return op;
}

struct Candidate {
  BackendDesc plan;
  size_t ws = 0;
  int64_t engine = -1;
  int64_t heuristic_index = -1;
  float ms = 1e30f;
};

}  // namespace

std::optional<GraphConvProblem::Act> graph_activation(FusedActivation a) {
  switch (a) {
    case FusedActivation::kNone: return GraphConvProblem::Act::kNone;
    case FusedActivation::kRelu: return GraphConvProblem::Act::kRelu;
    case FusedActivation::kSilu: return GraphConvProblem::Act::kSilu;
    case FusedActivation::kSigmoid: return GraphConvProblem::Act::kSigmoid;
    default: return std::nullopt;
  }
}

Result<std::unique_ptr<GraphConvPlan>> GraphConvPlan::create(cudnnHandle_t handle, cudaStream_t stream,
                                                             const GraphConvProblem& p, const void* weights,
                                                             size_t workspace_limit, DeviceBuffer* tuning_workspace,
                                                             int max_plans, bool allow_tf32, Tactic* tactic) {
  int64_t xd[4] = {p.n, p.c, p.h, p.w}, xs[4];
  int64_t wd[4] = {p.k, p.cg, p.r, p.s}, ws[4];
  int64_t yd[4] = {p.n, p.k, p.oh, p.ow}, ys[4];
  strides_of(p.nhwc, p.c, p.h, p.w, xs);
  strides_of(p.nhwc, p.cg, p.r, p.s, ws);
  strides_of(p.nhwc, p.k, p.oh, p.ow, ys);
  if (p.y_pitch != 0 && (!p.nhwc || p.y_pitch < p.k)) return invalid_argument("cuDNN graph conv: bad output pitch");
  const bool int8 = p.dtype == CUDNN_DATA_INT8;
  if (int8 && (!p.nhwc || !p.fused || (p.y_dtype != CUDNN_DATA_HALF && p.y_dtype != CUDNN_DATA_INT8)))
    return invalid_argument("cuDNN graph conv: int8 needs NHWC, the fused epilogue and half or int8 output");
  const cudnnDataType_t y_dtype = int8 ? p.y_dtype : p.dtype;
  if (p.int8_copy && (!int8 || y_dtype != CUDNN_DATA_HALF || (p.y8_pitch != 0 && p.y8_pitch < p.k)))
    return invalid_argument("cuDNN graph conv: the int8 copy needs int8 x, half y and a pitch >= k");
  const int64_t pitch8 = p.y8_pitch != 0 ? p.y8_pitch : p.k;
  // The requantisation scalar: the int8 output's, or the int8 copy's.
  const bool out_inv_scale = y_dtype == CUDNN_DATA_INT8 || p.int8_copy;
  const int64_t pitch = p.y_pitch != 0 ? p.y_pitch : p.k;
  int64_t ys_out[4];
  strides_of(p.nhwc, pitch, p.oh, p.ow, ys_out);
  QYOLO_ASSIGN_OR_RETURN(BackendDesc tx, tensor(kUidX, p.dtype, xd, xs));
  QYOLO_ASSIGN_OR_RETURN(BackendDesc tw, tensor(kUidW, p.dtype, wd, ws));
  QYOLO_ASSIGN_OR_RETURN(BackendDesc ty, tensor(kUidY, y_dtype, yd, ys_out));
  // Fused epilogue: conv -> [* scale] -> [+ bias] -> [act] -> [* multiplier] -> [+ residual] ->
  // [* 1/s_out] -> y,
  // fp32 virtual intermediates (int32 out of an int8 conv).
  struct Stage {
    cudnnPointwiseMode_t mode;
    int64_t operand_uid;  // 0: unary
  };
  std::vector<Stage> stages;
  if (p.fused) {
    if (int8) stages.push_back({CUDNN_POINTWISE_MUL, kUidScale});
    if (p.bias) stages.push_back({CUDNN_POINTWISE_ADD, kUidBias});
    if (p.act == GraphConvProblem::Act::kRelu) stages.push_back({CUDNN_POINTWISE_RELU_FWD, 0});
    if (p.act == GraphConvProblem::Act::kSilu) stages.push_back({CUDNN_POINTWISE_SWISH_FWD, 0});
    if (p.act == GraphConvProblem::Act::kSigmoid) stages.push_back({CUDNN_POINTWISE_SIGMOID_FWD, 0});
    if (p.multiplier) stages.push_back({CUDNN_POINTWISE_MUL, kUidMultiplier});
    if (p.residual) stages.push_back({CUDNN_POINTWISE_ADD, kUidResidual});
    if (int8 && y_dtype == CUDNN_DATA_INT8) stages.push_back({CUDNN_POINTWISE_MUL, kUidOutInvScale});
  }
  std::vector<BackendDesc> virt;  // the conv's output and each stage's but the last
  for (size_t i = 0; i < stages.size(); ++i) {
    const cudnnDataType_t vt = int8 && i == 0 ? CUDNN_DATA_INT32 : CUDNN_DATA_FLOAT;
    QYOLO_ASSIGN_OR_RETURN(BackendDesc t, tensor(kUidVirtual + static_cast<int64_t>(i), vt, yd, ys, true));
    virt.push_back(std::move(t));
  }
  const int64_t kd[4] = {1, p.k, 1, 1};
  const int64_t kstr[4] = {p.k, 1, p.k, p.k};
  BackendDesc tbias, tres, tscale, tinv, tmult;
  if (p.fused && p.bias) {
    QYOLO_ASSIGN_OR_RETURN(tbias, tensor(kUidBias, CUDNN_DATA_FLOAT, kd, kstr));
  }
  if (p.multiplier && !p.fused) return invalid_argument("cuDNN graph conv: the output multiplier needs the fused epilogue");
  if (p.fused && p.multiplier) {
    QYOLO_ASSIGN_OR_RETURN(tmult, tensor(kUidMultiplier, CUDNN_DATA_FLOAT, kd, kstr));
  }
  const bool int8_residual = int8 && p.residual_dtype == CUDNN_DATA_INT8;
  if (p.fused && p.residual) {
    if (int8 && p.residual_dtype != CUDNN_DATA_HALF && !int8_residual)
      return invalid_argument("cuDNN graph conv: an int8 conv's residual is half or int8");
    int64_t rs[4];
    strides_of(p.nhwc, int8_residual && p.residual_pitch ? p.residual_pitch : p.k, p.oh, p.ow, rs);
    QYOLO_ASSIGN_OR_RETURN(tres, tensor(kUidResidual, int8 ? p.residual_dtype : p.dtype, yd, rs));
  }
  if (p.fused && int8) {
    QYOLO_ASSIGN_OR_RETURN(tscale, tensor(kUidScale, CUDNN_DATA_FLOAT, kd, kstr));
    const int64_t one[4] = {1, 1, 1, 1};
    if (out_inv_scale) {
      QYOLO_ASSIGN_OR_RETURN(tinv, tensor(kUidOutInvScale, CUDNN_DATA_FLOAT, one, one));
    }
  }
  BackendDesc ty8;
  if (p.int8_copy) {
    int64_t ys8[4];
    strides_of(true, pitch8, p.oh, p.ow, ys8);
    QYOLO_ASSIGN_OR_RETURN(ty8, tensor(kUidY8, CUDNN_DATA_INT8, yd, ys8));
  }

  QYOLO_ASSIGN_OR_RETURN(BackendDesc conv, make(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR));
  const cudnnDataType_t comp = int8 ? CUDNN_DATA_INT32 : CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const int64_t spatial = 2;
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(conv.get(), CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(conv.get(), CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(conv.get(), CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &spatial));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(conv.get(), CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, p.dil));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(conv.get(), CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, p.stride));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(conv.get(), CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, p.pad));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(conv.get(), CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, p.pad));
  QYOLO_CUDA_CHECK(cudnnBackendFinalize(conv.get()));

  QYOLO_ASSIGN_OR_RETURN(BackendDesc op, make(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR));
  const float alpha = 1.f, beta = 0.f;
  cudnnBackendDescriptor_t d;
  d = tx.get();
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(op.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &d));
  d = tw.get();
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(op.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &d));
  d = stages.empty() ? ty.get() : virt[0].get();
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(op.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &d));
  d = conv.get();
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(op.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &d));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(op.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(op.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta));
  QYOLO_CUDA_CHECK(cudnnBackendFinalize(op.get()));

  std::vector<BackendDesc> pw_ops;
  for (size_t i = 0; i < stages.size(); ++i) {
    const int64_t u = stages[i].operand_uid;
    cudnnBackendDescriptor_t operand = u == kUidBias       ? tbias.get()
                                       : u == kUidResidual ? tres.get()
                                       : u == kUidScale    ? tscale.get()
                                       : u == kUidOutInvScale ? tinv.get()
                                       : u == kUidMultiplier  ? tmult.get()
                                                           : nullptr;
    cudnnBackendDescriptor_t out = i + 1 == stages.size() ? ty.get() : virt[i + 1].get();
    const float alpha2 = u == kUidResidual && int8_residual ? p.residual_scale : 1.f;
    QYOLO_ASSIGN_OR_RETURN(BackendDesc o, pointwise_op(stages[i].mode, virt[i].get(), operand, out, alpha2));
    pw_ops.push_back(std::move(o));
  }
  if (p.int8_copy) {  // y (half, written) -> x out_inv_scale -> y8
    QYOLO_ASSIGN_OR_RETURN(BackendDesc o, pointwise_op(CUDNN_POINTWISE_MUL, ty.get(), tinv.get(), ty8.get()));
    pw_ops.push_back(std::move(o));
  }
  std::vector<cudnnBackendDescriptor_t> ops = {op.get()};
  for (const auto& o : pw_ops) ops.push_back(o.get());
  QYOLO_ASSIGN_OR_RETURN(BackendDesc graph, make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(graph.get(), CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                            static_cast<int64_t>(ops.size()), ops.data()));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(graph.get(), CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle));
  QYOLO_CUDA_CHECK(cudnnBackendFinalize(graph.get()));

  QYOLO_ASSIGN_OR_RETURN(BackendDesc heur, make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR));
  const cudnnBackendHeurMode_t hmode = CUDNN_HEUR_MODE_A;
  d = graph.get();
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &d));
  QYOLO_CUDA_CHECK(cudnnBackendSetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &hmode));
  QYOLO_CUDA_CHECK(cudnnBackendFinalize(heur.get()));
  int64_t count = 0;
  QYOLO_CUDA_CHECK(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr));
  if (count <= 0) return unsupported("cuDNN heuristics proposed no engine");
  std::vector<BackendDesc> cfgs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    QYOLO_ASSIGN_OR_RETURN(BackendDesc c, make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    raw.push_back(c.get());
    cfgs.push_back(std::move(c));
  }
  int64_t got = 0;
  QYOLO_CUDA_CHECK(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got, raw.data()));

  // Finalise the acceptable plans.
  std::vector<Candidate> cands;
  const size_t scratch = tuning_workspace ? tuning_workspace->size() : 0;
  // A stored tactic (heuristic rank + engine id) is tried alone first; if it no longer finalises
  // or names another engine (other cuDNN), everything is timed again.
  const bool reuse = tactic && tactic->heuristic_index >= 0 && tactic->heuristic_index < got;
  auto gather = [&](int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end && static_cast<int>(cands.size()) < max_plans; ++i) {
    auto eng = make(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    if (!eng) continue;
    cudnnBackendDescriptor_t e = eng->get();
    int64_t n = 0;
    if (cudnnBackendGetAttribute(raw[i], CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &e) !=
        CUDNN_STATUS_SUCCESS)
      continue;
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    int64_t nn = 0;
    bool ok = true;
    if (cudnnBackendGetAttribute(e, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                 CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &nn, notes) == CUDNN_STATUS_SUCCESS) {
      for (int64_t k = 0; k < nn; ++k) {
        if (notes[k] == CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION) ok = false;
        if (p.dtype == CUDNN_DATA_FLOAT && !allow_tf32 &&
            (notes[k] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS || notes[k] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE))
          ok = false;
      }
    }
    cudnnBackendBehaviorNote_t behav[CUDNN_BEHAVIOR_NOTE_TYPE_COUNT];
    int64_t nb = 0;
    if (cudnnBackendGetAttribute(e, CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE,
                                 CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &nb, behav) == CUDNN_STATUS_SUCCESS) {
      for (int64_t k = 0; k < nb; ++k)
        if (behav[k] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION && !p.fused) ok = false;
    }
    if (!ok) continue;
    int64_t gidx = -1;
    cudnnBackendGetAttribute(e, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &gidx);
    auto plan = make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    if (!plan) continue;
    cudnnBackendDescriptor_t cfg = raw[i];
    if (cudnnBackendSetAttribute(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle) !=
            CUDNN_STATUS_SUCCESS ||
        cudnnBackendSetAttribute(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                 &cfg) != CUDNN_STATUS_SUCCESS ||
        cudnnBackendFinalize(plan->get()) != CUDNN_STATUS_SUCCESS)
      continue;
    int64_t wsz = 0;
    if (cudnnBackendGetAttribute(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &wsz) !=
        CUDNN_STATUS_SUCCESS)
      continue;
    if (static_cast<size_t>(wsz) > workspace_limit || static_cast<size_t>(wsz) > scratch) continue;
    Candidate c;
    c.plan = std::move(plan).value();
    c.ws = static_cast<size_t>(wsz);
    c.engine = gidx;
    c.heuristic_index = i;
    cands.push_back(std::move(c));
  }
  };
  if (reuse) {
    gather(tactic->heuristic_index, tactic->heuristic_index + 1);
    if (cands.size() == 1 && cands[0].engine == tactic->engine) {
      auto out = std::unique_ptr<GraphConvPlan>(new GraphConvPlan());
      out->plan_ = std::make_shared<BackendDesc>(std::move(cands[0].plan));
      out->workspace_ = cands[0].ws;
      out->info_ = "graph engine " + std::to_string(tactic->engine) + " (stored tactic) ws=" +
                   std::to_string(cands[0].ws / 1024) + "KiB";
      return Result<std::unique_ptr<GraphConvPlan>>(std::move(out));
    }
    cands.clear();  // another cuDNN or GPU: time them all again
  }
  gather(0, got);
  cudaGetLastError();
  if (cands.empty()) return unsupported("no cuDNN graph engine could be finalised for this convolution");

  // Time each on scratch data (finite values).
  auto elem_size = [](cudnnDataType_t t) -> size_t { return t == CUDNN_DATA_INT8 ? 1 : t == CUDNN_DATA_HALF ? 2 : 4; };
  QYOLO_ASSIGN_OR_RETURN(auto xb, DeviceBuffer::allocate(static_cast<size_t>(p.n * p.c * p.h * p.w) * elem_size(p.dtype)));
  QYOLO_ASSIGN_OR_RETURN(auto yb, DeviceBuffer::allocate(static_cast<size_t>(p.n * pitch * p.oh * p.ow) * elem_size(y_dtype)));
  QYOLO_CUDA_CHECK(cudaMemsetAsync(xb.get(), 0x11, xb.size(), stream));
  DeviceBuffer bb, rb, sb, mb, y8b;
  if (p.int8_copy) {
    QYOLO_ASSIGN_OR_RETURN(y8b, DeviceBuffer::allocate(static_cast<size_t>(p.n * pitch8 * p.oh * p.ow)));
  }
  if (p.fused && p.bias) {
    QYOLO_ASSIGN_OR_RETURN(bb, DeviceBuffer::allocate(static_cast<size_t>(p.k) * 4));
    QYOLO_CUDA_CHECK(cudaMemsetAsync(bb.get(), 0, bb.size(), stream));
  }
  if (p.fused && p.multiplier) {
    QYOLO_ASSIGN_OR_RETURN(mb, DeviceBuffer::allocate(static_cast<size_t>(p.k) * 4));
    const std::vector<float> ones(static_cast<size_t>(p.k), 1.f);
    QYOLO_RETURN_IF_ERROR(mb.upload(ones.data(), mb.size()));
  }
  if (p.fused && p.residual) {
    const size_t res = int8_residual ? 1 : int8 ? 2 : elem_size(p.dtype);
    const int64_t rc = int8_residual && p.residual_pitch ? p.residual_pitch : p.k;
    QYOLO_ASSIGN_OR_RETURN(rb, DeviceBuffer::allocate(static_cast<size_t>(p.n * rc * p.oh * p.ow) * res));
    QYOLO_CUDA_CHECK(cudaMemsetAsync(rb.get(), 0, rb.size(), stream));
  }
  if (p.fused && int8) {  // scales [K] then the requantisation scalar: small finite values
    QYOLO_ASSIGN_OR_RETURN(sb, DeviceBuffer::allocate(static_cast<size_t>(p.k + 1) * 4));
    std::vector<float> ones(static_cast<size_t>(p.k + 1), 1e-3f);
    QYOLO_RETURN_IF_ERROR(sb.upload(ones.data(), sb.size()));
  }
  const void* scale_ptr = sb.get();
  const void* inv_ptr = sb.get() && out_inv_scale ? sb.as<float>() + p.k : nullptr;
  void* wsp = tuning_workspace ? tuning_workspace->get() : nullptr;
  int best = -1;
  for (size_t i = 0; i < cands.size(); ++i) {
    auto vp = variant_pack(xb.get(), weights, yb.get(), wsp, bb.get(), rb.get(), scale_ptr, inv_ptr, mb.get(), y8b.get());
    if (!vp) continue;
    auto ms = time_launches(stream, 1, 3, [&]() -> Status {
      QYOLO_CUDA_CHECK(cudnnBackendExecute(handle, cands[i].plan.get(), vp->get()));
      return Status::ok();
    });
    if (!ms) {  // a plan that finalises but does not run here: skip it
      cudaGetLastError();
      continue;
    }
    cands[i].ms = *ms;
    if (best < 0 || cands[i].ms < cands[static_cast<size_t>(best)].ms) best = static_cast<int>(i);
  }
  QYOLO_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (best < 0) return unsupported("no cuDNN graph engine ran for this convolution");
  auto out = std::unique_ptr<GraphConvPlan>(new GraphConvPlan());
  Candidate& b = cands[static_cast<size_t>(best)];
  if (tactic) *tactic = {b.heuristic_index, b.engine};
  out->plan_ = std::make_shared<BackendDesc>(std::move(b.plan));
  out->workspace_ = b.ws;
  out->ms_ = b.ms;
  std::ostringstream os;
  os << "graph engine " << b.engine << " (" << cands.size() << " timed) ws=" << b.ws / 1024 << "KiB " << b.ms << "ms";
  out->info_ = os.str();
  return Result<std::unique_ptr<GraphConvPlan>>(std::move(out));
}

Status GraphConvPlan::execute(cudnnHandle_t handle, const void* x, const void* w, void* y, void* workspace,
                              const void* bias, const void* residual, const void* scale, const void* out_inv_scale,
                              const void* multiplier, void* y8) {
  const void* now[10] = {x, w, y, workspace, bias, residual, scale, out_inv_scale, multiplier, y8};
  if (!vp_ || !std::equal(now, now + 10, vp_ptrs_)) {
    QYOLO_ASSIGN_OR_RETURN(vp_, variant_pack(x, w, y, workspace, bias, residual, scale, out_inv_scale, multiplier, y8));
    std::copy(now, now + 10, vp_ptrs_);
  }
  QYOLO_CUDA_CHECK(cudnnBackendExecute(handle, plan_->get(), vp_.get()));
  return Status::ok();
}

}  // namespace qyolo::cuda
