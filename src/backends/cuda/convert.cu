// Executor-inserted conversion: same logical shape, another dtype (float <-> half) and/or layout.
#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/nd_copy.h"

namespace qyolo::cuda {

namespace {
class ConvertKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    if (in.size() != 1 || out.size() != 1 || in[0] == nullptr || in[0]->shape != out[0].shape)
      return internal_error(node.name + ": bad conversion");
    QYOLO_ASSIGN_OR_RETURN(copy_, make_nd_copy(out[0].shape, out[0].strides(), 0, out[0].dtype, in[0]->strides(), 0,
                                               in[0]->dtype));
    return Status::ok();
  }
  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in, std::span<void* const> out) override {
    return enqueue_nd_copy(copy_, in[0], out[0], ctx.stream, ctx.programmatic);
  }
  std::string info() const override { return "convert"; }

 private:
  NdCopy copy_;
};
}  // namespace

std::unique_ptr<CudaKernel> make_cuda_convert() { return std::make_unique<ConvertKernel>(); }

}  // namespace qyolo::cuda
