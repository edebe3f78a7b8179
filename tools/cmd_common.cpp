#include "cmd_common.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "ir/file_io.h"

namespace qyolo::cli {

void add_engine_options(CLI::App* cmd, EngineArgs& a, bool allow_engine_file, bool with_precision) {
  cmd->add_option("--model,-m", a.model, "ONNX model file");
  if (allow_engine_file) cmd->add_option("--engine,-e", a.engine, "engine file written by `qyolo build`");
  cmd->add_option("--device", a.device, "cpu or cuda")->capture_default_str();
  if (with_precision) {
    cmd->add_flag("--int8", a.int8, "run convolutions in INT8 (needs --cache, or a Q/DQ model)");
    cmd->add_flag("--fp16", a.fp16, "FP16 (CUDA device); with --int8: FP16 for what is not INT8 (else FP32)");
    cmd->add_flag("--all-int8", a.all_int8,
                  "with --int8 --fp16 (cuda): every eligible conv in INT8, even where FP16 times faster");
    cmd->add_option("--cache,--calib-cache", a.cache, "TensorRT calibration cache or PPQ json (INT8 scales)");
    cmd->add_option("--float-layers,--fp16-layers", a.float_layers,
                    "regex: layers that stay in float under --int8");
    cmd->add_option(
        "--refined-weights", a.refined_weights,
        "INT8: weights file of `qyolo calibrate --refine/--equalize` (clipped conv weights, corrected "
        "biases, activation equalisation factors; use it with the cache written alongside)");
    cmd->add_flag("--no-equalization", a.no_equalization,
                  "INT8: ignore the activation equalisation that `qyolo calibrate` wrote beside the cache "
                  "(CACHE.equalize; applied by default when present)");
    cmd->add_flag(
        "--symmetric-activations", a.symmetric_activations,
        "INT8 on the CPU: quantise every activation on the symmetric grid, as TensorRT and the CUDA "
        "engines do (default: SiLU outputs and their pools, concats, residual sums on an asymmetric "
        "grid over [-0.2785, threshold], a zero point, up to half the step)");
    cmd->add_flag(
        "--weight-clip", a.weight_clip,
        "INT8: clip each conv's weights per output channel where that lowers their squared rounding "
        "error (chosen at build, stored in the engine file; docs/weight-refine.md)");
  }
  cmd->add_flag(
      "--float-output", a.float_output,
      "Q/DQ models: compute outputs in float, without the QuantizeLinear/DequantizeLinear that ends "
      "them (an output quantized for boxes in pixels can round every score to 0)");
  cmd->add_option("--input-format", a.input_format,
                  "image input: float32-nchw (the model's, scaled to [0, 1]) or uint8-nhwc (the letterboxed "
                  "bytes, scaled by the engine; on cuda the first conv reads them directly)")
      ->capture_default_str();
  cmd->add_option("--min-shapes", a.min_shapes, "dynamic models: e.g. images:1x3x320x320");
  cmd->add_option("--opt-shapes", a.opt_shapes, "dynamic models: e.g. images:1x3x640x640");
  cmd->add_option("--max-shapes", a.max_shapes, "dynamic models: e.g. images:32x3x1280x1280");
}

void add_imgsz_option(CLI::App* cmd, std::vector<int>& imgsz, const std::string& what) {
  cmd->add_option("--imgsz", imgsz, what + ": one value (square) or H W; default: the model's own size")
      ->expected(1, 2);
}

Result<std::pair<int, int>> image_size_from(const std::vector<int>& imgsz) {
  if (imgsz.empty()) return std::pair{0, 0};
  for (int v : imgsz)
    if (v <= 0) return invalid_argument("--imgsz must be positive, got " + std::to_string(v));
  return std::pair{imgsz[0], imgsz.size() == 2 ? imgsz[1] : imgsz[0]};
}

Result<std::pair<int, int>> image_size_for(const std::vector<int>& imgsz, const Engine& engine) {
  QYOLO_ASSIGN_OR_RETURN(auto hw, image_size_from(imgsz));
  const ShapeProfile p = engine.profile();
  if (hw.first == 0) hw = {static_cast<int>(p.opt[2]), static_cast<int>(p.opt[3])};
  return hw;
}

void add_nms_options(CLI::App* cmd, float& conf, float& iou, int& max_det, const std::string& iou_default) {
  cmd->add_option("--conf", conf, "confidence threshold")->capture_default_str();
  if (iou_default.empty())
    cmd->add_option("--iou", iou, "NMS IoU threshold")->capture_default_str();
  else
    cmd->add_option("--iou", iou, "NMS IoU threshold (default: " + iou_default + ")");
  cmd->add_option("--max-det", max_det, "maximum detections per image")->capture_default_str();
}

void add_head_option(CLI::App* cmd, std::string& head) {
  cmd->add_option(
      "--head", head,
      "how the outputs encode detections: yolov5 | yolov8 | yolo11 | yolox (built-ins, decoded or raw "
      "grids) or a JSON head description (docs/heads.md); default: the first output is a decoded "
      "ultralytics head");
}

BuildOptions build_options_from(const EngineArgs& a, Status* error) {
  BuildOptions o;
  *error = Status::ok();
  auto dev = parse_device(a.device);
  if (!dev) {
    *error = dev.status();
    return o;
  }
  o.device = *dev;
  // --int8 --fp16: INT8 convolutions, FP16 elsewhere (TensorRT's meaning); --int8 alone: FP32 elsewhere.
  o.precision = a.int8 ? Precision::kInt8 : a.fp16 ? Precision::kFp16 : Precision::kFp32;
  o.int8_fp16 = a.int8 && a.fp16;
  o.int8_all = a.all_int8;
  o.calibration_file = a.cache;
  o.float_layers_regex = a.float_layers;
  o.weights_file = a.refined_weights;
  o.equalization_sidecar = !a.no_equalization;
  o.weight_clip = a.weight_clip;
  o.asymmetric_activations = !a.symmetric_activations;
  o.float_outputs = a.float_output;
  auto format = parse_input_format(a.input_format);
  if (!format) {
    *error = format.status();
    return o;
  }
  o.input_format = *format;
  if (!a.min_shapes.empty() || !a.opt_shapes.empty() || !a.max_shapes.empty()) {
    if (a.min_shapes.empty() || a.opt_shapes.empty() || a.max_shapes.empty()) {
      *error = invalid_argument("give all three of --min-shapes, --opt-shapes and --max-shapes");
      return o;
    }
    ShapeProfile p;
    for (auto [spec, dst] :
         {std::pair{&a.min_shapes, &p.min}, {&a.opt_shapes, &p.opt}, {&a.max_shapes, &p.max}}) {
      auto s = parse_shape_spec(*spec);
      if (!s) {
        *error = s.status();
        return o;
      }
      *dst = *s;
    }
    o.profile = p;
  }
  return o;
}

Result<std::shared_ptr<const Engine>> open_engine(const EngineArgs& a, bool verbose) {
  if (a.model.empty() == a.engine.empty())
    return invalid_argument("give exactly one of --model and --engine");
  std::shared_ptr<const Engine> engine;
  if (!a.engine.empty()) {
    QYOLO_ASSIGN_OR_RETURN(engine, Engine::load(a.engine));
  } else {
    Status st;
    BuildOptions o = build_options_from(a, &st);
    QYOLO_RETURN_IF_ERROR(st);
    QYOLO_ASSIGN_OR_RETURN(engine, Engine::build(a.model, o));
  }
  if (verbose) {
    const auto& o = engine->options();
    auto p = engine->profile();
    std::fprintf(stderr, "qyolo: %s  device %s  precision %s  input %s %s..%s\n",
                 engine->info().source.c_str(), device_name(o.device), precision_name(o.precision),
                 engine->info().input_name.c_str(), shape_str(p.min).c_str(), shape_str(p.max).c_str());
    if (o.device == Device::kCpu && o.precision == Precision::kInt8) {
      if (const std::string caveat = cpu_int8_caveat(); !caveat.empty())
        std::fprintf(stderr, "note: %s\n", caveat.c_str());
    }
  }
  return engine;
}

Status write_text_atomic(const std::string& path, const std::string& text) {
  return write_file_atomically(path, text);
}

}  // namespace qyolo::cli
