// Build-time state of CudaExecutor, shared by the stages that turn a specialised graph into launch
// steps (one file each):
//   executor_lowering.cpp     nodes -> steps: values, dtype/layout conversions, kernels prepared
//   executor_conv_choice.cpp  which convs run INT8 or FP16 and on which kernel (timed at build)
//   executor_fusions.cpp      step-level fusions: requantisation, decode, concat in place
//   executor_schedule.cpp     concurrent branches (streams) and the activation arena
//   cuda_executor.cpp         build (the stages in order, the engine-level choice), enqueue, run
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backends/cuda/cuda_executor.h"

namespace qyolo {

namespace cuda_exec {
constexpr size_t kAlign = 256;
inline size_t align_up(size_t n) {
  return (n + kAlign - 1) / kAlign * kAlign;
}
inline bool is_float(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat16;
}
inline const char* layout_name(cuda::Layout l) {
  return l == cuda::Layout::kNHWC ? "nhwc" : l == cuda::Layout::kStrided ? "strided" : "plain";
}
// Host bytes of `t` in device dtype `dtype` (float <-> half conversion, int -> float for
// constants feeding arithmetic).
Result<std::vector<uint8_t>> constant_bytes(const Tensor& t, DataType dtype);
}  // namespace cuda_exec

struct CudaExecutor::Impl {
  using Layout = cuda::Layout;
  using TensorInfo = cuda::TensorInfo;
  explicit Impl(CudaExecutor& e) : ex(e) {}
  CudaExecutor& ex;
  std::unordered_map<std::string, int> ids;
  std::map<std::tuple<int, DataType, Layout>, int> converted;  // (value, dtype, layout) -> value
  std::map<std::pair<std::string, DataType>, int> uploaded;    // constant in a dtype -> value
  std::map<std::tuple<int, float, int>, int>
      quantized_values;  // (float value, scale or 0 for half, s2d) -> copy
  std::set<std::string> reaches_conv;
  std::set<const Node*> fp16_instead;  // INT8-eligible convs that time faster in FP16
  // The precision choice's cost model (sum of conv and quantize-pass times): the chosen mix and
  // every eligible conv in FP16, for the engine summary.
  double modelled_choice_ms = 0.0, modelled_fp16_ms = 0.0;
  cuda::PrepareContext pctx;

  int add_value(const std::string& name, TensorInfo info, Storage storage);

  // Device copy of constant `name` in `dtype` (plain layout).
  Result<int> constant_value(const std::string& name, DataType dtype);

  // A value holding `v` in `dtype`/`layout` (v itself, or a conversion step's output).
  Result<int> as(int v, DataType dtype, Layout layout);

  Status add_convert_step(int in, int out, const std::string& label);

  // int8 NHWC copy of value `v` (channels padded to 16) quantised with `scale`, for INT8 convs.
  Result<int> quantized(int v, float scale, int s2d) { return packed_input(v, s2d, scale); }
  // Half NHWC space-to-depth copy (s2d > 1, channels padded to 16) for an FP16 stem conv.
  Result<int> space_to_depth_half(int v, int s2d) { return packed_input(v, s2d, std::nullopt); }

  // The conv-input copies above (one step each, memoised per value): quantised when `scale` is
  // given, half otherwise.
  Result<int> packed_input(int v, int s2d, std::optional<float> scale);

  // Whether this Conv runs on the INT8 tensor-core kernel: INT8 build, a calibrated input scale
  // (quantize_graph), sm_80+, group 1, 2-D, constant weights. Other convs run in fp16.
  bool int8_conv(const Node& node) const;
  // An INT8 conv (with half between layers) reads its fused residual as int8: the copy the
  // residual's producer requantises anyway when INT8 convs read that value (C3 bottlenecks: the
  // block input feeds the next 1x1 conv and the residual), so no half copy is written for it.
  bool int8_residual(const Node& node) const;
  bool int8_eligible(const Node& node) const;

  // --int8 --fp16: the conv on the image stays on the direct FP16 stem kernel (int8_fp16_stem).
  bool fp16_image_stem(const Node& node) const;
  // The conv on the uint8 engine input's float image, run INT8 by the direct stem kernel on the bytes.
  bool int8_image_stem(const Node& node) const;

