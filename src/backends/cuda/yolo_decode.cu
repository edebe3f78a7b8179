// QyoloYoloDecode on the GPU (src/ir/ops/yolo_decode.h): sigmoid, the [N, A, C, H, W] ->
// [N, A, H, W, C] transpose and the box decode in one memory pass, replacing the Reshape /
// Transpose / Sigmoid / Split / Mul / Add / Pow / Concat chain of the detect head.
// X is read in whatever layout and float type it arrives (the head conv's NHWC fp16 output, or
// plain fp32) through its strides; GRID/ANCHOR_GRID are uploaded by the executor in the output's
// type; the output is plain (fp32, or fp16 when the build keeps no fp32 tail).
// Arithmetic rounds like the unfused graph (one rounding per ONNX op: no FMA contraction).
#include "backends/cuda/yolo_decode.cuh"
#include "ir/ops/yolo_decode.h"

namespace qyolo::cuda {

namespace {

struct DecodeParams {
  int64_t total;                 // N*A*H*W*C
  int64_t sn, sc, sh, sw;        // X element strides (logical N, A*C, H, W)
  YoloDecodeParams d;
  int stage_ld = 0;              // staged kernel: elements per staged pixel (A*C rounded to 16 bytes)
  int vec_out = 0;               // staged kernel: output runs start 4-element aligned (vector stores)
};

// One thread per output element (output order): coalesced writes; reads coalesce when X's
// channels are innermost (NHWC), which is how the fp16 head conv writes it.
// Index is uint32_t when the output has fewer than 2^31 elements (always, in practice): the four
// divisions of the index split are then 32-bit, not the much slower 64-bit emulation.
template <typename TX, typename TO, typename Index>
__global__ void yolo_decode_flat(DecodeParams p, const TX* __restrict__ x, const TO* __restrict__ grid,
                                 const TO* __restrict__ anchor, TO* __restrict__ y) {
  await_producers();
  const Index total = static_cast<Index>(p.total);
  const YoloDecodeParams& d = p.d;
  const Index C = d.C, W = d.W, H = d.H, A = d.A;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<Index>(gridDim.x) * blockDim.x) {
    Index r = i;
    const int c = static_cast<int>(r % C); r /= C;
    const int w = static_cast<int>(r % W); r /= W;
    const int h = static_cast<int>(r % H); r /= H;
    const int a = static_cast<int>(r % A);
    const int64_t n = static_cast<int64_t>(r / A);
    const float v = to_f(x[n * p.sn + static_cast<int64_t>(a * d.C + c) * p.sc + h * p.sh + w * p.sw]);
    const int64_t g = ((static_cast<int64_t>(a) * d.H + h) * d.W + w) * 2;
    y[static_cast<int64_t>(i) + n * (d.out_pitch - d.per_n)] = yolo_decode_one<TO>(d, v, c, g, grid, anchor);
  }
}

// X with channels innermost (the head conv's NHWC output): a block takes kRowPixels pixels of one
// (n, h) row; each thread keeps channels ch = a * C + c (split once) and walks the pixels, so the
// loop has no index division (the flat kernel's four divisions per element made it issue-bound).
// Neighbouring threads read neighbouring channels and write neighbouring c of one anchor.
constexpr int kRowPixels = 8;
constexpr int kRowThreads = 256;

template <typename TX, typename TO>
__global__ void yolo_decode_rows(DecodeParams p, const TX* __restrict__ x, const TO* __restrict__ grid,
                                 const TO* __restrict__ anchor, TO* __restrict__ y) {
  await_producers();
  const YoloDecodeParams& d = p.d;
  const int w0 = blockIdx.x * kRowPixels, h = blockIdx.y, n = blockIdx.z;
  const int wn = min(kRowPixels, d.W - w0);
  for (int ch = threadIdx.x; ch < d.A * d.C; ch += blockDim.x) {
    const int a = ch / d.C, c = ch - a * d.C;
    const TX* xp = x + n * p.sn + ch * p.sc + h * p.sh + w0 * p.sw;
    const int64_t cell0 = (static_cast<int64_t>(a) * d.H + h) * d.W + w0;
    TO* yp = y + n * d.out_pitch + cell0 * d.C + c;
    // Not unrolled: unrolling (all loads first) took 72 registers and ran 25% slower (ncu).
    for (int j = 0; j < wn; ++j) yp[j * d.C] = yolo_decode_one<TO>(d, to_f(xp[j * p.sw]), c, (cell0 + j) * 2, grid, anchor);
  }
}

// X with channels innermost and each pixel's A*C channels readable as whole 16-byte chunks (the
// head conv's NHWC output with its 256-channel pitch): a block stages kStagePixels pixels of one
// (n, h) row in shared memory with 16-byte loads, then writes, per anchor, the contiguous
// [pixels][C] run of the output four elements per thread with vector stores. (The rows kernel's
// 2-byte loads and scattered 4-byte stores held the 80x80 head of yolov5s b32 at ~50% of its
// memory floor: 0.197 ms for a 0.104 ms floor.) From half input the sigmoid takes the fast
// intrinsics (FAST in yolo_decode_one); from fp32 it rounds like the unfused graph.
constexpr int kStagePixels = 16;
constexpr int kStageThreads = 256;

template <typename TO>
__device__ __forceinline__ void store4(TO* y, const float (&v)[4]);
template <>
__device__ __forceinline__ void store4<float>(float* y, const float (&v)[4]) {
  *reinterpret_cast<float4*>(y) = make_float4(v[0], v[1], v[2], v[3]);
}
template <>
__device__ __forceinline__ void store4<__half>(__half* y, const float (&v)[4]) {
  __half2 lo = __floats2half2_rn(v[0], v[1]), hi = __floats2half2_rn(v[2], v[3]);
  *reinterpret_cast<uint2*>(y) = make_uint2(*reinterpret_cast<uint32_t*>(&lo), *reinterpret_cast<uint32_t*>(&hi));
}

template <typename TX, typename TO>
__global__ void __launch_bounds__(kStageThreads) yolo_decode_staged(DecodeParams p, const TX* __restrict__ x,
                                                                     const TO* __restrict__ grid,
                                                                     const TO* __restrict__ anchor, TO* __restrict__ y) {
  await_producers();
  extern __shared__ __align__(16) uint8_t stage_raw[];
  TX* tile = reinterpret_cast<TX*>(stage_raw);  // [kStagePixels][stage_ld]
  constexpr bool kFast = sizeof(TX) == 2;
  constexpr int kVec = 16 / static_cast<int>(sizeof(TX));
  const YoloDecodeParams& d = p.d;
  const int ld = p.stage_ld;
  const int w0 = blockIdx.x * kStagePixels, h = blockIdx.y, n = blockIdx.z;
  const int wn = min(kStagePixels, d.W - w0);
  const int chunks = ld / kVec;
  const TX* xrow = x + n * p.sn + h * p.sh + static_cast<int64_t>(w0) * p.sw;
  for (int i = threadIdx.x; i < wn * chunks; i += blockDim.x) {
    const int px = i / chunks, ch = i - px * chunks;
    *reinterpret_cast<uint4*>(tile + px * ld + ch * kVec) =
        __ldg(reinterpret_cast<const uint4*>(xrow + px * p.sw + ch * kVec));
  }
  __syncthreads();
  const int run = wn * d.C;  // output elements of one anchor, contiguous
  const int groups = (run + 3) / 4;
  for (int i = threadIdx.x; i < d.A * groups; i += blockDim.x) {
    const int a = i / groups, k0 = (i - a * groups) * 4;
    int w = k0 / d.C, c = k0 - w * d.C;
    const int64_t cell0 = (static_cast<int64_t>(a) * d.H + h) * d.W + w0;
    TO* yrun = y + n * d.out_pitch + cell0 * d.C + k0;
    float v[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      v[j] = k0 + j < run ? to_f(yolo_decode_one<TO, TO, kFast>(d, to_f(tile[w * ld + a * d.C + c]), c,
                                                              (cell0 + w) * 2, grid, anchor))
                          : 0.f;
      if (++c == d.C) {
        c = 0;
        ++w;
      }
    }
    if (p.vec_out && k0 + 4 <= run) {
      store4<TO>(yrun, v);
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j)
        if (k0 + j < run) yrun[j] = from_f<TO>(v[j]);
    }
  }
}

