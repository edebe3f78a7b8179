// MaxPool 2-D on float/half, NCHW or NHWC (same layout in and out), and on int8 NHWC (exact: the
// max of quantised values is the quantised max, so input and output share the scale). Int8 reads
// and writes channel slices of concat buffers (pixel pitches), as SPPF's pools do in place.
// Padding never wins.
#include <algorithm>
#include <cfloat>

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/cuda_kernel.h"
#include "ir/ops/max_pool.h"

namespace qyolo::cuda {

namespace {

struct PoolParams {
  int n, c, h, w, oh, ow;
  int kh, kw, sh, sw, ph, pw, dh, dw;
  int64_t total;
};

template <typename T, bool NHWC>
__global__ void max_pool_kernel(PoolParams p, T* __restrict__ y, const T* __restrict__ x) {
  await_producers();
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int c, ox, oy, n;
    split_image_index<NHWC>(i, p.c, p.oh, p.ow, n, c, oy, ox);
    float m = -INFINITY;
    const int y0 = oy * p.sh - p.ph, x0 = ox * p.sw - p.pw;
    for (int ky = 0; ky < p.kh; ++ky) {
      const int iy = y0 + ky * p.dh;
      if (iy < 0 || iy >= p.h) continue;
      for (int kx = 0; kx < p.kw; ++kx) {
        const int ix = x0 + kx * p.dw;
        if (ix < 0 || ix >= p.w) continue;
        const int64_t off = NHWC ? ((static_cast<int64_t>(n) * p.h + iy) * p.w + ix) * p.c + c
                                 : ((static_cast<int64_t>(n) * p.c + c) * p.h + iy) * p.w + ix;
        m = fmaxf(m, to_f(x[off]));
      }
    }
    y[i] = from_f<T>(m);
  }
}

template <typename T, int V> struct alignas(sizeof(T) * V) Vec { T v[V]; };

// int8 NHWC, C % 16 == 0: one thread per 16 channels (four 4-byte words, signed byte max), the
// input and output `x_ld` / `y_ld` elements between pixels.
__global__ void max_pool_nhwc_s8_kernel(PoolParams p, int x_ld, int y_ld, int8_t* __restrict__ y,
                                        const int8_t* __restrict__ x) {
  await_producers();
  const uint32_t cv = static_cast<uint32_t>(p.c / 16);
  const uint32_t total = static_cast<uint32_t>(p.total / 16);
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    uint32_t r = i;
    const uint32_t c = r % cv;
    r /= cv;
    const uint32_t pixel = r;
    const int ox = static_cast<int>(r % static_cast<uint32_t>(p.ow));
    r /= static_cast<uint32_t>(p.ow);
    const int oy = static_cast<int>(r % static_cast<uint32_t>(p.oh));
    const uint32_t n = r / static_cast<uint32_t>(p.oh);
    uint4 m = make_uint4(0x80808080u, 0x80808080u, 0x80808080u, 0x80808080u);  // -128 per byte
    const int y0 = oy * p.sh - p.ph, x0 = ox * p.sw - p.pw;
    for (int ky = 0; ky < p.kh; ++ky) {
      const int iy = y0 + ky * p.dh;
      if (iy < 0 || iy >= p.h) continue;
      for (int kx = 0; kx < p.kw; ++kx) {
        const int ix = x0 + kx * p.dw;
        if (ix < 0 || ix >= p.w) continue;
        const uint4 v = *reinterpret_cast<const uint4*>(
            x + ((n * static_cast<uint32_t>(p.h) + static_cast<uint32_t>(iy)) * static_cast<uint32_t>(p.w) + ix) * x_ld + c * 16);
        m.x = __vmaxs4(m.x, v.x), m.y = __vmaxs4(m.y, v.y), m.z = __vmaxs4(m.z, v.z), m.w = __vmaxs4(m.w, v.w);
      }
    }
    *reinterpret_cast<uint4*>(y + pixel * static_cast<uint32_t>(y_ld) + c * 16) = m;
  }
}

