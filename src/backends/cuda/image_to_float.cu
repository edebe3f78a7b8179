// QyoloImageToFloat on the GPU: uint8 [N, H, W, C] -> fp32 plain [N, C, H, W], x / 255.f (the
// CPU's and the letterbox's division, so the float image is bit-identical). Runs only where no
// reader takes the bytes itself (the direct stem conv does: fuse_image_input).
#include <sstream>

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/cuda_kernel.h"
#include "ir/ops/image_to_float.h"

namespace qyolo::cuda {

namespace {

struct ImageParams {
  const uint8_t* x;
  float* y;
  int64_t pixels;  // N * H * W
  int64_t plane;   // H * W
  int c;
};

// One thread per pixel: C bytes in, one float per plane out (coalesced along each plane).
__global__ void image_to_float_kernel(ImageParams p) {
  await_producers();
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.pixels;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = i / p.plane, hw = i - n * p.plane;
    const uint8_t* px = p.x + i * p.c;
    float* out = p.y + n * p.c * p.plane + hw;
    for (int c = 0; c < p.c; ++c) out[c * p.plane] = __fdiv_rn(static_cast<float>(px[c]), 255.0f);
  }
}

class ImageToFloatKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    if (in.empty() || in[0] == nullptr || in[0]->dtype != DataType::kUInt8 || in[0]->layout != Layout::kPlain)
      return internal_error(node.describe() + ": reads a plain uint8 image");
    QYOLO_ASSIGN_OR_RETURN(Shape y, image_to_float_shape(node, in[0]->shape));
    if (out.empty() || out[0].dtype != DataType::kFloat32 || out[0].layout != Layout::kPlain ||
        out[0].shape != y)
      return internal_error(node.describe() + ": writes a plain fp32 " + shape_str(y));
    const Shape& x = in[0]->shape;
    p_.pixels = x[0] * x[1] * x[2];
    p_.plane = x[1] * x[2];
    p_.c = static_cast<int>(x[3]);
    return Status::ok();
  }

  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in,
                 std::span<void* const> out) override {
    if (p_.pixels == 0) return Status::ok();
    ImageParams p = p_;
    p.x = static_cast<const uint8_t*>(in[0]);
    p.y = static_cast<float*>(out[0]);
    const int threads = 256;
    const unsigned blocks =
        static_cast<unsigned>(std::min<int64_t>((p.pixels + threads - 1) / threads, 65535 * 8));
    launch_kernel(image_to_float_kernel, dim3(blocks), threads, 0, ctx.stream, ctx.programmatic, p);
    QYOLO_CUDA_CHECK_LAUNCH("image_to_float_kernel");
    return Status::ok();
  }

  std::string info() const override { return "uint8 NHWC -> fp32 NCHW / 255"; }

 private:
  ImageParams p_{};
};

}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_image_to_float(const Node&) {
  return std::unique_ptr<CudaKernel>(new ImageToFloatKernel());
}

}  // namespace qyolo::cuda
