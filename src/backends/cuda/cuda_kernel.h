// CUDA backend: one kernel class per op stem (src/backends/cuda/<stem>.cu), mirroring the CPU
// backend. Build phase: the factory + prepare() see final shapes, device dtypes and layouts, and
// constant inputs (upload weights, create cuDNN descriptors, choose algorithms, fill a POD params
// struct). Run phase: enqueue() launches on the given stream with raw pointers and the shared
// workspace; it never allocates or synchronises.
#pragma once

#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backends/cuda/cuda_check.h"
#include "ir/graph.h"
#include "ir/precision_plan.h"

namespace qyolo {

struct ConvAttrs;

// kInt8: convolutions carrying a calibrated input scale (qyolo_input_scale) run as int8 x int8 ->
// int32 on tensor cores; everything else runs as in kFp16.
enum class CudaPrecision { kFp32, kFp16, kInt8 };
enum class CudaLayout { kAuto, kNCHW, kNHWC };

const char* cuda_precision_name(CudaPrecision p);

struct CudaBuildOptions {
  CudaPrecision precision = CudaPrecision::kFp32;
  int device = 0;
  size_t workspace_limit = size_t{256} << 20;  // per-convolution cuDNN workspace cap
  // Activation layout of rank-4 tensors: kAuto = NHWC for fp16 (tensor cores), NCHW for fp32.
  CudaLayout layout = CudaLayout::kAuto;
  // fp16: values no convolution depends on (the YOLO detect-head decode: grids, anchors, box
  // coordinates up to 640 px) stay fp32, so output boxes keep float resolution.
  bool fp32_tail = true;
  // cudnnFindConvolutionForwardAlgorithmEx (times every algorithm) instead of the heuristic.
  bool exhaustive_tuning = true;
  // fp32 convolutions may use TF32 tensor cores (off: true fp32, CUDNN_FMA_MATH).
  bool allow_tf32 = false;
  // fp16 (and TF32) convolutions through the cuDNN graph API, timing the engines its heuristics
  // propose (falls back to the legacy API per convolution when no engine fits).
  bool cudnn_graph = true;
  int graph_max_plans = 10;
  // Runtime-fusion (NVRTC) engines timed per cuDNN INT8 conv: each costs a compile at build
  // (bench_gpu --int8-plans N).
  int cudnn_int8_max_plans = 4;
  // fp16: also try each convolution with bias/activation/residual fused into the cuDNN graph
  // (runtime-compiled fusion engines, NVRTC at build and at engine load): 0 never, 1 where it
  // times faster than the plain plan plus qyolo's epilogue pass, 2 wherever cuDNN has an engine
  // for it (tests).
  int cudnn_fused_epilogue = 1;
  // fp16 NHWC: a stride-s conv on so few channels that s*s*C fits 16 (the 6x6/2 stem on RGB) runs
  // as a stride-1 conv on a space-to-depth copy of its input (cuDNN is slow on 3 channels).
  bool fp16_space_to_depth = true;
  // fp16 NHWC, sm_80+: a conv on at most 4 fp32 NCHW input channels (the stem on the image) runs on
  // qyolo's direct tensor-core kernel, reading the image itself (conv2d_stem.cu); otherwise as above.
  bool fp16_direct_stem = true;
  // The INT8 image stem's epilogue converts int <-> float with full-rate adds instead of the
  // quarter-rate conversion instructions (same integers; bench_gpu --stem-conversions turns it off).
  bool stem_conversion_free = true;
  // The INT8 image stem with stride 2 and even taps/padding runs on 2x2 space-to-depth blocks
  // with ldmatrix fragments (conv2d_stem.cu; bench_gpu --no-stem-s2d: the tap-table kernel, which
  // other geometries, e.g. a 3x3 stride-2 stem, take). Byte for byte the tap-table kernel's
  // integers (GPU test CudaInt8.ImageStemRunsInt8OnTheBytes); yolov5s b32 2.258 against 2.336 ms.
  bool stem_s2d = true;
  // uint8 image input (InputFormat::kUint8Nhwc): the direct stem conv reads the bytes itself and the
  // QyoloImageToFloat step goes (no float image in memory; bench_gpu --no-bytes-stem).
  bool stem_reads_bytes = true;
  // --int8 --fp16 with the uint8 image input: the stem conv is an INT8 conv of the plan, run by the
  // direct stem kernel on the bytes as they are (u8 image x s8 per-channel weights, mma.sync
  // m16n8k32, int32 accumulation; the image's exact 1/255 grid instead of the calibrated int8
  // scale). Off (bench_gpu --fp16-image-stem): the FP16 stem as with the float image.
  bool int8_image_stem = true;
  // fp16 NHWC convs whose output channel count is not a multiple of 8 (the detect heads' 255)
  // compute up to the next multiple with zero weights (cuDNN is 2-3x faster); readers see a
  // strided view of the first channels.
  bool fp16_pad_channels = true;
  // fp16 NHWC 1x1 stride-1 convs are also one cuBLASLt GEMM (cublaslt_gemm.cpp): 0 never, 1 where
  // it times faster than the cuDNN choice (both with the epilogue they need), 2 wherever cuBLASLt
  // has an algorithm (tests).
  int cublaslt_convs = 1;
  // Tactic choices from an earlier build on the same GPU (engine file), by problem key: reused
  // instead of timing again. CudaExecutor::tactics() returns what a build chose.
  std::map<std::string, std::vector<int64_t>> tactics;
  // kInt8: the float type of everything not INT8 (tensors between layers, other layers): fp32
  // (default, closest to the CPU INT8 backend) or fp16 (TensorRT's --int8 --fp16; faster).
  bool int8_fp16 = false;
  // With int8_fp16: time each INT8-eligible conv both ways (our INT8 kernel vs cuDNN FP16) and keep
  // the faster, as TensorRT does with --int8 --fp16. Off: every eligible conv runs INT8.
  bool int8_fp16_choose = true;
  // An engine's precision plan (src/ir/precision_plan.h): exactly the convs it puts in INT8 run
  // INT8 (an error names one that cannot), the others in the float precision; no per-layer choice.
  // Unset: the rules above decide (CudaExecutor::conv_precisions() says what they chose).
  std::optional<PrecisionPlan> plan;
  // With int8_fp16: a conv the direct FP16 stem kernel runs (on the fp32 image, fp16_direct_stem)
  // stays FP16 and writes the int8 copy its INT8 readers take itself. As INT8 it needs a
  // space-to-depth quantize pass over the image first and runs slower on the 3 channels (yolov5s
  // b32: 0.16 + 0.31 ms against 0.26). Off: INT8 like the other eligible convs.
  bool int8_fp16_stem = true;
  // INT8 convolutions: force one implicit-GEMM tactic (tests, debugging); -1 times them all.
  int int8_tactic = -1;
  // Concat in place: producers that can write into their slice of a concat's buffer do so, and
  // the concat (and, on the INT8 path, its quantize pass) disappears. Off: tests compare.
  bool concat_in_place = true;
  // With concat in place on the INT8 path: SPPF's max-pools run on int8 inside the concat's int8
  // buffer (exact: max commutes with quantisation). Off: half pools and a quantize-concat.
  bool int8_pools = true;
  // INT8 detect-head convs apply the YOLO decode in their epilogue (no separate decode pass).
  bool fuse_head_decode = true;
  // Concurrent branches: a step whose inputs were ready well before it (a C3's second 1x1 conv,
  // the detect-head convs) runs on a second stream, overlapping the steps in between (the GPU is
  // mostly idle between the small kernels of batch 1). Off: one stream (tests compare).
  bool concurrent_branches = true;
  // INT8 convs with half between layers (int8_fp16): also time cuDNN's runtime-fusion INT8
  // engines (int8 x/w, int32 accumulation, dequantise + bias + activation + residual [+
  // requantise] fused, NVRTC at build and load) against our kernel and keep the faster: 0 never,
  // 1 where faster, 2 wherever cuDNN has an engine (tests).
  int cudnn_int8 = 1;
  // A cuDNN INT8 conv whose output is read both as half (a residual) and as int8 (INT8 convs)
  // first tries one graph writing both (GraphConvProblem::int8_copy) before the half output plus
  // our requantisation pass (bench_gpu --no-cudnn-int8-copy).
  bool cudnn_int8_copy = true;
  // With int8_fp16: an INT8 conv with a fused residual whose value has a calibrated scale
  // (qyolo_residual_scale) reads it as int8 (the copy its producer requantises for the INT8 convs
  // that read it anyway), so the producer writes no half copy for it. Off (default): the residual
  // is half. Off by default because the calibrated scale clips the identity path: calibrators that
  // clip outliers (entropy, percentile, mse) would cut large residual values the CPU INT8 engine
  // adds in float (GPU test ResidualReadAsInt8, device run 2 of session 8), and it made no engine
  // faster on yolov5s b32 (NOTES.md).
  bool int8_residual = false;
  // sm_90+: our kernels launch with programmatic dependent launch, so each can start launching
  // while the kernel before it in the stream finishes (cuda_common.cuh await_producers). A
  // run-time setting: engine files do not store it. Off: plain launches (bench_gpu --no-pdl).
  bool programmatic_launch = true;
};

namespace cuda {

// Physical layout of a value. kPlain is row-major in logical dim order; kNHWC applies to rank-4
// values whose logical shape stays N, C, H, W.
// kStrided: a view with arbitrary element strides (a reshape of an NHWC value, say); only
// strided-access kernels (binary ops, data movement) read it, others get a converted copy.
enum class Layout : uint8_t { kPlain, kNHWC, kStrided };

struct TensorInfo {
  DataType dtype = DataType::kFloat32;  // device element type
  Shape shape;                          // logical shape
  Layout layout = Layout::kPlain;
  const Tensor* constant = nullptr;     // host value (original dtype) for constants
  std::vector<int64_t> view;            // kStrided: element strides per logical dim
  // Quantised int8 NHWC inputs of INT8 convs: space-to-depth factor. s > 1: the value is
  // [N, Cp, H/s, W/s] holding x[n, c, i*s+dy, j*s+dx] at channel (dy*s + dx) * C + c, which turns
  // a stride-s conv on few channels (the 6x6/2 stem on RGB) into a stride-1 conv on s*s*C.
  int s2d = 1;

  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  // Element strides per logical dim (0 is never used; size-1 dims get their natural stride).
  std::vector<int64_t> strides() const;
};

// Row-major strides of a shape.
std::vector<int64_t> plain_strides(const Shape& s);
// Elements between pixels of a rank-4 value stored channels-innermost: C for NHWC, the concat
// buffer's channel count for a strided NHWC slice of one (concat in place); nullopt otherwise.
std::optional<int64_t> nhwc_pixel_pitch(const TensorInfo& t);
// Strides of `new_shape` viewing memory laid out as (old_shape, old_strides) without a copy, or
// nullopt when no view exists (PyTorch's view rule).
std::optional<std::vector<int64_t>> view_strides(const Shape& old_shape, const std::vector<int64_t>& old_strides,
                                                 const Shape& new_shape);
// Equal strides on every dim of size > 1 (size-1 dims never move the address).
bool same_strides(const Shape& shape, const std::vector<int64_t>& a, const std::vector<int64_t>& b);

struct PrepareContext {
  cudnnHandle_t cudnn = nullptr;
  cublasLtHandle_t cublaslt = nullptr;
  cudaStream_t stream = nullptr;
  const CudaBuildOptions* options = nullptr;
  const cudaDeviceProp* prop = nullptr;
  int64_t opset = 0;
  // Scratch for algorithm search (allocated on first use, freed after the build).
  DeviceBuffer* tuning_workspace = nullptr;
  // Memoised algorithm choices, by a key that describes the problem.
  std::map<std::string, std::vector<int64_t>>* tune_cache = nullptr;
  // Device bytes of weights this build uploaded (reporting).
  size_t* weight_bytes = nullptr;
  // Build-time objects shared between kernels solving the same problem (e.g. cuDNN plans).
  std::map<std::string, std::shared_ptr<void>>* object_cache = nullptr;
};

struct LaunchContext {
  cudaStream_t stream = nullptr;
  cudnnHandle_t cudnn = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  cublasLtHandle_t cublaslt = nullptr;  // stream-free: safe on the side stream too
  // Our kernels launch with programmatic dependent launch (cuda_common.cuh launch_kernel).
  bool programmatic = false;
};

// One detect level's box decode (QyoloYoloDecode, yolo_decode.cu), as the head conv fuses it:
// output [N][A][H][W][C], batch items out_pitch elements apart; GRID/ANCHOR_GRID [A][H][W][2] on
// the device in the output's type.
struct YoloDecodeParams {
  int A = 0, C = 0, H = 0, W = 0;
  float stride = 0.f, c1 = 0.f, c2 = 0.f, c3 = 0.f;
  int square = 0;  // c3 == 2: pow as a product
  int64_t per_n = 0, out_pitch = 0;
  int out_half = 0;
  const void* grid = nullptr;
  const void* anchor = nullptr;
};

class CudaKernel {
 public:
  virtual ~CudaKernel() = default;
  virtual Status prepare(PrepareContext& ctx, const Node& node, std::span<const TensorInfo* const> inputs,
                         std::span<const TensorInfo> outputs) = 0;
  // Scratch the kernel needs at enqueue (shared by all kernels; valid only during the launch).
  virtual size_t workspace_bytes() const { return 0; }
  // inputs[i] is nullptr for omitted inputs and for host-parameter inputs (see CudaOpTraits).
  virtual Status enqueue(const LaunchContext& ctx, std::span<const void* const> inputs,
                         std::span<void* const> outputs) = 0;
  // INT8 producers: also write the output requantised with `scale` as a second output (int8,
  // same NHWC shape). Returns false when this kernel cannot.
  virtual bool fuse_quantized_output(float scale) {
    (void)scale;
    return false;
  }
  // Concat in place: output `index` becomes a slice of a larger buffer (the executor offsets the
  // pointer) whose rows are `pitch` elements apart. A row is one pixel's channels for NHWC outputs
  // and one batch item for plain ones. Build phase (kernels may re-plan: cuDNN). Returns false,
  // changing nothing, when this kernel cannot.
  virtual bool set_output_pitch(PrepareContext& ctx, int index, int64_t pitch) {
    (void)ctx;
    (void)index;
    (void)pitch;
    return false;
  }
  // uint8 image input: input 0 becomes the uint8 [N, H, W, C] image that a QyoloImageToFloat step
  // would turn into this kernel's float NCHW input (x / 255), so that step goes. Build phase.
  // Returns false, changing nothing, when this kernel cannot read the bytes.
  virtual bool read_image_bytes(PrepareContext& ctx) {
    (void)ctx;
    return false;
  }
  // The YOLO decode kernel: its parameters (grid/anchor pointers left null), for fusion.
  virtual std::optional<YoloDecodeParams> yolo_decode_params() const { return std::nullopt; }
  // Head convs: apply the decode in the epilogue and write its output instead of the conv's.
  // Returns false when this kernel cannot.
  virtual bool fuse_yolo_decode(const YoloDecodeParams& d) {
    (void)d;
    return false;
  }
  // Build phase, after the executor's passes (requantisation, concat in place, decode fusion):
  // written[i] says whether output i is written (false: it gets nullptr, nobody reads it).
  // Kernels whose best implementation depends on that choose now.
  virtual Status finalize(PrepareContext& ctx, std::span<const bool> written) {
    (void)ctx;
    (void)written;
    return Status::ok();
  }
  // Time of one launch measured while choosing the algorithm at build; 0 when not measured
  // (reused tactic). Lets the executor compare implementations of one layer.
  virtual float tuned_ms() const { return 0.f; }
  // Short description of the choices made (algorithm, path), for engine summaries.
  virtual std::string info() const { return {}; }
};

using CudaKernelFactory = Result<std::unique_ptr<CudaKernel>> (*)(const Node& node);

// What the executor must know about an op before preparing it.
struct CudaOpTraits {
  const char* stem = "";
  CudaKernelFactory factory = nullptr;
  bool alias = false;            // output 0 is input 0's storage, reinterpreted (reshape family)
  uint32_t host_inputs = 0;      // bitmask: inputs read at prepare as constants, never bound
  bool any_float_inputs = false; // float inputs may differ from the output dtype (data movement)
  bool nhwc_output = false;      // a rank-4 output may be NHWC when its first input is
  bool compute = true;           // needs float outputs (arithmetic); false: moves any dtype
};

// nullptr when the CUDA backend has no kernel for this op type.
const CudaOpTraits* find_cuda_op(std::string_view op_type);

// Kernel factories (one per supported stem).
Result<std::unique_ptr<CudaKernel>> make_cuda_conv2d(const Node& node);
// INT8 conv (conv2d_int8.cu): input 0 is the quantised NHWC int8 value (channels padded to 16).
Result<std::unique_ptr<CudaKernel>> make_cuda_conv2d_int8(const Node& node);
// Direct fp16 stem conv (conv2d_stem.cu): fp32 NCHW input with <= 4 channels, fp16 NHWC output,
// bias and activation fused, sm_80+; conv2d_stem_supports says which convs fit.
Result<std::unique_ptr<CudaKernel>> make_cuda_conv2d_stem(const Node& node);
// The INT8 form (int8_image_stem): needs read_image_bytes before it runs.
Result<std::unique_ptr<CudaKernel>> make_cuda_conv2d_image_stem_int8(const Node& node);
bool conv2d_stem_supports(const Shape& x, const Shape& w, const ConvAttrs& a);
// Allocates the build's algorithm-search scratch (the largest size up to the workspace limit) once.
void ensure_tuning_workspace(PrepareContext& ctx);
int cuda_int8_tactic_count();
Result<std::unique_ptr<CudaKernel>> make_cuda_unary(const Node& node);
// QyoloImageToFloat: uint8 NHWC image -> fp32 plain NCHW / 255 (image_to_float.cu).
Result<std::unique_ptr<CudaKernel>> make_cuda_image_to_float(const Node& node);
Result<std::unique_ptr<CudaKernel>> make_cuda_binary(const Node& node);
Result<std::unique_ptr<CudaKernel>> make_cuda_concat(const Node& node);
Result<std::unique_ptr<CudaKernel>> make_cuda_max_pool(const Node& node);
Result<std::unique_ptr<CudaKernel>> make_cuda_resize(const Node& node);
Result<std::unique_ptr<CudaKernel>> make_cuda_reshape(const Node& node);
Result<std::unique_ptr<CudaKernel>> make_cuda_transpose(const Node& node);
Result<std::unique_ptr<CudaKernel>> make_cuda_split(const Node& node);
Result<std::unique_ptr<CudaKernel>> make_cuda_slice(const Node& node);
Result<std::unique_ptr<CudaKernel>> make_cuda_yolo_decode(const Node& node);
// Internal: copies one value into another of the same logical shape, converting dtype/layout.
std::unique_ptr<CudaKernel> make_cuda_convert();
// Internal: quantises a float value (plain or NHWC) to int8 NHWC with channels padded to the
// output's channel count: q = round(x / scale), saturated to [-127, 127]; with space-to-depth
// factor s2d > 1 (TensorInfo::s2d) on the way.
std::unique_ptr<CudaKernel> make_cuda_quantize(float scale, int s2d = 1);
// Internal: a channel concat of NHWC float values quantised straight into an int8 NHWC buffer:
// input i (channels a multiple of 8) goes to channels [offset_i, offset_i + C_i) with `scale`.
// int8 inputs (NHWC, or strided NHWC slices) are requantised from their source_scales[i].
std::unique_ptr<CudaKernel> make_cuda_quantize_concat(float scale, std::vector<int64_t> channel_offsets,
                                                     std::vector<float> source_scales = {});
// Internal: the same gather into half NHWC [N, Cp, H/s, W/s] (s > 1) without quantising, for the
// FP16 stem conv.
std::unique_ptr<CudaKernel> make_cuda_space_to_depth_half(int s2d);

}  // namespace cuda

// Whether the CUDA backend has a kernel for this node (op type and the attributes it checks
// without shapes). CudaExecutor::build gives the precise error for anything else.
bool cuda_supports(const Node& node);
// The op types the CUDA backend implements.
std::vector<std::string> cuda_supported_ops();

}  // namespace qyolo
