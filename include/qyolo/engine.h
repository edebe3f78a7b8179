// qyolo public API: build an engine from ONNX, save/load it, run it.
//
//   auto engine = qyolo::Engine::build("yolov5s.onnx", {});          // FP32 on the CPU
//   auto ctx = (*engine)->create_context();
//   qyolo::Tensor out;
//   (*ctx)->run(input /*1x3x640x640 float*/, out);
//
// Engines are immutable and shareable; an ExecutionContext holds per-shape state (one per thread).
//
// GPU engines (device kCuda) also take device pointers on a caller's CUDA stream, like TensorRT's
// enqueueV3 (no CUDA headers here: streams and pointers are void*):
//
//   auto ctx = (*engine)->create_context();
//   (*ctx)->set_input_shape({8, 3, 640, 640});           // within the engine's profile
//   auto io = (*ctx)->bindings();                        // inputs first, then outputs
//   // cudaMalloc one buffer of b.nbytes() per binding (float32, row-major NCHW), then:
//   (*ctx)->enqueue({d_images}, {d_output0}, stream);    // async; never allocates or syncs
//   cudaStreamSynchronize(stream);
//
// One enqueue in flight per context (it owns the activation memory): use one context per
// concurrent stream. enqueue is capturable into a CUDA graph.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qyolo/status.h"
#include "qyolo/tensor.h"

namespace qyolo {

enum class Device { kCpu, kCuda };
enum class Precision { kFp32, kFp16, kInt8 };
const char* device_name(Device d);
const char* precision_name(Precision p);
Result<Device> parse_device(const std::string& s);
Result<Precision> parse_precision(const std::string& s);
// How the image input is given (TensorRT's --inputIOFormats): as the model declares it, float32
// NCHW scaled to [0, 1], or as the letterboxed bytes [N, H, W, C] uint8 that the engine scales
// itself (a quarter of the bytes to copy; on cuda the first conv reads them directly). Shapes
// (profiles, set_input_shape) stay the model's NCHW either way; bindings() shows the byte layout.
enum class InputFormat { kFloat32Nchw, kUint8Nhwc };
const char* input_format_name(InputFormat f);  // "float32-nchw", "uint8-nhwc"
Result<InputFormat> parse_input_format(const std::string& s);

// Allowed shapes of the image input of a dynamic model (like a TensorRT optimisation profile).
struct ShapeProfile {
  Shape min, opt, max;
  bool contains(const Shape& s) const;
};
// Parses "images:1x3x640x640" (name optional) into a shape.
Result<Shape> parse_shape_spec(const std::string& spec, std::string* name = nullptr);

struct BuildOptions {
  Device device = Device::kCpu;
  Precision precision = Precision::kFp32;
  // INT8: TensorRT calibration cache or PPQ json with per-tensor scales (not needed for Q/DQ models).
  std::string calibration_file;
  // INT8: nodes whose name matches this ECMAScript regex stay in float. Like the other precision
  // fields, a rule for the engine's precision plan, made once at build and stored in the engine file;
  // a loaded engine runs its stored plan (`qyolo info --engine E` lists it).
  std::string float_layers_regex;
  // Adjusted conv weights / biases (`qyolo calibrate --refine`, src/quant/weight_refine.h) that
  // replace the model's after its graph passes; stored in the engine file. Empty: none.
  std::string weights_file;
  // INT8 from a calibration cache: apply the activation equalisation that `qyolo calibrate` wrote
  // beside it (calibration_file + ".equalize", src/quant/equalization_sidecar.h) when there is one.
  // Not with weights_file (refined weights carry their own). Stored in the engine file as weights.
  // Both backends apply its per-channel multipliers in the producing conv's epilogue.
  bool equalization_sidecar = true;
  // INT8: per output channel, clip each conv's weights where that lowers their squared rounding
  // error (src/quant/weight_refine.h). Decided when the engine is built and stored in the engine
  // file (a loaded engine keeps what was stored). Not applied over weights_file (refined weights
  // are used as given), to Q/DQ models, nor with int8_fp16's per-layer choice (a conv that ends
  // up FP16 would run clipped weights). Off by default: the held-out proxy moved +0.70 points on
  // yolov5n and -2.13 on yolov5s (docs/weight-refine.md).
  bool weight_clip = false;
  // INT8 on the CPU: conv inputs bounded below by construction (SiLU outputs, lo = -0.2785, and
  // their max-pools, resizes, concats and residual sums) quantised on an asymmetric grid over
  // [lo, threshold] (a zero point; up to half the symmetric step) instead of [-threshold,
  // threshold]; threshold = 127 x the cache's scale. Decided at build and stored in the engine's
  // plan. Chosen on the calibration-side proxy (docs/accuracy.md). cuda engines quantise
  // symmetrically whatever this says (their INT8 kernels take no zero point), as TensorRT does;
  // false gives CPU engines the same symmetric grid (`--symmetric-activations`).
  bool asymmetric_activations = true;
  // INT8 on cuda: layers outside INT8 and the tensors between layers in FP16 instead of FP32
  // (TensorRT's --int8 --fp16): faster, further from the CPU INT8 reference.
  bool int8_fp16 = false;
  // With int8_fp16 on cuda: every INT8-eligible conv runs INT8. By default each build also times
  // the engine with the convs in FP16 (and the per-layer mix) and keeps the fastest, as TensorRT's
  // --int8 --fp16 does; this keeps INT8 even where FP16 would be faster.
  bool int8_all = false;
  // Models with their own Q/DQ: each output that ends in a QuantizeLinear -> DequantizeLinear pair
  // is computed in float instead (the rest keeps the model's scales). ONNX Runtime's quantizer gives
  // an output one step for boxes in pixels and scores in [0, 1] alike, which can round every score
  // to 0 (docs/quantized-models.md); an error when no output ends in such a pair.
  bool float_outputs = false;
  // Dynamic models: the allowed input shapes. Static models: ignored / must equal the model's.
  std::optional<ShapeProfile> profile;
  // The image input's format (see InputFormat); stored in the engine file.
  InputFormat input_format = InputFormat::kFloat32Nchw;
};

struct ModelInfo {
  std::string source;                     // ONNX path
  std::string input_name;                 // "images"
  std::vector<int64_t> input_dims;        // -1 for dynamic dims
  std::string output_name;                // "output0" (the first output)
  std::vector<std::string> output_names;  // every output, in the model's order
  std::vector<std::string> class_names;   // from ultralytics metadata ("names"); empty if absent
  std::string task;  // ultralytics metadata "task" ("detect", "segment", ...); "" if absent
  int stride = 32;   // ultralytics metadata "stride" (the largest head stride), else 32
  int opset = 0;
  bool has_qdq = false;  // the model carries its own Q/DQ scales
};

// One input or output of a context at its current input shape.
struct TensorBinding {
  std::string name;
  DataType dtype = DataType::kFloat32;
  Shape shape;
  bool is_input = false;
  size_t nbytes() const { return static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype); }
};

