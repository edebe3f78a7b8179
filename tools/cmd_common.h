// Options shared by the subcommands that need an engine (--model/--engine, precision, profile).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "qyolo/engine.h"

namespace qyolo::cli {

struct EngineArgs {
  std::string model;   // ONNX file
  std::string engine;  // .qengine file
  std::string device = "cpu";
  bool int8 = false;
  bool fp16 = false;
  bool all_int8 = false;                      // with --int8 --fp16: no per-layer INT8/FP16 timing
  std::string cache;                          // calibration cache / PPQ json
  std::string float_layers;                   // regex of layers kept in float
  std::string refined_weights;                // weight overrides (qyolo calibrate --refine)
  bool no_equalization = false;               // ignore the cache's equalisation sidecar
  bool weight_clip = false;                   // BuildOptions::weight_clip
  bool symmetric_activations = false;         // !BuildOptions::asymmetric_activations
  bool float_output = false;                  // Q/DQ models: outputs without their final Q/DQ pair
  std::string input_format = "float32-nchw";  // BuildOptions::input_format
  std::string min_shapes, opt_shapes, max_shapes;
};

// Adds --model, --engine (if allowed), --device, --int8, --fp16, --cache, --float-layers, --*-shapes.
void add_engine_options(CLI::App* cmd, EngineArgs& args, bool allow_engine_file = true,
                        bool with_precision = true);
// --imgsz: one value (square) or two (H W); left out, the engine's own size (see DetectOptions).
void add_imgsz_option(CLI::App* cmd, std::vector<int>& imgsz, const std::string& what = "letterbox size");
// (H, W) from --imgsz; (0, 0) when it was left out.
Result<std::pair<int, int>> image_size_from(const std::vector<int>& imgsz);
// (H, W) from --imgsz, or the engine's own size (its profile's opt H/W).
Result<std::pair<int, int>> image_size_for(const std::vector<int>& imgsz, const Engine& engine);

// --conf, --iou, --max-det (defaults: the caller's current values; iou < 0: the head's default,
// described by iou_default).
void add_nms_options(CLI::App* cmd, float& conf, float& iou, int& max_det,
                     const std::string& iou_default = "");
// --head: how the outputs encode detections (DetectOptions::head).
void add_head_option(CLI::App* cmd, std::string& head);
BuildOptions build_options_from(const EngineArgs& args, Status* error);
// Builds from --model or loads --engine; prints a one-line summary to stderr.
Result<std::shared_ptr<const Engine>> open_engine(const EngineArgs& args, bool verbose = true);

// Writes `text` to path + ".tmp", then renames: `path` is never left half-written.
Status write_text_atomic(const std::string& path, const std::string& text);

}  // namespace qyolo::cli