// X with W innermost (plain NCHW): a block handles kTileW pixels of one (n, a, h) row; it reads
// [C][kTileW] along W (coalesced), transposes through shared memory and writes the contiguous
// [kTileW][C] output run.
constexpr int kTileW = 32;
constexpr int kTiledThreads = 256;

template <typename TX, typename TO>
__global__ void yolo_decode_tiled(DecodeParams p, const TX* __restrict__ x, const TO* __restrict__ grid,
                                  const TO* __restrict__ anchor, TO* __restrict__ y) {
  await_producers();
  extern __shared__ float tile[];  // [C][kTileW + 1]
  const YoloDecodeParams& d = p.d;
  const int tiles_w = (d.W + kTileW - 1) / kTileW;
  const int64_t b = blockIdx.x;
  const int tw = static_cast<int>(b % tiles_w);
  int64_t row = b / tiles_w;  // (n, a, h)
  const int h = static_cast<int>(row % d.H);
  const int64_t na = row / d.H;
  const int a = static_cast<int>(na % d.A);
  const int64_t n = na / d.A;
  const int w0 = tw * kTileW;
  const int wn = min(kTileW, d.W - w0);
  const TX* xs = x + n * p.sn + static_cast<int64_t>(a) * d.C * p.sc + h * p.sh + w0 * p.sw;
  for (int k = threadIdx.x; k < d.C * kTileW; k += blockDim.x) {
    const int c = k / kTileW, w = k % kTileW;
    if (w < wn) tile[c * (kTileW + 1) + w] = to_f(xs[c * p.sc + w * p.sw]);
  }
  __syncthreads();
  const int64_t g0 = ((static_cast<int64_t>(a) * d.H + h) * d.W + w0) * 2;
  TO* ys = y + n * d.out_pitch + ((static_cast<int64_t>(a) * d.H + h) * d.W + w0) * d.C;
  for (int k = threadIdx.x; k < wn * d.C; k += blockDim.x) {
    const int w = k / d.C, c = k % d.C;
    ys[k] = yolo_decode_one<TO>(d, tile[c * (kTileW + 1) + w], c, g0 + 2 * w, grid, anchor);
  }
}

class YoloDecodeKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    if (in.size() != 3 || !in[0] || !in[1] || !in[2] || out.size() != 1)
      return internal_error(node.describe() + ": expects X, GRID, ANCHOR_GRID and one output");
    const TensorInfo& x = *in[0];
    QYOLO_ASSIGN_OR_RETURN(YoloDecodeAttrs a, YoloDecodeAttrs::parse(node, x.shape));
    auto is_float = [](DataType t) { return t == DataType::kFloat32 || t == DataType::kFloat16; };
    const TensorInfo& o = out[0];
    if (!is_float(x.dtype) || !is_float(o.dtype))
      return unsupported(node.describe() + ": the CUDA kernel decodes float/half tensors only");
    if (o.layout != Layout::kPlain || o.shape != a.out_shape())
      return internal_error(node.describe() + ": output must be plain " + shape_str(a.out_shape()));
    for (int k = 1; k < 3; ++k)
      if (in[k]->dtype != o.dtype || in[k]->layout != Layout::kPlain || in[k]->shape != a.grid_shape())
        return internal_error(node.describe() + ": GRID/ANCHOR_GRID must be plain " + shape_str(a.grid_shape()) +
                              " in the output's type");
    if (a.n * a.num_anchors * a.channels > INT32_MAX || a.h > INT32_MAX || a.w > INT32_MAX)
      return unsupported(node.describe() + ": tensor too large");
    const auto st = x.strides();
    p_.total = o.numel();
    p_.sn = st[0];
    p_.sc = st[1];
    p_.sh = st[2];
    p_.sw = st[3];
    YoloDecodeParams& d = p_.d;
    d.A = static_cast<int>(a.num_anchors);
    d.C = static_cast<int>(a.channels);
    d.H = static_cast<int>(a.h);
    d.W = static_cast<int>(a.w);
    d.stride = a.stride;
    d.c1 = a.c1;
    d.c2 = a.c2;
    d.c3 = a.c3;
    d.square = a.c3 == 2.f;
    d.per_n = a.num_anchors * a.h * a.w * a.channels;
    d.out_pitch = d.per_n;
    d.out_half = o.dtype == DataType::kFloat16;
    x_half_ = x.dtype == DataType::kFloat16;
    out_half_ = o.dtype == DataType::kFloat16;
    smem_ = static_cast<size_t>(d.C) * (kTileW + 1) * sizeof(float);
    // Tiled when W is innermost and not the channels (plain NCHW): the flat kernel would read X
    // with a stride of H*W between neighbouring threads.
    rows_ = a.n * a.num_anchors * a.h;
    tiled_ = p_.sw == 1 && p_.sc != 1 && smem_ <= 48 * 1024 && rows_ * ((a.w + kTileW - 1) / kTileW) <= INT32_MAX;
    by_rows_ = !tiled_ && p_.sc == 1 && a.n <= 65535 && a.h <= 65535;
    // Staged (16-byte loads) when every pixel's channels can be read as whole 16-byte chunks
    // within its pitch; the base pointer's alignment is checked at enqueue.
    const int64_t vec = 16 / static_cast<int64_t>(x_half_ ? 2 : 4);
    const int64_t ld = (a.num_anchors * a.channels + vec - 1) / vec * vec;
    stage_smem_ = static_cast<size_t>(kStagePixels * ld) * (x_half_ ? 2 : 4);
    staged_ = by_rows_ && p_.sw >= ld && p_.sw % vec == 0 && p_.sh % vec == 0 && p_.sn % vec == 0 &&
              stage_smem_ <= 48 * 1024;
    p_.stage_ld = static_cast<int>(ld);
    return Status::ok();
  }

  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in, std::span<void* const> out) override {
    if (p_.total == 0) return Status::ok();
    if (x_half_) return out_half_ ? launch<__half, __half>(ctx, in, out) : launch<__half, float>(ctx, in, out);
    return out_half_ ? launch<float, __half>(ctx, in, out) : launch<float, float>(ctx, in, out);
  }

  // Concat in place (the detect head's final Concat): batch items `pitch` elements apart.
  bool set_output_pitch(PrepareContext&, int index, int64_t pitch) override {
    if (index != 0 || pitch < p_.d.per_n) return false;
    p_.d.out_pitch = pitch;
    return true;
  }

  std::optional<YoloDecodeParams> yolo_decode_params() const override { return p_.d; }

  std::string info() const override {
    return std::string(tiled_ ? "tiled" : staged_ ? "staged" : by_rows_ ? "rows" : "flat") +
           (p_.d.out_pitch != p_.d.per_n ? " in place" : "");
  }

 private:
  template <typename TX, typename TO>
  Status launch(const LaunchContext& ctx, std::span<const void* const> in, std::span<void* const> out) {
    const auto* x = static_cast<const TX*>(in[0]);
    const auto* g = static_cast<const TO*>(in[1]);
    const auto* an = static_cast<const TO*>(in[2]);
    auto* y = static_cast<TO*>(out[0]);
    const size_t out_align = sizeof(TO) * 4;
    if (staged_ && reinterpret_cast<uintptr_t>(x) % 16 == 0) {
      DecodeParams p = p_;
      p.vec_out = (static_cast<int64_t>(p.d.W) * p.d.C) % 4 == 0 && p.d.out_pitch % 4 == 0 &&
                  reinterpret_cast<uintptr_t>(y) % out_align == 0;
      const dim3 grid(static_cast<unsigned>((p.d.W + kStagePixels - 1) / kStagePixels), static_cast<unsigned>(p.d.H),
                      static_cast<unsigned>(p.total / p.d.per_n));
      launch_kernel(yolo_decode_staged<TX, TO>, grid, kStageThreads, stage_smem_, ctx.stream, ctx.programmatic, p, x,
                    g, an, y);
    } else if (tiled_) {
      const int64_t blocks = rows_ * ((p_.d.W + kTileW - 1) / kTileW);
      launch_kernel(yolo_decode_tiled<TX, TO>, static_cast<unsigned>(blocks), kTiledThreads, smem_, ctx.stream, ctx.programmatic, p_, x, g, an, y);
    } else if (by_rows_) {
      const dim3 grid(static_cast<unsigned>((p_.d.W + kRowPixels - 1) / kRowPixels), static_cast<unsigned>(p_.d.H),
                      static_cast<unsigned>(p_.total / p_.d.per_n));
      launch_kernel(yolo_decode_rows<TX, TO>, grid, kRowThreads, 0, ctx.stream, ctx.programmatic, p_, x, g, an, y);
    } else {
      constexpr int kThreads = 256;
      if (p_.total < (int64_t{1} << 31))
        launch_kernel(yolo_decode_flat<TX, TO, uint32_t>, grid_for(p_.total, kThreads), kThreads, 0, ctx.stream, ctx.programmatic, p_, x, g, an, y);
      else
        launch_kernel(yolo_decode_flat<TX, TO, uint64_t>, grid_for(p_.total, kThreads), kThreads, 0, ctx.stream, ctx.programmatic, p_, x, g, an, y);
    }
    QYOLO_CUDA_CHECK_LAUNCH("yolo_decode");
    return Status::ok();
  }

  DecodeParams p_{};
  bool x_half_ = false, out_half_ = false, tiled_ = false, by_rows_ = false, staged_ = false;
  size_t smem_ = 0, stage_smem_ = 0;
  int64_t rows_ = 0;
};

}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_yolo_decode(const Node&) {
  return std::unique_ptr<CudaKernel>(new YoloDecodeKernel());
}

}  // namespace qyolo::cuda