  // The direct fp16 stem kernel: a conv reading a plain fp32 value of <= 4 channels (the image).
  bool direct_stem(const Node& node, const TensorInfo& out) const;

  // --int8 --fp16: an INT8 conv feeding only the fp32 tail (a detect head) whose half output an
  // FP16 conv would pad (computed_channels: 255 -> 256) writes half padded the same way, so that
  // cuDNN's INT8 engines can run it; the decode is then its own pass. (Unpadded, it writes fp32
  // with the decode fused into our kernel's epilogue: 2.5x slower on yolov5s b32, 0.63 against
  // 0.25 ms.)
  bool int8_head_padded(const Node& node) const;

  // What an INT8 conv writes: fp32 from its fp32 epilogue when only the fp32 tail (the detect
  // head) reads it, unless it is a padded head; half otherwise.
  DataType int8_output_dtype(const Node& node) const;

  // Output channels an fp16 cuDNN conv computes: K rounded up to 8 when fp16_pad_channels applies
  // (fp16 NHWC output, no residual), else K.
  int64_t computed_channels(const Node& node, const TensorInfo& out) const;

  bool fp16_stem_s2d(const Node& node, const TensorInfo& out) const;

  // Space-to-depth factor for an INT8 conv's input: a stride-s conv whose kernel and leading pads
  // are multiples of s, on so few channels that s*s*C still fits the 16-channel granule (the
  // 6x6/2 stem on RGB: 16 instead of 3 -> 16 padded channels, and a quarter of the MACs).
  int space_to_depth_factor(const Node& node) const;

  // --int8 --fp16, as TensorRT's --int8 --fp16: each INT8-eligible conv runs INT8 or FP16,
  // whichever makes the engine faster. Every such conv is timed both ways first (measure_conv):
  // INT8 with its fused epilogue (our kernel or cuDNN's INT8 engine, whichever its prepare
  // chose), FP16 as its step runs, and the quantize pass INT8 needs when its input does not come
  // requantised from INT8 producers. A conv's best choice depends on its neighbours' (who pays
  // for that pass: one pass serves every INT8 reader of a value), so the choice is a local search
  // over the whole assignment on that cost model: from "all FP16", from "INT8 wherever its kernel
  // is faster" and from "all INT8", flip single convs while the modelled time drops; keep the
  // best. (build() then times the real engine against all-FP16.)
  struct ConvTiming {
    float t8 = -1.f, t16 = -1.f;  // ms; < 0: that side cannot run this conv
    float quant = 0.f;            // the quantize pass (or space-to-depth quantize) INT8 would need
    float t16_extra = 0.f;        // the half space-to-depth copy an FP16 stem would need
  };

  // kAllFp16 / kAllInt8: every eligible conv that can go FP16 / INT8 does (the engine-level
  // comparison); kModelled: the cost model's best assignment.
  Status choose_conv_precisions(PrecisionVariant variant);

  // CudaBuildOptions::plan: the eligible convs the plan keeps out of INT8 run in the float
  // precision; a conv it puts in INT8 that cannot run INT8 here is an error naming it.
  Status lower_plan_precisions(const PrecisionPlan& plan);

  // Times one INT8-eligible conv both ways on scratch (stored as a tactic by problem, in
  // nanoseconds, so engine files reproduce the choice). Both kernels are discarded: add_node
  // prepares the chosen one again from the cached tactics.
  Status measure_conv(const Node& node, ConvTiming& t);

  // Time of a one-input pass the executor would insert (quantize, space-to-depth) from `src` to
  // `dst`; 0 when the kernel does not take these tensors.
  Result<float> time_pass(cuda::CudaKernel& k, const TensorInfo& src, const TensorInfo& dst);

  // Mean time of one enqueue of a prepared kernel on zeroed scratch tensors (constant and omitted
  // inputs are passed as null, as the executor does), with its own workspace.
  Result<float> time_kernel(cuda::CudaKernel& k, const std::vector<const TensorInfo*>& ins,
                            const std::vector<TensorInfo>& outs);

  // INT8 convs whose output is read by quantize steps write the int8 copy themselves.
  void fuse_requantization();

  // uint8 image input: a QyoloImageToFloat step whose float image only a kernel that can read the
  // bytes takes (the direct stem conv) goes; that kernel reads the uint8 image instead.
  void fuse_image_input();

