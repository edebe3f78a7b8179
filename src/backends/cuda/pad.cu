// Pad (constant / edge / reflect / wrap; negative pads crop) on plain float/half values: a thread per
// output element maps its index per dim to the input element, or writes the constant. Pads, the
// constant value and axes are constants read at build (the attribute before opset 11).
#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/cuda_op_factories.h"
#include "backends/cuda/nd.h"
#include "ir/ops/pad.h"

namespace qyolo::cuda {

namespace {

struct PadParams {
  int mode = 0;  // PadMode
  int rank = 0;
  int64_t out_dims[kMaxNd] = {}, in_dims[kMaxNd] = {}, in_strides[kMaxNd] = {}, begin[kMaxNd] = {};
  int64_t numel = 0;
  float value = 0.f;
};

template <typename T>
__global__ void pad_kernel(PadParams p, T* __restrict__ y, const T* __restrict__ x) {
  await_producers();
  const PadMode mode = static_cast<PadMode>(p.mode);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t idx = i, off = 0;
    bool inside = true;
    for (int d = p.rank - 1; d >= 0; --d) {
      const int64_t q = idx / p.out_dims[d];
      int64_t s = idx - q * p.out_dims[d] - p.begin[d];
      idx = q;
      const int64_t len = p.in_dims[d];
      if (s < 0 || s >= len) {
        if (mode == PadMode::kConstant) {
          inside = false;
          break;
        }
        if (mode == PadMode::kEdge)
          s = s < 0 ? 0 : len - 1;
        else if (mode == PadMode::kReflect)
          s = s < 0 ? -s : 2 * (len - 1) - s;
        else
          s = ((s % len) + len) % len;
      }
      off += s * p.in_strides[d];
    }
    y[i] = inside ? x[off] : from_f<T>(p.value);
  }
}

class PadKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    // The pads' form for the opset was validated by infer_pad: an attribute, or constant inputs.
    std::vector<int64_t> pads, axes;
    if (node.has_attr("pads")) {
      QYOLO_ASSIGN_OR_RETURN(pads, node.attr_ints("pads"));
      QYOLO_ASSIGN_OR_RETURN(p_.value, node.attr_float("value", 0.f));
    } else {
      if (in.size() < 2 || in[1] == nullptr || in[1]->constant == nullptr)
        return unsupported(node.describe() + ": pads must be constant");
      pads = in[1]->constant->to_int64_vector();
      if (in.size() > 2 && in[2] != nullptr) {
        if (in[2]->constant == nullptr || in[2]->constant->numel() < 1)
          return unsupported(node.describe() + ": constant_value must be a constant");
        p_.value = in[2]->constant->to_float_vector()[0];
      }
      if (in.size() > 3 && in[3] != nullptr) {
        if (in[3]->constant == nullptr) return unsupported(node.describe() + ": axes must be constant");
        axes = in[3]->constant->to_int64_vector();
      }
    }
    QYOLO_ASSIGN_OR_RETURN(PadPlan plan, plan_pad(node, in[0]->shape, pads, axes));
    if (in[0]->dtype != out[0].dtype || in[0]->layout != Layout::kPlain || out[0].layout != Layout::kPlain)
      return internal_error(node.describe() + ": pad expects plain inputs of the output's type");
    if (plan.out.size() > static_cast<size_t>(kMaxNd))
      return unsupported(node.describe() + ": the CUDA Pad takes at most " + std::to_string(kMaxNd) +
                         " dims");
    p_.mode = static_cast<int>(plan.mode);
    p_.rank = static_cast<int>(plan.out.size());
    const std::vector<int64_t> st = plain_strides(in[0]->shape);
    for (size_t d = 0; d < plan.out.size(); ++d) {
      p_.out_dims[d] = plan.out[d];
      p_.in_dims[d] = in[0]->shape[d];
      p_.in_strides[d] = st[d];
      p_.begin[d] = plan.begin[d];
    }
    p_.numel = out[0].numel();
    half_ = out[0].dtype == DataType::kFloat16;
    return Status::ok();
  }

  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in,
                 std::span<void* const> out) override {
    if (p_.numel == 0) return Status::ok();
    constexpr int kThreads = 256;
    const unsigned grid = grid_for(p_.numel, kThreads);
    if (half_)
      launch_kernel(pad_kernel<__half>, grid, kThreads, 0, ctx.stream, ctx.programmatic, p_,
                    static_cast<__half*>(out[0]), static_cast<const __half*>(in[0]));
    else
      launch_kernel(pad_kernel<float>, grid, kThreads, 0, ctx.stream, ctx.programmatic, p_,
                    static_cast<float*>(out[0]), static_cast<const float*>(in[0]));
    QYOLO_CUDA_CHECK_LAUNCH("pad kernel");
    return Status::ok();
  }

 private:
  PadParams p_;
  bool half_ = false;
};

}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_pad(const Node&) {
  return std::unique_ptr<CudaKernel>(new PadKernel());
}

}  // namespace qyolo::cuda
