// Conv 2-D through cuDNN (legacy convolution API), fp32 (true fp32: CUDNN_FMA_MATH unless TF32 is
// allowed) or fp16 (tensor cores, fp32 accumulation), NCHW or NHWC, any group count. The
// algorithm is chosen at build by timing (cudnnFindConvolutionForwardAlgorithmEx) within the
// workspace limit. qyolo's fused epilogue (bias, activation, residual) runs as one extra
// vectorised in-place pass: y = act(conv(x) + b) + r.
#include <algorithm>
#include <cstring>
#include <sstream>

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/cublaslt_gemm.h"
#include "backends/cuda/cudnn_graph.h"
#include "ir/ops/conv2d.h"

namespace qyolo::cuda {

void ensure_tuning_workspace(PrepareContext& ctx) {
  const size_t limit = ctx.options->workspace_limit;
  if (ctx.tuning_workspace->size() != 0 || limit == 0) return;
  for (size_t sz = limit; sz >= (size_t{1} << 20); sz /= 2) {
    auto buf = DeviceBuffer::allocate(sz);
    if (buf) {
      *ctx.tuning_workspace = std::move(buf).value();
      return;
    }
  }
}

namespace {

struct EpilogueParams {
  int64_t n;      // elements
  int c;          // channels
  int64_t hw;     // spatial size
  Act act;
  float alpha;
  const float* bias;  // nullptr: none
  const float* mult;  // [c] after the activation (ConvAttrs::output_multiplier), nullptr: none
};

template <typename T, int V> struct alignas(sizeof(T) * V) Vec { T v[V]; };

// Vectorised, 32-bit indexing (n < 2^31): NHWC needs c % V == 0 (a vector holds channels
// c0..c0+V-1); NCHW needs hw % V == 0 (a vector holds one channel).
template <typename T, bool NHWC, bool RES, bool BIAS>
__global__ void epilogue_vec_kernel(EpilogueParams p, T* __restrict__ y, const T* __restrict__ r) {
  await_producers();
  constexpr int V = 16 / sizeof(T);
  const uint32_t nvec = static_cast<uint32_t>(p.n / V);
  const uint32_t cvec = static_cast<uint32_t>(p.c / V);  // NHWC: vectors per pixel
  const uint32_t hwvec = static_cast<uint32_t>(p.hw / V);  // NCHW: vectors per plane
  const uint32_t c = static_cast<uint32_t>(p.c);
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < nvec; i += gridDim.x * blockDim.x) {
    Vec<T, V> v = reinterpret_cast<const Vec<T, V>*>(y)[i];
    Vec<T, V> rv;
    if constexpr (RES) rv = reinterpret_cast<const Vec<T, V>*>(r)[i];
    const uint32_t c0 = NHWC ? (i % cvec) * V : (i / hwvec) % c;
    float b[V];
    if constexpr (BIAS) {
      if constexpr (NHWC) {
#pragma unroll
        for (int k = 0; k < V; k += 4) {
          const float4 q = *reinterpret_cast<const float4*>(p.bias + c0 + k);
          b[k] = q.x, b[k + 1] = q.y, b[k + 2] = q.z, b[k + 3] = q.w;
        }
      } else {
        const float bb = p.bias[c0];
#pragma unroll
        for (int k = 0; k < V; ++k) b[k] = bb;
      }
    } else {
#pragma unroll
      for (int k = 0; k < V; ++k) b[k] = 0.f;
    }
    float m[V];
#pragma unroll
    for (int k = 0; k < V; ++k) m[k] = 1.f;
    if (p.mult) {  // uniform over the grid
#pragma unroll
      for (int k = 0; k < V; ++k) m[k] = p.mult[NHWC ? c0 + k : c0];
    }
#pragma unroll
    for (int k = 0; k < V; ++k) {
      float t = apply_act(p.act, to_f(v.v[k]) + b[k], p.alpha) * m[k];
      if constexpr (RES) t += to_f(rv.v[k]);
      v.v[k] = from_f<T>(t);
    }
    reinterpret_cast<Vec<T, V>*>(y)[i] = v;
  }
}

template <typename T, bool NHWC>
__global__ void epilogue_kernel(EpilogueParams p, T* __restrict__ y, const T* __restrict__ r) {
  await_producers();
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int c = NHWC ? static_cast<int>(i % p.c) : static_cast<int>((i / p.hw) % p.c);
    float t = apply_act(p.act, to_f(y[i]) + (p.bias ? p.bias[c] : 0.f), p.alpha);
    if (p.mult) t *= p.mult[c];
    if (r) t += to_f(r[i]);
    y[i] = from_f<T>(t);
  }
}

