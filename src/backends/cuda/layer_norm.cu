// LayerNormalization on plain float/half values: a block per row of `inner` normalised elements,
// mean and then variance of (x - mean) by block sums in float (two passes, as the CPU kernel does in
// double), y = (x - mean) / sqrt(var + epsilon) * scale + bias; Mean and InvStdDev written when
// they are read.
#include <algorithm>

#include "backends/cuda/cuda_op_factories.h"
#include "backends/cuda/reduce_util.cuh"
#include "ir/op_registry.h"

namespace qyolo::cuda {

namespace {

constexpr int kLnThreads = 256;

template <typename T>
__global__ void layer_norm_kernel(T* __restrict__ y, T* __restrict__ mean_out, T* __restrict__ inv_out,
                                  const T* __restrict__ x, const T* __restrict__ scale,
                                  const T* __restrict__ bias, int64_t rows, int64_t inner, bool scale_one,
                                  bool bias_one, float epsilon) {
  await_producers();
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * inner;
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) s += to_f(xr[i]);
    const float mean = block_sum(s, scratch) / static_cast<float>(inner);
    float sq = 0.f;
    for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) {
      const float d = to_f(xr[i]) - mean;
      sq += d * d;
    }
    const float inv = 1.f / sqrtf(block_sum(sq, scratch) / static_cast<float>(inner) + epsilon);
    T* yr = y + r * inner;
    for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) {
      float v = (to_f(xr[i]) - mean) * inv * to_f(scale[scale_one ? 0 : i]);
      if (bias != nullptr) v += to_f(bias[bias_one ? 0 : i]);
      yr[i] = from_f<T>(v);
    }
    if (threadIdx.x == 0) {
      if (mean_out != nullptr) mean_out[r] = from_f<T>(mean);
      if (inv_out != nullptr) inv_out[r] = from_f<T>(inv);
    }
  }
}

class LayerNormKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    const Shape& s = in[0]->shape;
    QYOLO_ASSIGN_OR_RETURN(int64_t axis_attr, node.attr_int("axis", -1));
    QYOLO_ASSIGN_OR_RETURN(epsilon_, node.attr_float("epsilon", 1e-5f));
    QYOLO_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(axis_attr, static_cast<int64_t>(s.size())));
    for (size_t i = 0; i < in.size(); ++i)
      if (in[i] && (in[i]->dtype != out[0].dtype || in[i]->layout != Layout::kPlain))
        return internal_error(node.describe() + ": layer_norm expects plain inputs of the output's type");
    for (const TensorInfo& o : out)
      if (o.dtype != out[0].dtype || o.layout != Layout::kPlain)
        return internal_error(node.describe() + ": layer_norm writes plain outputs of one type");
    rows_ = inner_ = 1;
    for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d)
      (d < axis ? rows_ : inner_) *= s[static_cast<size_t>(d)];
    scale_one_ = in[1]->numel() == 1;
    has_bias_ = in.size() > 2 && in[2] != nullptr;
    bias_one_ = has_bias_ && in[2]->numel() == 1;
    half_ = out[0].dtype == DataType::kFloat16;
    return Status::ok();
  }

  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in,
                 std::span<void* const> out) override {
    if (rows_ == 0 || inner_ == 0) return Status::ok();
    return half_ ? launch<__half>(ctx, in, out) : launch<float>(ctx, in, out);
  }

 private:
  template <typename T>
  Status launch(const LaunchContext& ctx, std::span<const void* const> in, std::span<void* const> out) {
    T* mean = out.size() > 1 ? static_cast<T*>(out[1]) : nullptr;
    T* inv = out.size() > 2 ? static_cast<T*>(out[2]) : nullptr;
    const T* bias = has_bias_ ? static_cast<const T*>(in[2]) : nullptr;
    const unsigned grid = static_cast<unsigned>(std::min<int64_t>(rows_, 65535 * 8));
    launch_kernel(layer_norm_kernel<T>, grid, kLnThreads, 0, ctx.stream, ctx.programmatic,
                  static_cast<T*>(out[0]), mean, inv, static_cast<const T*>(in[0]),
                  static_cast<const T*>(in[1]), bias, rows_, inner_, scale_one_, bias_one_, epsilon_);
    QYOLO_CUDA_CHECK_LAUNCH("layer_norm kernel");
    return Status::ok();
  }

  int64_t rows_ = 1, inner_ = 1;
  float epsilon_ = 1e-5f;
  bool scale_one_ = false, has_bias_ = false, bias_one_ = false, half_ = false;
};

}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_layer_norm(const Node&) {
  return std::unique_ptr<CudaKernel>(new LayerNormKernel());
}

}  // namespace qyolo::cuda
