#include <algorithm>
#include <cfloat>
#include <cmath>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/preprocess.h"

namespace qyolo::cuda {

namespace {

enum class Path : int { kPadOnly = 0, kCopy, kDown2x, kGeneric };

struct LbParams {
  const uint8_t* src;
  size_t pitch;
  int sw, sh;          // source size
  int nw, nh;          // resized body size
  int left, top;       // body placement
  int dw, dh;          // destination size
  double scale_x, scale_y;
  int simd_len;        // OpenCV's vectorised prefix of a row (in bytes of nw * 3)
  Path path;
  size_t src_stride;  // bytes between the sources of consecutive images (blockIdx.z)
  size_t dst_stride;  // elements between their destinations
};

// The parameters of image blockIdx.z of a batch of equally sized sources.
__device__ __forceinline__ LbParams image_params(const LbParams& p) {
  LbParams q = p;
  q.src += static_cast<size_t>(blockIdx.z) * p.src_stride;
  return q;
}

constexpr int kCoefScale = 1 << 11;

// OpenCV's table setup: half-pixel centres in double (no fused multiply-add), float fraction,
// weights rounded half-to-even.
__device__ __forceinline__ void make_tap(int d, double scale, int& index, int& w0, int& w1) {
  float f = static_cast<float>(__dadd_rn(__dmul_rn(__dadd_rn(static_cast<double>(d), 0.5), scale), -0.5));
  const int s = static_cast<int>(floorf(f));
  f = __fsub_rn(f, static_cast<float>(s));
  index = s;
  w0 = min(max(__float2int_rn(__fmul_rn(__fsub_rn(1.f, f), static_cast<float>(kCoefScale))), -32768), 32767);
  w1 = min(max(__float2int_rn(__fmul_rn(f, static_cast<float>(kCoefScale))), -32768), 32767);
}

// The three channels of the resized body at (bx, by). The taps are computed once per pixel (the
// double-precision table arithmetic per channel made the kernel issue-bound).
__device__ __forceinline__ void body_rgb(const LbParams& p, int bx, int by, int (&v)[3]) {
  if (p.path == Path::kCopy) {
    const uint8_t* q = p.src + static_cast<size_t>(by) * p.pitch + 3 * bx;
#pragma unroll
    for (int c = 0; c < 3; ++c) v[c] = q[c];
    return;
  }
  if (p.path == Path::kDown2x) {
    const uint8_t* r0 = p.src + static_cast<size_t>(2 * by) * p.pitch + 6 * bx;
    const uint8_t* r1 = r0 + p.pitch;
#pragma unroll
    for (int c = 0; c < 3; ++c) v[c] = (r0[c] + r0[c + 3] + r1[c] + r1[c + 3] + 2) >> 2;
    return;
  }
  // Horizontal tap with OpenCV's edge rule.
  int xi, xw0, xw1;
  make_tap(bx, p.scale_x, xi, xw0, xw1);
  if (xi < 0) { xi = 0; xw0 = kCoefScale; xw1 = 0; }
  if (xi >= p.sw - 1) { xi = p.sw - 1; xw0 = kCoefScale; xw1 = 0; }
  int yi, b0, b1;
  make_tap(by, p.scale_y, yi, b0, b1);
  const int y0 = min(max(yi, 0), p.sh - 1), y1 = min(max(yi + 1, 0), p.sh - 1);
  const uint8_t* q0 = p.src + static_cast<size_t>(y0) * p.pitch + 3 * xi;
  const uint8_t* q1 = p.src + static_cast<size_t>(y1) * p.pitch + 3 * xi;
#pragma unroll
  for (int c = 0; c < 3; ++c) {
    int s0 = q0[c] * xw0, s1 = q1[c] * xw0;
    if (xw1 != 0) {
      s0 += q0[c + 3] * xw1;
      s1 += q1[c + 3] * xw1;
    }
    const int e = 3 * bx + c;
    if (e < p.simd_len) {
      const int a = ((s0 >> 4) * b0) >> 16;
      const int b = ((s1 >> 4) * b1) >> 16;
      v[c] = min(max((a + b + 2) >> 2, 0), 255);
    } else {
      const long long t = static_cast<long long>(s0) * b0 + static_cast<long long>(s1) * b1;
      v[c] = static_cast<int>(min(max((t + (1 << 21)) >> 22, 0LL), 255LL));
    }
  }
}

// The output pixel (x, y): the body's channels, or the grey border.
__device__ __forceinline__ void letterbox_rgb(const LbParams& p, int x, int y, int (&v)[3]) {
  const int bx = x - p.left, by = y - p.top;
  if (p.path != Path::kPadOnly && bx >= 0 && by >= 0 && bx < p.nw && by < p.nh) {
    body_rgb(p, bx, by, v);
  } else {
    v[0] = v[1] = v[2] = 114;
  }
}

template <typename T>
__global__ void letterbox_kernel(LbParams batch, T* __restrict__ dst) {
  await_producers();
  const LbParams p = image_params(batch);
  dst += static_cast<size_t>(blockIdx.z) * batch.dst_stride;
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= p.dw || y >= p.dh) return;
  const size_t plane = static_cast<size_t>(p.dw) * p.dh;
  const size_t o = static_cast<size_t>(y) * p.dw + x;
  int v[3];
  letterbox_rgb(p, x, y, v);
#pragma unroll
  for (int c = 0; c < 3; ++c) dst[c * plane + o] = from_f<T>(__fdiv_rn(static_cast<float>(v[c]), 255.0f));
}

// The letterboxed bytes themselves, HWC (an engine with a uint8 NHWC image input scales them).
__global__ void letterbox_bytes_kernel(LbParams batch, uint8_t* __restrict__ dst) {
  await_producers();
  const LbParams p = image_params(batch);
  dst += static_cast<size_t>(blockIdx.z) * batch.dst_stride;
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= p.dw || y >= p.dh) return;
  const size_t o = (static_cast<size_t>(y) * p.dw + x) * 3;
  int v[3];
  letterbox_rgb(p, x, y, v);
#pragma unroll
  for (int c = 0; c < 3; ++c) dst[o + c] = static_cast<uint8_t>(v[c]);
}

}  // namespace