class ExecutionContext;

// The engine's precision plan (made once at build, stored in the engine file, lowered by the
// backend as it is; `qyolo info --engine E` lists it): every Conv with its precision, and every
// tensor held or read quantised with its storage between layers and its scale (real = scale * q).
struct EnginePlan {
  struct Node {
    std::string name;
    std::string precision;  // "fp32", "fp16" or "int8"
  };
  struct Tensor {
    std::string name;
    DataType storage = DataType::kFloat32;  // what is held between layers: int8, or the float type
    float scale = 0.f;                      // > 0: read quantised with this scale
    int32_t zero_point = 0;                 // real = scale * (q - zero_point); 0: symmetric
  };
  std::string float_precision;  // of the nodes not listed
  std::vector<Node> nodes;      // by name
  std::vector<Tensor> tensors;  // by name
};

// Empty where this CPU runs INT8 convolutions as designed; otherwise one sentence on how it falls
// short, for the user (no VNNI: oneDNN computes them with 7-bit weights, docs/cpu-int8.md).
std::string cpu_int8_caveat();

class Engine {
 public:
  ~Engine();
  // Imports, validates and prepares the model (at the profile's opt shape).
  static Result<std::shared_ptr<const Engine>> build(const std::string& onnx_path,
                                                     const BuildOptions& options);
  // Reads an engine file written by save(); errors on another format version or a corrupted file,
  // and for cuda engines on another GPU model / compute capability than the one it was built on.
  static Result<std::shared_ptr<const Engine>> load(const std::string& engine_path);
  // Writes atomically (temporary file + rename).
  Status save(const std::string& engine_path) const;

  const ModelInfo& info() const;
  const BuildOptions& options() const;
  ShapeProfile profile() const;
  EnginePlan precision_plan() const;
  Result<std::unique_ptr<ExecutionContext>> create_context() const;

  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

class ExecutionContext {
 public:
  ~ExecutionContext();
  // Runs one batch: input NCHW float32 within the profile (uint8 NHWC for an engine built with
  // InputFormat::kUint8Nhwc); output e.g. [N, 25200, 85] (the first output of the model). When
  // `output` already holds a tensor of that dtype and shape whose storage no other Tensor shares
  // (no copy, view or reshape of it is alive), a cpu engine writes the result into that storage: a
  // loop of run(x, out) allocates the output once. Otherwise `output` gets new storage, and tensors
  // that shared its old storage keep their values.
  Status run(const Tensor& input, Tensor& output);
  // Same, every output in info().output_names order (multi-output heads); each element of
  // `outputs` is reused like `output` above. On error `outputs` is left empty.
  Status run(const Tensor& input, std::vector<Tensor>& outputs);

  // Selects the input shape for bindings() and enqueue(): checks it against the engine's profile
  // and prepares the executor for it (built once per shape and cached; a cuda build reuses the
  // engine's tactics). Static engines start at their only shape; dynamic ones need this first.
  Status set_input_shape(const Shape& input_shape);
  // The shape set by set_input_shape() (empty while none is set).
  const Shape& input_shape() const;
  // Names, dtypes and shapes of the inputs (first, in enqueue order) and the outputs (then, in
  // enqueue order) at the current input shape. Works for cpu and cuda engines.
  Result<std::vector<TensorBinding>> bindings();
  // Cuda engines: launches one batch on `cuda_stream` (a cudaStream_t; nullptr is the legacy
  // default stream). device_inputs / device_outputs follow bindings() order and point to device
  // memory of at least nbytes() each, valid until the stream reaches this point. Asynchronous:
  // returns after launching. Errors on a cpu engine or a build without CUDA.
  Status enqueue(const std::vector<const void*>& device_inputs, const std::vector<void*>& device_outputs,
                 void* cuda_stream);

  struct Impl;
  explicit ExecutionContext(std::unique_ptr<Impl> impl);
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace qyolo
