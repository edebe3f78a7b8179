// ConvTranspose (N-D, groups, dilations, pads, output_padding / output_shape as planned by
// plan_conv_transpose) on plain float/half values, by gathering: a thread per output element sums
// x * w over the input channels of its group and the kernel taps whose input position
// (out + pad - tap * dilation) / stride is whole and inside the input. Plain loops in fp32; detector
// heads use ConvTranspose rarely and small (a segmentation proto upsample).
#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/cuda_op_factories.h"
#include "ir/ops/conv_transpose.h"

namespace qyolo::cuda {

namespace {

constexpr int kMaxSpatial = 3;

struct ConvTransposeParams {
  int sp = 0;
  int64_t n = 0, cin = 0, cout = 0, cin_g = 0, cout_g = 0;
  int64_t in_dims[kMaxSpatial] = {}, out_dims[kMaxSpatial] = {}, kernel[kMaxSpatial] = {};
  int64_t strides[kMaxSpatial] = {}, dilations[kMaxSpatial] = {}, pad_begin[kMaxSpatial] = {};
  int64_t in_sp = 1, out_sp = 1, k_sp = 1, numel = 0;
};

template <typename T>
__global__ void conv_transpose_kernel(ConvTransposeParams p, T* __restrict__ y, const T* __restrict__ x,
                                      const T* __restrict__ w, const T* __restrict__ b) {
  await_producers();
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < p.numel;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t o = e % p.out_sp;
    const int64_t nc = e / p.out_sp, oc = nc % p.cout, n = nc / p.cout;
    int64_t opos[kMaxSpatial];
    for (int d = p.sp - 1; d >= 0; --d) {
      opos[d] = o % p.out_dims[d];
      o /= p.out_dims[d];
    }
    const int64_t g = oc / p.cout_g, co = oc - g * p.cout_g;
    float acc = b != nullptr ? to_f(b[oc]) : 0.f;
    for (int64_t k = 0; k < p.k_sp; ++k) {
      int64_t rem = k, in_off = 0, in_stride = 1;
      bool inside = true;
      for (int d = p.sp - 1; d >= 0 && inside; --d) {
        const int64_t kp = rem % p.kernel[d];
        rem /= p.kernel[d];
        const int64_t t = opos[d] + p.pad_begin[d] - kp * p.dilations[d];
        if (t < 0 || t % p.strides[d] != 0 || t / p.strides[d] >= p.in_dims[d]) {
          inside = false;
        } else {
          in_off += (t / p.strides[d]) * in_stride;
          in_stride *= p.in_dims[d];
        }
      }
      if (!inside) continue;
      for (int64_t cj = 0; cj < p.cin_g; ++cj) {
        const int64_t ci = g * p.cin_g + cj;
        acc = fmaf(to_f(x[(n * p.cin + ci) * p.in_sp + in_off]), to_f(w[(ci * p.cout_g + co) * p.k_sp + k]),
                   acc);
      }
    }
    y[e] = from_f<T>(acc);
  }
}

class ConvTransposeKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    const Shape& x = in[0]->shape;
    QYOLO_ASSIGN_OR_RETURN(ConvTransposePlan plan, plan_conv_transpose(node, x, in[1]->shape));
    for (size_t i = 0; i < in.size(); ++i)
      if (in[i] && (in[i]->dtype != out[0].dtype || in[i]->layout != Layout::kPlain))
        return internal_error(node.describe() + ": conv_transpose expects plain inputs of the output's type");
    if (out[0].layout != Layout::kPlain || out[0].shape != plan.out)
      return internal_error(node.describe() + ": conv_transpose output mismatch");
    const size_t sp = x.size() - 2;
    if (sp > static_cast<size_t>(kMaxSpatial))
      return unsupported(node.describe() + ": the CUDA ConvTranspose takes at most " +
                         std::to_string(kMaxSpatial) + " spatial dims");
    p_.sp = static_cast<int>(sp);
    p_.n = x[0];
    p_.cin = x[1];
    p_.cout = plan.out[1];
    p_.cin_g = p_.cin / plan.group;
    p_.cout_g = p_.cout / plan.group;
    for (size_t d = 0; d < sp; ++d) {
      p_.in_dims[d] = x[d + 2];
      p_.out_dims[d] = plan.out[d + 2];
      p_.kernel[d] = plan.kernel[d];
      p_.strides[d] = plan.strides[d];
      p_.dilations[d] = plan.dilations[d];
      p_.pad_begin[d] = plan.pad_begin[d];
      p_.in_sp *= x[d + 2];
      p_.out_sp *= plan.out[d + 2];
      p_.k_sp *= plan.kernel[d];
    }
    p_.numel = out[0].numel();
    has_bias_ = in.size() > 2 && in[2] != nullptr;
    half_ = out[0].dtype == DataType::kFloat16;
    return Status::ok();
  }

  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in,
                 std::span<void* const> out) override {
    if (p_.numel == 0) return Status::ok();
    return half_ ? launch<__half>(ctx, in, out[0]) : launch<float>(ctx, in, out[0]);
  }

 private:
  template <typename T>
  Status launch(const LaunchContext& ctx, std::span<const void* const> in, void* y) {
    constexpr int kThreads = 256;
    const T* bias = has_bias_ ? static_cast<const T*>(in[2]) : nullptr;
    launch_kernel(conv_transpose_kernel<T>, grid_for(p_.numel, kThreads), kThreads, 0, ctx.stream,
                  ctx.programmatic, p_, static_cast<T*>(y), static_cast<const T*>(in[0]),
                  static_cast<const T*>(in[1]), bias);
    QYOLO_CUDA_CHECK_LAUNCH("conv_transpose kernel");
    return Status::ok();
  }

  ConvTransposeParams p_;
  bool has_bias_ = false, half_ = false;
};

}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_conv_transpose(const Node&) {
  return std::unique_ptr<CudaKernel>(new ConvTransposeKernel());
}

}  // namespace qyolo::cuda