LetterboxInfo letterbox_geometry(int sw, int sh, int dst_h, int dst_w) {
  LetterboxInfo li;
  li.src_w = sw;
  li.src_h = sh;
  li.dst_w = dst_w;
  li.dst_h = dst_h;
  if (dst_w <= 0 || dst_h <= 0 || sw <= 0 || sh <= 0) return li;
  const double r = std::min(static_cast<double>(dst_h) / sh, static_cast<double>(dst_w) / sw);
  const int new_w = std::clamp(static_cast<int>(std::nearbyint(sw * r)), 1, dst_w);
  const int new_h = std::clamp(static_cast<int>(std::nearbyint(sh * r)), 1, dst_h);
  const double dw = (dst_w - new_w) / 2.0, dh = (dst_h - new_h) / 2.0;
  li.scale = static_cast<float>(r);
  li.pad_x = static_cast<float>(static_cast<int>(std::nearbyint(dw - 0.1)));
  li.pad_y = static_cast<float>(static_cast<int>(std::nearbyint(dh - 0.1)));
  return li;
}

Status letterbox_to_nchw_gpu(const uint8_t* src, int src_w, int src_h, size_t src_pitch, int dst_h, int dst_w,
                             DataType out_dtype, void* dst, cudaStream_t stream, LetterboxInfo* info) {
  return letterbox_batch_gpu(src, src_w, src_h, src_pitch, 0, 1, dst_h, dst_w, out_dtype, dst, stream, info);
}

Status letterbox_batch_gpu(const uint8_t* src, int src_w, int src_h, size_t src_pitch, size_t src_stride,
                           int count, int dst_h, int dst_w, DataType out_dtype, void* dst,
                           cudaStream_t stream, LetterboxInfo* info) {
  if (count < 1 || count > 65535)
    return invalid_argument("letterbox: batch of " + std::to_string(count) + " images");
  if (out_dtype != DataType::kFloat32 && out_dtype != DataType::kFloat16 && out_dtype != DataType::kUInt8)
    return invalid_argument(std::string("letterbox output must be float32, float16 or uint8, got ") +
                            dtype_name(out_dtype));
  LetterboxInfo li = letterbox_geometry(src_w, src_h, dst_h, dst_w);
  if (info) *info = li;
  if (dst_w <= 0 || dst_h <= 0) return Status::ok();
  if (dst == nullptr) return invalid_argument("letterbox: null destination");
  LbParams p{};
  p.src = src;
  p.pitch = src_pitch;
  p.sw = src_w;
  p.sh = src_h;
  p.dw = dst_w;
  p.dh = dst_h;
  p.src_stride = src_stride;
  p.dst_stride = static_cast<size_t>(dst_w) * dst_h * 3;
  if (src_w <= 0 || src_h <= 0 || src == nullptr) {
    p.path = Path::kPadOnly;
  } else {
    const double r = std::min(static_cast<double>(dst_h) / src_h, static_cast<double>(dst_w) / src_w);
    p.nw = std::clamp(static_cast<int>(std::nearbyint(src_w * r)), 1, dst_w);
    p.nh = std::clamp(static_cast<int>(std::nearbyint(src_h * r)), 1, dst_h);
    p.left = static_cast<int>(li.pad_x);
    p.top = static_cast<int>(li.pad_y);
    p.scale_x = 1.0 / (static_cast<double>(p.nw) / src_w);
    p.scale_y = 1.0 / (static_cast<double>(p.nh) / src_h);
    const int row_len = p.nw * 3;
    p.simd_len = row_len - row_len % 8;
    if (p.nw == src_w && p.nh == src_h) p.path = Path::kCopy;
    else if (std::abs(p.scale_x - 2.0) < DBL_EPSILON && std::abs(p.scale_y - 2.0) < DBL_EPSILON) p.path = Path::kDown2x;
    else p.path = Path::kGeneric;
  }
  const dim3 block(32, 8);
  const dim3 grid((dst_w + 31) / 32, (dst_h + 7) / 8, static_cast<unsigned>(count));
  if (out_dtype == DataType::kUInt8)
    letterbox_bytes_kernel<<<grid, block, 0, stream>>>(p, static_cast<uint8_t*>(dst));
  else if (out_dtype == DataType::kFloat16)
    letterbox_kernel<__half><<<grid, block, 0, stream>>>(p, static_cast<__half*>(dst));
  else
    letterbox_kernel<float><<<grid, block, 0, stream>>>(p, static_cast<float*>(dst));
  QYOLO_CUDA_CHECK_LAUNCH("letterbox_kernel");
  return Status::ok();
}

}  // namespace qyolo::cuda
