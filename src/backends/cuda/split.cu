#include <optional>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/nd_copy.h"
#include "ir/ops/split.h"

namespace qyolo::cuda {

namespace {
class SplitKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    const TensorInfo& x = *in[0];
    std::optional<std::vector<int64_t>> split_input;
    if (in.size() > 1 && in[1] && in[1]->constant) split_input = in[1]->constant->to_int64_vector();
    QYOLO_ASSIGN_OR_RETURN(SplitAttrs a, SplitAttrs::parse(node, x.shape, split_input));
    const int64_t axis = a.axis;
    const auto xs = x.strides();
    int64_t off = 0;
    for (const auto& o : out) {
      QYOLO_ASSIGN_OR_RETURN(auto c, make_nd_copy(o.shape, o.strides(), 0, o.dtype, xs, off * xs[static_cast<size_t>(axis)], x.dtype));
      copies_.push_back(c);
      off += o.shape[static_cast<size_t>(axis)];
    }
    if (off != x.shape[static_cast<size_t>(axis)])
      return internal_error(node.describe() + ": output sizes do not add up to the input's axis");
    return Status::ok();
  }
  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in, std::span<void* const> out) override {
    for (size_t k = 0; k < copies_.size(); ++k) QYOLO_RETURN_IF_ERROR(enqueue_nd_copy(copies_[k], in[0], out[k], ctx.stream, ctx.programmatic));
    return Status::ok();
  }

 private:
  std::vector<NdCopy> copies_;
};
}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_split(const Node&) { return std::unique_ptr<CudaKernel>(new SplitKernel()); }

}  // namespace qyolo::cuda
