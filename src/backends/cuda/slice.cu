// Slice (ONNX opset 1-13 semantics: attributes before opset 10, constant inputs after).
#include <optional>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/nd_copy.h"
#include "ir/ops/slice.h"

namespace qyolo::cuda {

namespace {
class SliceKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    const TensorInfo& x = *in[0];
    auto ints = [&](size_t i) -> std::optional<std::vector<int64_t>> {
      if (i < in.size() && in[i] && in[i]->constant && in[i]->constant->numel() > 0)
        return in[i]->constant->to_int64_vector();
      return std::nullopt;
    };
    QYOLO_ASSIGN_OR_RETURN(SliceAttrs a, SliceAttrs::parse(node, x.shape, ints(1), ints(2), ints(3), ints(4)));
    if (a.out_shape != out[0].shape)
      return internal_error(node.describe() + ": slice shape " + shape_str(a.out_shape) + " differs from the inferred " +
                            shape_str(out[0].shape));
    const auto xs = x.strides();
    std::vector<int64_t> src(xs.size());
    int64_t offset = 0;
    for (size_t d = 0; d < xs.size(); ++d) {
      if (a.out_shape[d] > 0) offset += a.start[d] * xs[d];
      src[d] = xs[d] * a.step[d];
    }
    QYOLO_ASSIGN_OR_RETURN(copy_, make_nd_copy(out[0].shape, out[0].strides(), 0, out[0].dtype, src, offset, x.dtype));
    return Status::ok();
  }
  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in, std::span<void* const> out) override {
    return enqueue_nd_copy(copy_, in[0], out[0], ctx.stream, ctx.programmatic);
  }

 private:
  NdCopy copy_;
};
}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_slice(const Node&) { return std::unique_ptr<CudaKernel>(new SliceKernel()); }

}  // namespace qyolo::cuda
