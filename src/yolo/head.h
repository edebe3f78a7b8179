// qyolo — detection heads described declaratively, bound to a model's outputs, decoded.
//
// A HeadSpec says how a model's outputs encode detections: which outputs hold which levels
// (strides) and parts (box, objectness, class scores), how boxes are encoded (decoded pixels,
// YOLOv5 sigmoid*2 grid offsets, YOLOX exp, DFL bins, RetinaNet deltas) and whether the scores
// are probabilities or logits. Specs come from `--head yolov5|yolov8|yolox` (built-ins, see
// builtin_head) or a small JSON file (docs/heads.md). With no spec, the first output must already
// be a decoded ultralytics head (bind_default_head).
//
// bind_head() matches a spec against the output shapes of one input shape (strides follow from the
// input size, so dynamic H/W works) and gives a BoundHead: plain offsets into the outputs that the
// CPU decode (decode_head) and the GPU decode (src/backends/cuda/postprocess.cu) both read. Both
// write one decoded tensor in an ultralytics layout, [N, P, 5+nc] (heads with objectness,
// HeadKind::kYoloV5) or [N, 4+nc, P] (without, HeadKind::kYoloV8), that the unchanged NMS
// (postprocess(), GpuPostprocessor) consumes. A decoded head that needs no change is passed
// through without a copy.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "qyolo/status.h"
#include "qyolo/tensor.h"
#include "yolo/postprocess.h"

