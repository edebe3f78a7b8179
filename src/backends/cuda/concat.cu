#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/nd_copy.h"
#include "ir/ops/concat.h"

namespace qyolo::cuda {

namespace {
class ConcatKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    const TensorInfo& y = out[0];
    std::vector<Shape> shapes;
    for (const TensorInfo* x : in) {
      if (x == nullptr) return invalid_argument(node.describe() + ": empty input name");
      shapes.push_back(x->shape);
    }
    QYOLO_ASSIGN_OR_RETURN(ConcatAttrs a, ConcatAttrs::parse(node, shapes));
    const int64_t axis = a.axis;
    const auto ys = y.strides();
    int64_t off = 0;
    for (const TensorInfo* x : in) {
      if (x == nullptr) return invalid_argument(node.describe() + ": empty input name");
      QYOLO_ASSIGN_OR_RETURN(auto c, make_nd_copy(x->shape, ys, off * ys[static_cast<size_t>(axis)], y.dtype, x->strides(), 0, x->dtype));
      copies_.push_back(c);
      off += x->shape[static_cast<size_t>(axis)];
    }
    if (off != y.shape[static_cast<size_t>(axis)])
      return internal_error(node.describe() + ": input sizes do not add up to the output's axis");
    return Status::ok();
  }
  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in, std::span<void* const> out) override {
    // A null input is already in place: its producer wrote into its slice (concat in place).
    for (size_t k = 0; k < copies_.size(); ++k)
      if (in[k] != nullptr) QYOLO_RETURN_IF_ERROR(enqueue_nd_copy(copies_[k], in[k], out[0], ctx.stream, ctx.programmatic));
    return Status::ok();
  }

 private:
  std::vector<NdCopy> copies_;
};
}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_concat(const Node&) { return std::unique_ptr<CudaKernel>(new ConcatKernel()); }

}  // namespace qyolo::cuda
