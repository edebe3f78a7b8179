// Reshape, Flatten, Squeeze, Unsqueeze, Identity: the output aliases the input's (plain, row-major)
// storage; the executor never launches anything for them.
#include "backends/cuda/cuda_kernel.h"

namespace qyolo::cuda {

namespace {
class ReshapeKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    if (in.empty() || in[0] == nullptr) return invalid_argument(node.describe() + ": input 0 is required");
    if (in[0]->numel() != out[0].numel())
      return internal_error(node.describe() + ": element counts differ (" + shape_str(in[0]->shape) + " -> " +
                            shape_str(out[0].shape) + ")");
    if (in[0]->dtype != out[0].dtype) return internal_error(node.describe() + ": an alias needs the same dtype");
    auto v = view_strides(in[0]->shape, in[0]->strides(), out[0].shape);
    if (!v || !same_strides(out[0].shape, *v, out[0].strides()))
      return internal_error(node.describe() + ": the output is not a view of the input's memory");
    return Status::ok();
  }
  Status enqueue(const LaunchContext&, std::span<const void* const>, std::span<void* const>) override {
    return Status::ok();
  }
  std::string info() const override { return "alias"; }
};
}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_reshape(const Node&) { return std::unique_ptr<CudaKernel>(new ReshapeKernel()); }

}  // namespace qyolo::cuda