namespace qyolo {

enum class BoxEncoding {
  kXywh,    // decoded: cx, cy, w, h in input pixels (ultralytics exports)
  kXyxy,    // decoded: x1, y1, x2, y2 in input pixels
  kYoloV5,  // (sigmoid(t) * 2 + cell - 0.5) * stride, (sigmoid(t) * 2)^2 * anchor (ultralytics YOLOv5)
  kYoloX,   // (t + cell + offset) * stride, exp(t) * stride (YOLOX, YOLOv6 anchor-free)
  kDfl,     // 4 x reg_max bins, softmax expectation = distances (l, t, r, b) from the cell centre
            // (YOLOv8/YOLO11)
  kDeltas,  // (dx, dy, dw, dh) relative to anchor boxes at each cell (RetinaNet: torchvision, mmdet)
};
const char* box_encoding_name(BoxEncoding e);

enum class HeadPart { kBox, kObj, kCls };
const char* head_part_name(HeadPart p);

// How one output tensor is laid out. A = anchors per cell, C = channels per anchor, P = points.
enum class OutputLayout {
  kAuto,     // from the rank: 5 -> kNahwc, 4 -> kNchw (else kNhwc), 3 -> kRows or kColumns by channel count
  kNchw,     // [N, A*C, H, W] one level (a conv output)
  kNhwc,     // [N, H, W, A*C] one level
  kNahwc,    // [N, A, H, W, C] one level (ultralytics YOLOv5 Detect before its decode)
  kRows,     // [N, P, C] several levels concatenated (YOLOv5/YOLOX exports)
  kColumns,  // [N, C, P] several levels concatenated (YOLOv8 exports)
};
const char* output_layout_name(OutputLayout l);

// Score activation: kApplied = the values are probabilities; kLogits = qyolo applies the sigmoid;
// kAuto = decided on the first run (probabilities iff every score lies in [0, 1]), then checked
// on every run.
enum class Activation { kAuto, kApplied, kLogits };

struct HeadOutputSpec {
  std::string name;             // model output name; "" = by position
  int index = -1;               // position among the model's outputs when name is ""
  std::vector<int> strides;     // levels this output holds; empty = from its H/W (one level) or all levels
  std::vector<HeadPart> parts;  // channel order; empty = from the channel count
  OutputLayout layout = OutputLayout::kAuto;
  Activation activation = Activation::kAuto;  // its scores (and YOLOv5 boxes); kAuto = the head's
  bool cell_major = false;     // flat layouts with A > 1: points ordered (y, x, a) instead of (a, y, x)
  std::vector<float> anchors;  // one-level outputs: this level's anchors (w, h pairs, input pixels)
};

struct HeadSpec {
  std::string name;  // "yolov5", "heads/retinanet.json" (for messages)
  BoxEncoding box = BoxEncoding::kXywh;
  bool objectness = false;
  Activation scores = Activation::kAuto;
  int reg_max = 16;                  // kDfl: bins per side
  std::optional<float> grid_offset;  // cell centre offset in cells; default 0.5 (kDfl), 0 otherwise
  std::array<float, 4> delta_weights{1.f, 1.f, 1.f, 1.f};  // kDeltas: dx/wx, dy/wy, dw/ww, dh/wh
  int num_classes = -1;      // -1: the model's names metadata, else from the channel counts
  std::vector<int> strides;  // every level, ascending; empty = from the outputs / the usual P3..P5(-P7)
  std::vector<std::vector<float>> anchors;  // per level (w, h pairs); empty = anchor-free
  std::vector<HeadOutputSpec> outputs;      // empty = matched from the model's output shapes
  bool builtin = false;
};

// Built-in descriptions, each a list of alternatives tried in order:
//   yolov5: a decoded [N, P, 5+nc] output, else raw per-level outputs (YOLOv5 encoding, P3-P5
//           anchors of yolov5s.yaml, P6 anchors for 4 levels);
//   yolov8: a decoded [N, 4+nc, P] output, else raw DFL outputs (box 4x16 bins + class logits);
//   yolox:  raw YOLOX outputs ([N, P, 5+nc] or one [N, 5+nc, H, W] per level), scores as exported.
Result<std::vector<HeadSpec>> builtin_head(const std::string& name);
// A JSON head description (docs/heads.md); `source` names it in errors.
Result<HeadSpec> parse_head_json(const std::string& text, const std::string& source);
// `--head` value: a built-in name or a JSON file.
Result<std::vector<HeadSpec>> load_head(const std::string& name_or_file);

// Where one part (box / obj / cls) of one level lives: element offsets into one output.
struct PartAccess {
  int output = -1;  // index into the model's outputs; -1 = absent (no objectness)
  int64_t base = 0, batch_stride = 0, anchor_stride = 0, y_stride = 0, x_stride = 0, channel_stride = 0;
  bool logits = false;           // sigmoid to apply (scores; YOLOv5 boxes too); else probabilities, checked
  bool auto_activation = false;  // from Activation::kAuto, taken as probabilities until resolve_activation
  int64_t at(int64_t n, int64_t a, int64_t y, int64_t x, int64_t c) const {
    return base + n * batch_stride + a * anchor_stride + y * y_stride + x * x_stride + c * channel_stride;
  }
};

struct BoundLevel {
  float stride = 1.f;
  int64_t h = 1, w = 1, a = 1;  // cells and anchors per cell
  int64_t first_point = 0;      // where this level starts among the decoded points
  std::vector<float> anchors;   // 2*a (w, h) in input pixels; empty = anchor-free
  PartAccess box, obj, cls;
};

struct BoundHead {
  std::string spec_name;
  int alternative = 0;  // which alternative of the spec list bound
  BoxEncoding box = BoxEncoding::kXywh;
  bool objectness = false;
  int nc = 0;
  int reg_max = 16;
  float grid_offset = 0.f;
  std::array<float, 4> delta_weights{1.f, 1.f, 1.f, 1.f};
  int64_t batch = 0, points = 0;
  std::vector<BoundLevel> levels;
  std::vector<int> outputs_used;  // model output indices read
  int passthrough_output = -1;    // >= 0: this output already is the decoded tensor
  HeadKind kind() const { return objectness ? HeadKind::kYoloV5 : HeadKind::kYoloV8; }
  Shape decoded_shape() const;
  // One line for logs: "yolov8 (alternative 2): DFL boxes, 3 levels (strides 8, 16, 32), 8400 points, 80
  // classes".
  std::string describe() const;
};

struct OutputDesc {
  std::string name;
  Shape shape;
};

struct HeadBindContext {
  int input_h = 0, input_w = 0;  // network input
  int nc_hint = -1;              // classes in the model's names metadata, -1 if none
  int max_stride = 0;            // ultralytics stride metadata (0 if none)
};

// Binds the first alternative that fits the outputs; the error lists why each one did not.
Result<BoundHead> bind_head(const std::vector<HeadSpec>& alternatives, const std::vector<OutputDesc>& outputs,
                            const HeadBindContext& ctx);
// No description: the first output must be a decoded YOLOv5 [N, P, 5+nc] or YOLOv8 [N, 4+nc, P]
// head (chosen by the class count of the names metadata, else by which axis has the points the
// input size implies, else by the longer axis). Passed through.
Result<BoundHead> bind_default_head(const std::vector<OutputDesc>& outputs, const HeadBindContext& ctx);

// Decides kAuto score activations of `spec` from one run's host outputs (float32, bound by `head`):
// returns the spec with spec.scores (and per-output activations) fixed, for later bindings.
HeadSpec resolve_activation(const HeadSpec& spec, const BoundHead& head,
                            const std::vector<const float*>& outputs);

struct HeadDecodeParams;  // head_decode.h
// The plain-data form both decoders read (errors past kHeadMaxLevels levels, kHeadMaxAnchors
// anchors per cell or kHeadMaxRegMax bins).
Result<HeadDecodeParams> make_decode_params(const BoundHead& head);

// CPU decode into `decoded` (decoded_shape() floats). Errors when a score declared a probability
// lies outside [0, 1] (a head description that does not fit the model).
Status decode_head(const BoundHead& head, const std::vector<const float*>& outputs, float* decoded);

// Score tolerance of the probability checks (outputs of a float16 engine round above 1).
constexpr float kProbabilityTolerance = 1e-3f;

}  // namespace qyolo
