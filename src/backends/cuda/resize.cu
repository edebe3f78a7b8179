// Resize / Upsample, mode nearest, rank 4 with N and C unscaled, NCHW or NHWC. The source index of
// every output row and column is computed at build with ResizeAttrs (the CPU backend's mapping)
// and uploaded as two small tables. Any element type (int8 too: the copy is exact, the scale is the
// input's); NHWC input and output may be channel slices of concat buffers (pixel pitches).
#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/cuda_kernel.h"
#include "ir/ops/resize.h"

namespace qyolo::cuda {

namespace {

struct ResizeParams {
  int n, c, h, w, oh, ow;
  int64_t total;
  int y_pitch;  // NHWC: elements between output pixels (c, or more when y is a concat slice)
  int x_pitch;  // NHWC: elements between input pixels (c, or more when x is a concat slice)
  const int* ys;  // [oh]
  const int* xs;  // [ow]
};

template <typename T, bool NHWC>
__global__ void resize_nearest_kernel(ResizeParams p, T* __restrict__ y, const T* __restrict__ x) {
  await_producers();
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int c, ox, oy, n;
    split_image_index<NHWC>(i, p.c, p.oh, p.ow, n, c, oy, ox);
    const int iy = p.ys[oy], ix = p.xs[ox];
    const int64_t off = NHWC ? ((static_cast<int64_t>(n) * p.h + iy) * p.w + ix) * p.x_pitch + c
                             : ((static_cast<int64_t>(n) * p.c + c) * p.h + iy) * p.w + ix;
    y[NHWC ? (i / p.c) * p.y_pitch + c : i] = x[off];
  }
}

// NHWC, C * element size a multiple of 16 bytes: one thread per 16-byte channel vector.
__global__ void resize_nearest_nhwc_vec_kernel(ResizeParams p, uint32_t cv, uint32_t y_pitch_v, uint32_t x_pitch_v,
                                               uint4* __restrict__ y, const uint4* __restrict__ x) {
  await_producers();
  const uint32_t total = static_cast<uint32_t>(static_cast<int64_t>(p.n) * p.oh * p.ow * cv);
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    uint32_t r = i;
    const uint32_t c = r % cv;
    r /= cv;
    const uint32_t pixel = r;
    const uint32_t ox = r % static_cast<uint32_t>(p.ow);
    r /= static_cast<uint32_t>(p.ow);
    const uint32_t oy = r % static_cast<uint32_t>(p.oh);
    const uint32_t n = r / static_cast<uint32_t>(p.oh);
    y[pixel * y_pitch_v + c] = x[((n * static_cast<uint32_t>(p.h) + static_cast<uint32_t>(p.ys[oy])) * static_cast<uint32_t>(p.w) +
              static_cast<uint32_t>(p.xs[ox])) * x_pitch_v + c];
  }
}

class ResizeKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    const TensorInfo& x = *in[0];
    if (x.shape.size() != 4) return unsupported(node.describe() + ": the GPU Resize is 4-D only");
    auto floats = [&](size_t i) -> std::optional<std::vector<float>> {
      if (i < in.size() && in[i] && in[i]->constant && in[i]->constant->numel() > 0) return in[i]->constant->to_float_vector();
      return std::nullopt;
    };
    std::optional<std::vector<int64_t>> sizes;
    if (in.size() > 3 && in[3] && in[3]->constant && in[3]->constant->numel() > 0) sizes = in[3]->constant->to_int64_vector();
    Result<ResizeAttrs> ar = in.size() == 2 ? ResizeAttrs::parse(node, x.shape, std::nullopt, floats(1), std::nullopt)
                                            : ResizeAttrs::parse(node, x.shape, floats(1), floats(2), sizes);
    if (!ar) return ar.status();
    const ResizeAttrs& a = *ar;
    if (a.mode != ResizeMode::kNearest) return unsupported(node.describe() + ": only nearest Resize runs on the GPU");
    if (a.coord == ResizeCoordMode::kTfCropAndResize) return unsupported(node.describe() + ": tf_crop_and_resize on the GPU");
    if (a.out_shape != out[0].shape) return internal_error(node.describe() + ": resize output shape mismatch");
    if (a.out_shape[0] != x.shape[0] || a.out_shape[1] != x.shape[1])
      return unsupported(node.describe() + ": the GPU Resize scales H and W only");
    std::vector<int> table;
    for (int64_t o = 0; o < a.out_shape[2]; ++o)
      table.push_back(static_cast<int>(a.nearest_index(2, a.source_coord(2, o, x.shape[2]), x.shape[2])));
    for (int64_t o = 0; o < a.out_shape[3]; ++o)
      table.push_back(static_cast<int>(a.nearest_index(3, a.source_coord(3, o, x.shape[3]), x.shape[3])));
    QYOLO_ASSIGN_OR_RETURN(tables_, DeviceBuffer::allocate(table.size() * sizeof(int)));
    QYOLO_RETURN_IF_ERROR(tables_.upload(table.data(), table.size() * sizeof(int)));
    p_ = {static_cast<int>(x.shape[0]), static_cast<int>(x.shape[1]), static_cast<int>(x.shape[2]),
          static_cast<int>(x.shape[3]), static_cast<int>(a.out_shape[2]), static_cast<int>(a.out_shape[3]),
          out[0].numel(), static_cast<int>(x.shape[1]), static_cast<int>(x.shape[1]), tables_.as<int>(),
          tables_.as<int>() + a.out_shape[2]};
    const auto x_pitch = nhwc_pixel_pitch(x);
    nhwc_ = x_pitch.has_value();
    if (nhwc_) p_.x_pitch = static_cast<int>(*x_pitch);
    const Layout want = nhwc_ ? Layout::kNHWC : x.layout;
    if (want != out[0].layout || x.dtype != out[0].dtype) return internal_error(node.describe() + ": layout mismatch");
    esize_ = dtype_size(x.dtype);
    return Status::ok();
  }
  bool set_output_pitch(PrepareContext&, int index, int64_t pitch) override {
    if (index != 0 || !nhwc_ || pitch < p_.c || pitch > (int64_t{1} << 30)) return false;
    p_.y_pitch = static_cast<int>(pitch);
    return true;
  }
  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in, std::span<void* const> out) override {
    if (p_.total == 0) return Status::ok();
    constexpr int kThreads = 256;
    const unsigned g = grid_for(p_.total, kThreads);
    const size_t row = static_cast<size_t>(p_.c) * esize_;
    const size_t y_row = static_cast<size_t>(p_.y_pitch) * esize_;
    const size_t x_row = static_cast<size_t>(p_.x_pitch) * esize_;
    if (nhwc_ && row % 16 == 0 && y_row % 16 == 0 && x_row % 16 == 0 && p_.total / p_.c * p_.y_pitch < (int64_t{1} << 31) &&
        static_cast<int64_t>(p_.n) * p_.x_pitch * p_.h * p_.w < (int64_t{1} << 31) &&
        ((reinterpret_cast<uintptr_t>(in[0]) | reinterpret_cast<uintptr_t>(out[0])) % 16) == 0) {
      const uint32_t cv = static_cast<uint32_t>(row / 16);
      launch_kernel(resize_nearest_nhwc_vec_kernel, grid_for(p_.total * static_cast<int64_t>(esize_) / 16, kThreads), kThreads, 0, ctx.stream, ctx.programmatic, p_, cv, static_cast<uint32_t>(y_row / 16), static_cast<uint32_t>(x_row / 16), static_cast<uint4*>(out[0]), static_cast<const uint4*>(in[0]));
      QYOLO_CUDA_CHECK_LAUNCH("resize_nearest_nhwc_vec_kernel");
      return Status::ok();
    }
    if (esize_ == 1) {
      if (nhwc_) launch_kernel(resize_nearest_kernel<uint8_t, true>, g, kThreads, 0, ctx.stream, ctx.programmatic, p_, static_cast<uint8_t*>(out[0]), static_cast<const uint8_t*>(in[0]));
      else launch_kernel(resize_nearest_kernel<uint8_t, false>, g, kThreads, 0, ctx.stream, ctx.programmatic, p_, static_cast<uint8_t*>(out[0]), static_cast<const uint8_t*>(in[0]));
    } else if (esize_ == 2) {
      if (nhwc_) launch_kernel(resize_nearest_kernel<uint16_t, true>, g, kThreads, 0, ctx.stream, ctx.programmatic, p_, static_cast<uint16_t*>(out[0]), static_cast<const uint16_t*>(in[0]));
      else launch_kernel(resize_nearest_kernel<uint16_t, false>, g, kThreads, 0, ctx.stream, ctx.programmatic, p_, static_cast<uint16_t*>(out[0]), static_cast<const uint16_t*>(in[0]));
    } else if (esize_ == 4) {
      if (nhwc_) launch_kernel(resize_nearest_kernel<uint32_t, true>, g, kThreads, 0, ctx.stream, ctx.programmatic, p_, static_cast<uint32_t*>(out[0]), static_cast<const uint32_t*>(in[0]));
      else launch_kernel(resize_nearest_kernel<uint32_t, false>, g, kThreads, 0, ctx.stream, ctx.programmatic, p_, static_cast<uint32_t*>(out[0]), static_cast<const uint32_t*>(in[0]));
    } else {
      return unsupported("Resize: element size");
    }
    QYOLO_CUDA_CHECK_LAUNCH("resize_nearest_kernel");
    return Status::ok();
  }

 private:
  DeviceBuffer tables_;
  ResizeParams p_{};
  bool nhwc_ = false;
  size_t esize_ = 4;
};
}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_resize(const Node&) { return std::unique_ptr<CudaKernel>(new ResizeKernel()); }

}  // namespace qyolo::cuda