  // Every kernel learns which of its outputs are written (the others stay null) and settles its
  // implementation for that.
  Status finalize_kernels();

  void drop_steps(const std::vector<bool>& drop);

  // Float conv outputs nobody reads any more (requantised or placed into a concat instead) are not
  // written (their producer gets nullptr).
  void drop_unread_outputs();

  // The value whose storage `v` views (through reshape views and concat slices).
  int root_of(int v) const;

  // The step writing each value (-1: none).
  std::vector<int> step_producers() const;

  // The non-alias steps reading each value, directly or through reshape views of it.
  std::vector<std::vector<int>> step_readers() const;

  // Turns `v` into a slice of `base`, `offset` bytes in (the producer already writes it pitched).
  void make_slice(int v, int base, size_t offset);

  // The detect head: an INT8 head conv whose output only the YOLO decode reads applies the decode
  // in its epilogue and writes the decode's output (one pass instead of a write + read of the raw
  // head tensor, and one launch less).
  void fuse_yolo_decodes();

  // Concat in place (TensorRT's concat elision). Three patterns:
  //  (a) INT8: a channel Concat read only by a quantize step (the next INT8 conv's input), whose
  //      inputs all come from INT8 convs and are read by nothing else. Quantising a concat is
  //      quantising each part with the same scale, so each producer requantises its output into
  //      its channel slice of the int8 buffer: the concat and quantize passes go, bit for bit.
  //  (b) a Concat whose inputs are all outputs (or reshape views of outputs) that only it reads,
  //      of kernels that can write with a row pitch (the YOLO decode into the detect output).
  //  (c) a channel Concat of NHWC values: each input that only the concat reads, from a kernel
  //      that can write with a pixel pitch (cuDNN convs re-planned with a strided output, INT8
  //      convs, resize), is written into its channel slice; the concat copies only the rest
  //      (inputs read elsewhere too, the SPPF pools and the neck's skip connections) and goes
  //      when nothing is left.
  Status place_concats();

  // Concat in place on the INT8 path: the INT8 conv step `ps` writing `v` also writes it requantised
  // with `scale` into channels [coff, coff + C) of the int8 concat buffer `vq`.
  Status requantise_into_slice(int ps, int v, int vq, int64_t coff, float scale,
                               const std::string& concat_label);

  // Pattern (e) of place_concats (SPPF on int8): a concat read by quantize step `qs` whose inputs
  // are one INT8 conv's output and MaxPools chained from it. Max commutes with quantisation, so
  // the conv requantises into its slice of the int8 buffer and each pool runs on int8 from its
  // source's slice into its own: the half pools, the concat and the quantize pass go, with the
  // same int8 bytes. Returns why not (nothing changed) when the concat is not of that shape, or
  // an empty string when done.
  Result<std::string> int8_pool_chain(size_t ci, int qs, const std::vector<int>& producer,
                               const std::vector<std::vector<int>>& readers);

  // Pattern (d) of place_concats for concat step `ci` and the quantize step `qs` reading it: false
  // (nothing changed) when some input fits neither way.
  Result<bool> quantize_concat(size_t ci, int qs, const std::vector<int>& producer,
                               const std::function<bool(int, int)>& only_reader);

  // Concurrent branches. A step whose last producer ran well before it needs nothing from the
  // steps in between (a C3's cv2 reads the block input, a detect-head conv reads a neck output the
  // rest of the neck goes on from): it runs on the side stream from just after that producer
  // (fork event) until just before its first reader (join event), overlapping them. Fills
  // `window`: the step indices during which each step may run, for the memory plan.
  Status assign_streams();

  void compute_reaches_conv();

  DataType output_dtype(const Node& node, const std::string& out, DataType onnx_dtype) const;

  Status add_node(const Node& node, bool nhwc);

  // Reshape family: the output views the input's memory (strided when the input is NHWC or
  // already a view and no copy is needed), in the input's dtype.
  Status add_alias_node(const Node& node, const cuda::CudaOpTraits* tr);

  // Liveness-based offsets into one arena (greedy, largest first).
  void plan_memory();

  size_t arena_size = 0;
  std::vector<std::pair<int, int>> window;  // per step: [first, last] step index it may run during
};

}  // namespace qyolo