template <typename T, bool NHWC, bool RES>
void launch_vec(const EpilogueParams& p, T* y, const T* r, cudaStream_t s, bool pdl) {
  constexpr int V = 16 / sizeof(T);
  constexpr int kThreads = 256;
  const unsigned g = grid_for(p.n / V, kThreads);
  if (p.bias) launch_kernel(epilogue_vec_kernel<T, NHWC, RES, true>, g, kThreads, 0, s, pdl, p, y, r);
  else launch_kernel(epilogue_vec_kernel<T, NHWC, RES, false>, g, kThreads, 0, s, pdl, p, y, r);
}

template <typename T>
Status launch_epilogue(const EpilogueParams& p, bool nhwc, void* y, const void* r, cudaStream_t s, bool pdl) {
  constexpr int V = 16 / sizeof(T);
  constexpr int kThreads = 256;
  T* Y = static_cast<T*>(y);
  const T* R = static_cast<const T*>(r);
  const bool aligned = ((reinterpret_cast<uintptr_t>(y) | reinterpret_cast<uintptr_t>(r)) % 16) == 0;
  const bool vec = aligned && p.n < (int64_t{1} << 31) && (nhwc ? p.c % V == 0 : p.hw % V == 0);
  if (vec) {
    if (nhwc) {
      if (R) launch_vec<T, true, true>(p, Y, R, s, pdl);
      else launch_vec<T, true, false>(p, Y, R, s, pdl);
    } else {
      if (R) launch_vec<T, false, true>(p, Y, R, s, pdl);
      else launch_vec<T, false, false>(p, Y, R, s, pdl);
    }
  } else {
    const unsigned g = grid_for(p.n, kThreads);
    if (nhwc) launch_kernel(epilogue_kernel<T, true>, g, kThreads, 0, s, pdl, p, Y, R);
    else launch_kernel(epilogue_kernel<T, false>, g, kThreads, 0, s, pdl, p, Y, R);
  }
  QYOLO_CUDA_CHECK_LAUNCH("conv epilogue kernel");
  return Status::ok();
}

const char* algo_name(cudnnConvolutionFwdAlgo_t a) {
  switch (a) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM: return "implicit_gemm";
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM: return "implicit_precomp_gemm";
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM: return "gemm";
    case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT: return "direct";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT: return "fft";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING: return "fft_tiling";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD: return "winograd";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED: return "winograd_nonfused";
    default: return "?";
  }
}

class ConvKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext& ctx, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    const TensorInfo& x = *in[0];
    const TensorInfo* w = in.size() > 1 ? in[1] : nullptr;
    const TensorInfo* b = in.size() > 2 ? in[2] : nullptr;
    const TensorInfo* r = in.size() > 3 ? in[3] : nullptr;
    const TensorInfo& y = out[0];
    if (w == nullptr || w->constant == nullptr)
      return unsupported(node.describe() + ": the CUDA backend needs constant weights");
    if (b != nullptr && b->constant == nullptr)
      return unsupported(node.describe() + ": the CUDA backend needs a constant bias");
    if (x.shape.size() != 4) return unsupported(node.describe() + ": the CUDA backend runs 2-D convolutions only");
    // Space-to-depth input (x.s2d = f, the FP16 stem): x is [N, Cp, H/f, W/f] holding the image's
    // f x f sub-pixels as channels; the conv is parsed on the logical input and run as the
    // equivalent stride-1 conv with R/f x S/f taps on Cp channels.
    const int f = x.s2d;
    s2d_ = f;
    Shape logical = x.shape;
    if (f > 1) {
      logical[1] = w->shape[1];
      logical[2] *= f;
      logical[3] *= f;
    }
    QYOLO_ASSIGN_OR_RETURN(ConvAttrs a, ConvAttrs::parse(node, logical, w->shape));
    WindowGeometry win = a.window;
    if (f > 1) {
      if (a.group != 1 || x.layout != Layout::kNHWC || win.strides[0] != f || win.strides[1] != f || win.dilations[0] != 1 ||
          win.dilations[1] != 1 || w->shape[2] % f || w->shape[3] % f || win.pads_begin[0] % f || win.pads_begin[1] % f ||
          x.shape[1] < w->shape[1] * f * f)
        return internal_error(node.describe() + ": space-to-depth input does not fit this convolution");
      for (int d = 0; d < 2; ++d) {
        win.pads_begin[d] /= f;
        win.pads_end[d] = win.pads_begin[d];
        win.strides[d] = 1;
      }
    }
    if (win.pads_begin != win.pads_end)
      return unsupported(node.describe() + ": asymmetric padding is not supported by the CUDA backend");
    // y may carry more channels than the filter has (fp16 NHWC, no residual): the extra ones are
    // computed with zero weights and bias, so that cuDNN sees a multiple of 8 (the detect heads'
    // 255 channels run 2-3x slower than 256); the executor views the first K0 channels.
    const bool padded = y.shape.size() == 4 && a.out_shape.size() == 4 && y.shape[1] > a.out_shape[1];
    Shape y_model = y.shape;
    if (padded) {
      if (y.dtype != DataType::kFloat16 || y.layout != Layout::kNHWC || r != nullptr || y.shape[1] % 8 != 0)
        return internal_error(node.describe() + ": padded output channels need fp16 NHWC without a residual");
      y_model[1] = a.out_shape[1];
    }
    if (a.out_shape != y_model) return internal_error(node.describe() + ": conv output shape mismatch");
    if (x.dtype != y.dtype || x.layout != y.layout || (r && (r->dtype != y.dtype || r->layout != y.layout)))
      return internal_error(node.describe() + ": conv input/output dtype or layout mismatch");

    half_ = y.dtype == DataType::kFloat16;
    nhwc_ = y.layout == Layout::kNHWC;
    const cudnnDataType_t dt = half_ ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
    const cudnnTensorFormat_t fmt = nhwc_ ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    const int N = static_cast<int>(x.shape[0]), C = static_cast<int>(x.shape[1]), H = static_cast<int>(x.shape[2]),
              W = static_cast<int>(x.shape[3]);
    // The ONNX filter [K][C0][R0][S0]; the conv cuDNN runs has Cg x R x S (= C0 x R0 x S0 unless
    // space-to-depth: Cp channels, R0/f x S0/f taps).
    const int K0 = static_cast<int>(w->shape[0]), C0 = static_cast<int>(w->shape[1]), R0 = static_cast<int>(w->shape[2]),
              S0 = static_cast<int>(w->shape[3]);
    const int K = static_cast<int>(y.shape[1]);  // >= K0: padded channels have zero weights
    const int Cg = f > 1 ? C : C0, R = R0 / f, S = S0 / f;
    const int OH = static_cast<int>(y.shape[2]), OW = static_cast<int>(y.shape[3]);

    // Weights: KCRS (NCHW) or KRSC (NHWC), in the activation dtype. Space-to-depth: tap (rr, s) of
    // the original is tap (rr / f, s / f) on channel ((rr % f) * f + s % f) * C0 + c (pad channels 0).
    std::vector<float> wf = w->constant->to_float_vector();
    std::vector<float> wl(static_cast<size_t>(K) * Cg * R * S, 0.f);
    if (nhwc_) {
      for (int k = 0; k < K0; ++k)
        for (int c = 0; c < C0; ++c)
          for (int rr = 0; rr < R0; ++rr)
            for (int s = 0; s < S0; ++s) {
              const int ch = ((rr % f) * f + s % f) * C0 + c;
              wl[((static_cast<size_t>(k) * R + rr / f) * S + s / f) * Cg + ch] = wf[((static_cast<size_t>(k) * C0 + c) * R0 + rr) * S0 + s];
            }
    } else {
      wl = wf;
    }
    if (half_) {
      std::vector<uint16_t> wh(wl.size());
      for (size_t i = 0; i < wl.size(); ++i) wh[i] = float_to_half(wl[i]);
      QYOLO_ASSIGN_OR_RETURN(weights_, DeviceBuffer::allocate(wh.size() * 2));
      QYOLO_RETURN_IF_ERROR(weights_.upload(wh.data(), wh.size() * 2));
    } else {
      QYOLO_ASSIGN_OR_RETURN(weights_, DeviceBuffer::allocate(wl.size() * 4));
      QYOLO_RETURN_IF_ERROR(weights_.upload(wl.data(), wl.size() * 4));
    }
    if (ctx.weight_bytes) *ctx.weight_bytes += weights_.size();
    if (b != nullptr) {
      std::vector<float> bf = b->constant->to_float_vector();
      if (bf.size() != static_cast<size_t>(K0)) return invalid_argument(node.describe() + ": bias size mismatch");
      bf.resize(static_cast<size_t>(K), 0.f);
      QYOLO_ASSIGN_OR_RETURN(bias_, DeviceBuffer::allocate(bf.size() * 4));
      QYOLO_RETURN_IF_ERROR(bias_.upload(bf.data(), bf.size() * 4));
      if (ctx.weight_bytes) *ctx.weight_bytes += bias_.size();
    }
    if (!a.output_multiplier.empty()) {  // padded channels: 1 (their values are 0 anyway)
      std::vector<float> m(a.output_multiplier.begin(), a.output_multiplier.end());
      m.resize(static_cast<size_t>(K), 1.f);
      QYOLO_ASSIGN_OR_RETURN(mult_, DeviceBuffer::allocate(m.size() * 4));
      QYOLO_RETURN_IF_ERROR(mult_.upload(m.data(), m.size() * 4));
      if (ctx.weight_bytes) *ctx.weight_bytes += mult_.size();
    }
    epi_ = {y.numel(), K, static_cast<int64_t>(OH) * OW, static_cast<Act>(static_cast<int>(a.activation)),
            a.activation_alpha, bias_.as<float>(), mult_.as<float>()};
    has_epilogue_ = b != nullptr || a.activation != FusedActivation::kNone || r != nullptr || mult_.get() != nullptr;

    // Descriptors.
    QYOLO_ASSIGN_OR_RETURN(xd_, make_tensor_desc());
    QYOLO_ASSIGN_OR_RETURN(yd_, make_tensor_desc());
    QYOLO_ASSIGN_OR_RETURN(wd_, make_filter_desc());
    QYOLO_ASSIGN_OR_RETURN(cd_, make_conv_desc());
    QYOLO_CUDA_CHECK(cudnnSetTensor4dDescriptor(xd_.get(), fmt, dt, N, C, H, W));
    QYOLO_CUDA_CHECK(cudnnSetTensor4dDescriptor(yd_.get(), fmt, dt, N, K, OH, OW));
    QYOLO_CUDA_CHECK(cudnnSetFilter4dDescriptor(wd_.get(), dt, fmt, K, Cg, R, S));
    QYOLO_CUDA_CHECK(cudnnSetConvolution2dDescriptor(
        cd_.get(), static_cast<int>(win.pads_begin[0]), static_cast<int>(win.pads_begin[1]),
        static_cast<int>(win.strides[0]), static_cast<int>(win.strides[1]), static_cast<int>(win.dilations[0]),
        static_cast<int>(win.dilations[1]), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    QYOLO_CUDA_CHECK(cudnnSetConvolutionGroupCount(cd_.get(), static_cast<int>(a.group)));
    const bool strict_fp32 = !half_ && !ctx.options->allow_tf32;
    const cudnnMathType_t math = half_ ? CUDNN_TENSOR_OP_MATH : (strict_fp32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH);
    QYOLO_CUDA_CHECK(cudnnSetConvolutionMathType(cd_.get(), math));
    int on = 0, oc = 0, oh = 0, ow = 0;
    QYOLO_CUDA_CHECK(cudnnGetConvolution2dForwardOutputDim(cd_.get(), xd_.get(), wd_.get(), &on, &oc, &oh, &ow));
    if (on != N || oc != K || oh != OH || ow != OW)
      return internal_error(node.describe() + ": cuDNN output dims differ from the inferred shape");

    // Algorithm.
    std::ostringstream key;
    key << (half_ ? "h" : "f") << (nhwc_ ? "nhwc" : "nchw") << ':' << N << 'x' << C << 'x' << H << 'x' << W << ':' << K
        << 'x' << Cg << 'x' << R << 'x' << S << ':' << win.pads_begin[0] << ',' << win.pads_begin[1] << ':'
        << win.strides[0] << ',' << win.strides[1] << ':' << win.dilations[0] << ',' << win.dilations[1] << ':'
        << a.group << ':' << static_cast<int>(math) << ':' << ctx.options->exhaustive_tuning;
    // Graph API first (fp16, or fp32 with TF32 allowed); the legacy API is the fallback.
    if (ctx.options->cudnn_graph && (half_ || ctx.options->allow_tf32)) {
      const std::string gkey = "graph:" + key.str();
      problem_.dtype = dt;
      problem_.nhwc = nhwc_;
      problem_.n = N, problem_.c = C, problem_.h = H, problem_.w = W, problem_.k = K, problem_.cg = Cg, problem_.r = R;
      problem_.s = S, problem_.oh = OH, problem_.ow = OW;
      problem_.pad[0] = win.pads_begin[0], problem_.pad[1] = win.pads_begin[1];
      problem_.stride[0] = win.strides[0], problem_.stride[1] = win.strides[1];
      problem_.dil[0] = win.dilations[0], problem_.dil[1] = win.dilations[1];
      key_ = key.str();
      out_pitch_ = K;
      auto plan = shared_plan(ctx, problem_, gkey, ctx.options->graph_max_plans);
      if (plan) graph_ = std::move(plan).value();
      else graph_error_ = plan.status().message();
      if (graph_) {
        ws_ = graph_->workspace_bytes();
        QYOLO_RETURN_IF_ERROR(try_fused_epilogue(ctx, a, b != nullptr, r != nullptr, key.str(), dt));
        const bool one_by_one = f == 1 && a.group == 1 && R == 1 && S == 1 && win.strides[0] == 1 &&
                                win.strides[1] == 1 && win.pads_begin[0] == 0 && win.pads_begin[1] == 0;
        if (one_by_one)
          QYOLO_RETURN_IF_ERROR(try_cublaslt(ctx, key.str(), static_cast<int64_t>(N) * H * W, K, C, r != nullptr));
        return Status::ok();
      }
    }
    auto& cache = *ctx.tune_cache;
    if (auto it = cache.find(key.str()); it != cache.end()) {
      algo_ = static_cast<cudnnConvolutionFwdAlgo_t>(it->second[0]);
      ws_ = static_cast<size_t>(it->second[1]);
      math_ = static_cast<cudnnMathType_t>(it->second[2]);
      tuned_ms_ = 0;
    } else {
      QYOLO_RETURN_IF_ERROR(choose_algo(ctx, x, y, strict_fp32, math).with_context(node.describe()));
      cache[key.str()] = {static_cast<int64_t>(algo_), static_cast<int64_t>(ws_), static_cast<int64_t>(math_)};
    }
    QYOLO_CUDA_CHECK(cudnnSetConvolutionMathType(cd_.get(), math_));
    return Status::ok();
  }

  size_t workspace_bytes() const override { return ws_; }
  float tuned_ms() const override {
    // The conv alone (the epilogue pass comes on top), or the conv with its epilogue fused.
    if (lt_) return lt_->tuned_ms();
    if (fused_) return fused_->tuned_ms();
    if (graph_) return graph_->tuned_ms();
    return tuned_ms_;
  }

  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in, std::span<void* const> out) override {
    const float one = 1.f, zero = 0.f;
    if (ws_ > ctx.workspace_bytes) return internal_error("conv workspace too small");
    if (lt_) {  // the GEMM; the epilogue pass below adds bias, activation and residual
      QYOLO_RETURN_IF_ERROR(lt_->execute(ctx.cublaslt, in[0], weights_.get(), out[0], ctx.workspace, ctx.stream));
    } else if (fused_) {  // bias, activation and residual inside the cuDNN plan
      return fused_->execute(ctx.cudnn, in[0], weights_.get(), out[0], ctx.workspace, bias_.get(),
                             in.size() > 3 ? in[3] : nullptr, nullptr, nullptr, mult_.get());
    } else if (graph_) {
      QYOLO_RETURN_IF_ERROR(graph_->execute(ctx.cudnn, in[0], weights_.get(), out[0], ctx.workspace));
    } else {
      QYOLO_CUDA_CHECK(cudnnConvolutionForward(ctx.cudnn, &one, xd_.get(), in[0], wd_.get(), weights_.get(), cd_.get(),
                                               algo_, ctx.workspace, ws_, &zero, yd_.get(), out[0]));
    }
    if (!has_epilogue_) return Status::ok();
    const void* r = in.size() > 3 ? in[3] : nullptr;
    if (half_) return launch_epilogue<__half>(epi_, nhwc_, out[0], r, ctx.stream, ctx.programmatic);
    return launch_epilogue<float>(epi_, nhwc_, out[0], r, ctx.stream, ctx.programmatic);
  }

  // Concat in place: the cuDNN graph is planned again with the output's pixel pitch (its own engine
  // search and tactic key). Only plans that write the final value themselves qualify: the fused
  // epilogue, or a plain plan with no epilogue pass after it.
  bool set_output_pitch(PrepareContext& ctx, int index, int64_t pitch) override {
    if (index != 0 || !half_ || !nhwc_ || pitch < problem_.k || pitch % 8 != 0) return false;
    if (pitch == out_pitch_) return true;
    // A conv with an epilogue writes into the concat through the fused plan, even where the plain
    // plan + our epilogue pass (or cuBLASLt + the pass) timed faster alone: concat in place saves
    // the concat's copy and its launch, more than the fused plan loses. The cuBLASLt GEMM writes
    // contiguous rows only.
    const bool fused = fused_ || (has_epilogue_ && !fused_key_.empty());  // fused_key_: try_fused_epilogue's problem
    if (!fused && !(graph_ && !has_epilogue_)) return false;
    GraphConvProblem gp = fused ? fused_problem_ : problem_;
    gp.y_pitch = pitch == problem_.k ? 0 : pitch;
    const std::string key = (fused ? fused_key_ : "graph:" + key_) + ":pitch" + std::to_string(pitch);
    auto plan = shared_plan(ctx, gp, key, fused ? std::min(ctx.options->graph_max_plans, 4) : ctx.options->graph_max_plans);
    if (!plan) return false;
    lt_.reset();
    std::unique_ptr<GraphConvPlan>& slot = fused ? fused_ : graph_;
    slot = std::move(plan).value();
    ws_ = slot->workspace_bytes();
    out_pitch_ = pitch;
    return true;
  }

  std::string info() const override {
    const std::string s2d = (s2d_ > 1 ? " s2d" : "") + std::string(out_pitch_ != problem_.k ? " pitched" : "");
    if (lt_) return lt_->info() + (has_epilogue_ ? " +epilogue pass" : "");
    if (fused_) return fused_->info() + " +fused epilogue" + s2d;
    if (graph_) return graph_->info() + s2d;
    std::ostringstream os;
    if (!graph_error_.empty()) os << "graph API: " << graph_error_ << "; legacy ";
    os << algo_name(algo_) << (math_ == CUDNN_TENSOR_OP_MATH ? " tensor_op" : math_ == CUDNN_FMA_MATH ? " fma" : " default")
       << " ws=" << ws_ / 1024 << "KiB";
    if (tuned_ms_ > 0) os << " " << tuned_ms_ << "ms";
    return os.str();
  }

 private:
  // The graph plan for `gp`, shared with identical convs of this build (object cache) and stored as
  // a tactic under `key` (heuristic rank, engine id) for engine files.
  Result<std::unique_ptr<GraphConvPlan>> shared_plan(PrepareContext& ctx, const GraphConvProblem& gp,
                                                     const std::string& key, int max_plans) {
    auto& objs = *ctx.object_cache;
    if (auto it = objs.find(key); it != objs.end()) {
      if (!it->second) return unsupported("no cuDNN graph engine for this convolution (" + key + ")");
      return static_cast<const GraphConvPlan*>(it->second.get())->share();
    }
    ensure_tuning_workspace(ctx);
    GraphConvPlan::Tactic tactic;
    auto& tc = *ctx.tune_cache;
    if (auto it = tc.find(key); it != tc.end() && it->second.size() == 2) tactic = {it->second[0], it->second[1]};
    auto plan = GraphConvPlan::create(ctx.cudnn, ctx.stream, gp, weights_.get(), ctx.options->workspace_limit,
                                      ctx.tuning_workspace, max_plans, ctx.options->allow_tf32, &tactic);
    if (!plan) {
      objs[key] = nullptr;
      return plan.status();
    }
    tc[key] = {tactic.heuristic_index, tactic.engine};
    objs[key] = std::shared_ptr<void>((*plan)->share().release(), [](void* p) { delete static_cast<GraphConvPlan*>(p); });
    return plan;
  }

  // fp16 NHWC with an epilogue cuDNN can express (bias, ReLU/SiLU/sigmoid, residual): a second
  // graph with the epilogue fused (runtime-compiled engines), kept when it times faster than the
  // plain plan plus our epilogue pass. The choice is a tactic ("graphfused:" key: heuristic rank,
  // engine id, 1 = fused).
  Status try_fused_epilogue(PrepareContext& ctx, const ConvAttrs& a, bool has_bias, bool has_res, const std::string& key,
                            cudnnDataType_t dt) {
    const int mode = ctx.options->cudnn_fused_epilogue;
    if (mode == 0 || !half_ || !nhwc_ || !has_epilogue_) return Status::ok();
    const auto graph_act = graph_activation(a.activation);
    if (!graph_act) return Status::ok();
    const GraphConvProblem::Act act = *graph_act;
    std::ostringstream fk;
    const bool mult = mult_.get() != nullptr;
    fk << "graphfused:" << key << ":b" << has_bias << "r" << has_res << "a" << static_cast<int>(act) << (mult ? "m1" : "");
    fused_key_ = fk.str();
    fused_problem_ = problem_;
    fused_problem_.dtype = dt;
    fused_problem_.fused = true;
    fused_problem_.bias = has_bias;
    fused_problem_.residual = has_res;
    fused_problem_.act = act;
    fused_problem_.multiplier = mult;
    auto& objs = *ctx.object_cache;
    auto& tc = *ctx.tune_cache;
    if (auto it = objs.find(fk.str()); it != objs.end()) {
      if (it->second) fused_ = static_cast<const GraphConvPlan*>(it->second.get())->share();
    } else {
      GraphConvPlan::Tactic tactic;
      int64_t use = -1;
      if (auto it = tc.find(fk.str()); it != tc.end() && it->second.size() == 3) {
        tactic = {it->second[0], it->second[1]};
        use = it->second[2];
      }
      std::unique_ptr<GraphConvPlan> plan;
      if (use != 0) {
        const GraphConvProblem& gp = fused_problem_;
        auto made = GraphConvPlan::create(ctx.cudnn, ctx.stream, gp, weights_.get(), ctx.options->workspace_limit,
                                          ctx.tuning_workspace, std::min(ctx.options->graph_max_plans, 4),
                                          ctx.options->allow_tf32, &tactic);
        if (made) plan = std::move(made).value();
      }
      if (plan && mode == 2) {
        use = 1;
      } else if (plan && use < 0) {
        // Timed now: the plain plan's time plus our epilogue pass, against the fused plan's.
        QYOLO_ASSIGN_OR_RETURN(float epi_ms, time_epilogue(ctx, has_res));
        use = plan->tuned_ms() > 0 && graph_->tuned_ms() > 0 && plan->tuned_ms() < graph_->tuned_ms() + epi_ms ? 1 : 0;
      }
      if (plan) tc[fk.str()] = {tactic.heuristic_index, tactic.engine, use};
      if (plan && use == 1) {
        fused_ = std::move(plan);
        objs[fk.str()] = std::shared_ptr<void>(fused_->share().release(), [](void* q) { delete static_cast<GraphConvPlan*>(q); });
      } else {
        objs[fk.str()] = nullptr;
      }
    }
    if (fused_) ws_ = fused_->workspace_bytes();
    return Status::ok();
  }

  // cuBLASLt as a third tactic for 1x1 stride-1 convs (one GEMM over the pixels), kept where it
  // times faster than the cuDNN choice, each with the epilogue it needs (cuBLASLt has no SiLU: our
  // pass). The choice is a tactic ("lt:" key: 1 = use, heuristic rank).
  Status try_cublaslt(PrepareContext& ctx, const std::string& key, int64_t pixels, int k, int c, bool has_res) {
    const int mode = ctx.options->cublaslt_convs;
    if (mode == 0 || !half_ || !nhwc_ || ctx.cublaslt == nullptr) return Status::ok();
    const std::string lk = "lt:" + key;
    auto& tc = *ctx.tune_cache;
    int64_t use = -1, algo = -1;
    if (auto it = tc.find(lk); it != tc.end() && it->second.size() == 2) use = it->second[0], algo = it->second[1];
    if (use == 0) return Status::ok();
    const float cudnn_ms = fused_ ? fused_->tuned_ms() : graph_->tuned_ms();
    if (use < 0 && mode == 1 && cudnn_ms <= 0.f) return Status::ok();  // cuDNN reused untimed: nothing to compare
    ensure_tuning_workspace(ctx);
    auto plan = LtGemmPlan::create(ctx.cublaslt, ctx.stream, LtGemmProblem{pixels, k, c, 0}, weights_.get(),
                                   ctx.options->workspace_limit, ctx.tuning_workspace, &algo);
    if (!plan) {
      tc[lk] = {0, -1};
      return Status::ok();
    }
    if (use < 0) {
      float epi_ms = 0.f;
      if (has_epilogue_) {
        QYOLO_ASSIGN_OR_RETURN(epi_ms, time_epilogue(ctx, has_res));
      }
      const float cudnn_total = cudnn_ms + (fused_ ? 0.f : epi_ms);
      use = mode == 2 || (*plan)->tuned_ms() + epi_ms < cudnn_total ? 1 : 0;
    }
    tc[lk] = {use, algo};
    if (use == 1) {
      lt_ = std::move(plan).value();
      ws_ = lt_->workspace_bytes();
    }
    return Status::ok();
  }

  // Mean time of our epilogue pass over this conv's output (scratch buffers).
  Result<float> time_epilogue(PrepareContext& ctx, bool has_res) {
    const size_t bytes = static_cast<size_t>(epi_.n) * 2;
    QYOLO_ASSIGN_OR_RETURN(auto yb, DeviceBuffer::allocate(bytes));
    DeviceBuffer rb;
    if (has_res) {
      QYOLO_ASSIGN_OR_RETURN(rb, DeviceBuffer::allocate(bytes));
      QYOLO_CUDA_CHECK(cudaMemsetAsync(rb.get(), 0, bytes, ctx.stream));
    }
    QYOLO_CUDA_CHECK(cudaMemsetAsync(yb.get(), 0, bytes, ctx.stream));
    return time_launches(ctx.stream, 1, 5, [&] { return launch_epilogue<__half>(epi_, true, yb.get(), rb.get(), ctx.stream, false); });
  }

  Status choose_algo(PrepareContext& ctx, const TensorInfo& x, const TensorInfo& y, bool strict_fp32,
                     cudnnMathType_t math) {
    const size_t limit = ctx.options->workspace_limit;
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int returned = 0;
    if (ctx.options->exhaustive_tuning) {
      ensure_tuning_workspace(ctx);
      QYOLO_ASSIGN_OR_RETURN(auto xb, DeviceBuffer::allocate(x.nbytes()));
      QYOLO_ASSIGN_OR_RETURN(auto yb, DeviceBuffer::allocate(y.nbytes()));
      // Finite data: NaN/denormal garbage could skew the timings.
      QYOLO_CUDA_CHECK(cudaMemsetAsync(xb.get(), 0x11, x.nbytes(), ctx.stream));
      QYOLO_CUDA_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
          ctx.cudnn, xd_.get(), xb.get(), wd_.get(), weights_.get(), cd_.get(), yd_.get(), yb.get(),
          CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf, ctx.tuning_workspace->get(), ctx.tuning_workspace->size()));
      QYOLO_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    } else {
      QYOLO_CUDA_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(ctx.cudnn, xd_.get(), wd_.get(), cd_.get(), yd_.get(),
                                                              CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf));
    }
    for (int i = 0; i < returned; ++i) {
      const auto& p = perf[i];
      if (p.status != CUDNN_STATUS_SUCCESS || p.memory > limit) continue;
      // True fp32: FMA kernels only (DEFAULT_MATH may pick TF32 tensor cores on sm_80+; the
      // descriptor is pinned to FMA below, so a DEFAULT result runs its FMA variant).
      if (strict_fp32 && p.mathType != CUDNN_FMA_MATH && p.mathType != CUDNN_DEFAULT_MATH) continue;
      if (!ctx.options->exhaustive_tuning) {
        // The heuristic does not check memory; ask for the real size.
        size_t need = 0;
        QYOLO_CUDA_CHECK(cudnnSetConvolutionMathType(cd_.get(), p.mathType));
        if (cudnnGetConvolutionForwardWorkspaceSize(ctx.cudnn, xd_.get(), wd_.get(), cd_.get(), yd_.get(), p.algo,
                                                    &need) != CUDNN_STATUS_SUCCESS ||
            need > limit)
          continue;
        algo_ = p.algo;
        ws_ = need;
      } else {
        algo_ = p.algo;
        ws_ = p.memory;
      }
      math_ = strict_fp32 ? CUDNN_FMA_MATH : p.mathType;
      tuned_ms_ = p.time;
      return Status::ok();
    }
    (void)math;
    return unsupported("no cuDNN convolution algorithm fits (" + std::to_string(returned) + " candidates, workspace limit " +
                       std::to_string(limit) + " bytes" + (strict_fp32 ? ", strict fp32" : "") + ")");
  }

  bool half_ = false, nhwc_ = false, has_epilogue_ = false;
  DeviceBuffer weights_, bias_, mult_;
  TensorDesc xd_, yd_;
  FilterDesc wd_;
  ConvDesc cd_;
  cudnnConvolutionFwdAlgo_t algo_ = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  cudnnMathType_t math_ = CUDNN_DEFAULT_MATH;
  size_t ws_ = 0;
  float tuned_ms_ = 0;
  EpilogueParams epi_{};
  std::unique_ptr<GraphConvPlan> graph_, fused_;
  std::unique_ptr<LtGemmPlan> lt_;
  int s2d_ = 1;
  GraphConvProblem problem_, fused_problem_;
  std::string key_, fused_key_;  // tactic keys of the plain and the fused plans
  int64_t out_pitch_ = 0;        // elements between output pixels (NHWC)
  std::string graph_error_;
};
}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_conv2d(const Node&) { return std::unique_ptr<CudaKernel>(new ConvKernel()); }

}  // namespace qyolo::cuda