// NHWC with C % V == 0: one thread per 16-byte channel vector, 32-bit indexing.
template <typename T>
__global__ void max_pool_nhwc_vec_kernel(PoolParams p, T* __restrict__ y, const T* __restrict__ x) {
  await_producers();
  constexpr int V = 16 / sizeof(T);
  const uint32_t cv = static_cast<uint32_t>(p.c / V);
  const uint32_t total = static_cast<uint32_t>(p.total / V);
  const auto* xv = reinterpret_cast<const Vec<T, V>*>(x);
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    uint32_t r = i;
    const uint32_t c = r % cv;
    r /= cv;
    const int ox = static_cast<int>(r % static_cast<uint32_t>(p.ow));
    r /= static_cast<uint32_t>(p.ow);
    const int oy = static_cast<int>(r % static_cast<uint32_t>(p.oh));
    const uint32_t n = r / static_cast<uint32_t>(p.oh);
    float m[V];
#pragma unroll
    for (int k = 0; k < V; ++k) m[k] = -INFINITY;
    const int y0 = oy * p.sh - p.ph, x0 = ox * p.sw - p.pw;
    for (int ky = 0; ky < p.kh; ++ky) {
      const int iy = y0 + ky * p.dh;
      if (iy < 0 || iy >= p.h) continue;
      for (int kx = 0; kx < p.kw; ++kx) {
        const int ix = x0 + kx * p.dw;
        if (ix < 0 || ix >= p.w) continue;
        const Vec<T, V> v = xv[((n * static_cast<uint32_t>(p.h) + iy) * static_cast<uint32_t>(p.w) + ix) * cv + c];
#pragma unroll
        for (int k = 0; k < V; ++k) m[k] = fmaxf(m[k], to_f(v.v[k]));
      }
    }
    Vec<T, V> o;
#pragma unroll
    for (int k = 0; k < V; ++k) o.v[k] = from_f<T>(m[k]);
    reinterpret_cast<Vec<T, V>*>(y)[i] = o;
  }
}

class MaxPoolKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    const TensorInfo& x = *in[0];
    if (x.shape.size() != 4) return unsupported(node.describe() + ": the GPU MaxPool is 2-D only");
    QYOLO_ASSIGN_OR_RETURN(PoolAttrs a, PoolAttrs::parse(node, x.shape));
    if (a.out_shape != out[0].shape) return internal_error(node.describe() + ": pool output shape mismatch");
    if (x.dtype == DataType::kInt8) {
      const auto x_ld = nhwc_pixel_pitch(x);
      if (!x_ld || out[0].dtype != DataType::kInt8 || out[0].layout != Layout::kNHWC || x.shape[1] % 16 || *x_ld % 16)
        return internal_error(node.describe() + ": int8 MaxPool takes NHWC int8 with channels (and pitches) in 16s");
      x_ld_ = static_cast<int>(*x_ld);
      y_ld_ = static_cast<int>(x.shape[1]);
    } else if (x.layout != out[0].layout || x.dtype != out[0].dtype) {
      return internal_error(node.describe() + ": layout mismatch");
    }
    const auto& w = a.window;
    p_ = {static_cast<int>(x.shape[0]), static_cast<int>(x.shape[1]), static_cast<int>(x.shape[2]),
          static_cast<int>(x.shape[3]), static_cast<int>(w.out[0]), static_cast<int>(w.out[1]),
          static_cast<int>(w.kernel[0]), static_cast<int>(w.kernel[1]), static_cast<int>(w.strides[0]),
          static_cast<int>(w.strides[1]), static_cast<int>(w.pads_begin[0]), static_cast<int>(w.pads_begin[1]),
          static_cast<int>(w.dilations[0]), static_cast<int>(w.dilations[1]), out[0].numel()};
    nhwc_ = x.layout == Layout::kNHWC;
    dtype_ = x.dtype;
    return Status::ok();
  }
  // int8: the output written into a channel slice of a concat buffer (`pitch` channels per pixel).
  bool set_output_pitch(PrepareContext&, int index, int64_t pitch) override {
    if (index != 0 || dtype_ != DataType::kInt8 || pitch < p_.c || pitch % 16 || pitch > (int64_t{1} << 30)) return false;
    y_ld_ = static_cast<int>(pitch);
    return true;
  }
  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in, std::span<void* const> out) override {
    if (p_.total == 0) return Status::ok();
    constexpr int kThreads = 256;
    const unsigned g = grid_for(p_.total, kThreads);
    if (dtype_ == DataType::kInt8) {
      const int64_t pixels = p_.total / p_.c;
      if (pixels * std::max(x_ld_, y_ld_) >= (int64_t{1} << 31) ||
          static_cast<int64_t>(p_.n) * p_.h * p_.w * x_ld_ >= (int64_t{1} << 31))
        return unsupported("int8 MaxPool: tensor too large for 32-bit indexing");
      launch_kernel(max_pool_nhwc_s8_kernel, grid_for(p_.total / 16, kThreads), kThreads, 0, ctx.stream, ctx.programmatic,
                    p_, x_ld_, y_ld_, static_cast<int8_t*>(out[0]), static_cast<const int8_t*>(in[0]));
      QYOLO_CUDA_CHECK_LAUNCH("max_pool_nhwc_s8_kernel");
      return Status::ok();
    }
    const int V = dtype_ == DataType::kFloat16 ? 8 : 4;
    if (nhwc_ && p_.c % V == 0 && p_.total < (int64_t{1} << 31) &&
        static_cast<int64_t>(p_.n) * p_.c * p_.h * p_.w < (int64_t{1} << 31) &&
        ((reinterpret_cast<uintptr_t>(in[0]) | reinterpret_cast<uintptr_t>(out[0])) % 16) == 0) {
      const unsigned gv = grid_for(p_.total / V, kThreads);
      if (dtype_ == DataType::kFloat16)
        launch_kernel(max_pool_nhwc_vec_kernel<__half>, gv, kThreads, 0, ctx.stream, ctx.programmatic, p_, static_cast<__half*>(out[0]), static_cast<const __half*>(in[0]));
      else
        launch_kernel(max_pool_nhwc_vec_kernel<float>, gv, kThreads, 0, ctx.stream, ctx.programmatic, p_, static_cast<float*>(out[0]), static_cast<const float*>(in[0]));
      QYOLO_CUDA_CHECK_LAUNCH("max_pool_nhwc_vec_kernel");
      return Status::ok();
    }
    if (dtype_ == DataType::kFloat16) {
      if (nhwc_) launch_kernel(max_pool_kernel<__half, true>, g, kThreads, 0, ctx.stream, ctx.programmatic, p_, static_cast<__half*>(out[0]), static_cast<const __half*>(in[0]));
      else launch_kernel(max_pool_kernel<__half, false>, g, kThreads, 0, ctx.stream, ctx.programmatic, p_, static_cast<__half*>(out[0]), static_cast<const __half*>(in[0]));
    } else {
      if (nhwc_) launch_kernel(max_pool_kernel<float, true>, g, kThreads, 0, ctx.stream, ctx.programmatic, p_, static_cast<float*>(out[0]), static_cast<const float*>(in[0]));
      else launch_kernel(max_pool_kernel<float, false>, g, kThreads, 0, ctx.stream, ctx.programmatic, p_, static_cast<float*>(out[0]), static_cast<const float*>(in[0]));
    }
    QYOLO_CUDA_CHECK_LAUNCH("max_pool_kernel");
    return Status::ok();
  }

 private:
  PoolParams p_{};
  int x_ld_ = 0, y_ld_ = 0;  // int8: elements between pixels of the input / output
  bool nhwc_ = false;
  DataType dtype_ = DataType::kFloat32;
};
}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_max_pool(const Node&) { return std::unique_ptr<CudaKernel>(new MaxPoolKernel()); }

}  // namespace qyolo::cuda
