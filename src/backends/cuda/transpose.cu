#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/nd_copy.h"
#include "ir/ops/transpose.h"

namespace qyolo::cuda {

namespace {
class TransposeKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    const TensorInfo& x = *in[0];
    QYOLO_ASSIGN_OR_RETURN(TransposeAttrs a, TransposeAttrs::parse(node, x.shape));
    const auto xs = x.strides();
    std::vector<int64_t> src(a.perm.size());
    for (size_t d = 0; d < a.perm.size(); ++d) src[d] = xs[static_cast<size_t>(a.perm[d])];
    QYOLO_ASSIGN_OR_RETURN(copy_, make_nd_copy(out[0].shape, out[0].strides(), 0, out[0].dtype, src, 0, x.dtype));
    return Status::ok();
  }
  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in, std::span<void* const> out) override {
    return enqueue_nd_copy(copy_, in[0], out[0], ctx.stream, ctx.programmatic);
  }

 private:
  NdCopy copy_;
};
}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_transpose(const Node&) {
  return std::unique_ptr<CudaKernel>(new TransposeKernel());
}

}  // namespace qyolo::cuda
