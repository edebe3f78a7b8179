// qyolo — YOLO output decoding and non-maximum suppression.
// Reproduces ultralytics YOLOv5 v7.0 utils/general.py non_max_suppression (and the YOLOv8
// variant for anchor-free heads) with torchvision.ops.nms semantics, on the host.
#pragma once

#include <string>
#include <vector>

#include "qyolo/status.h"
#include "qyolo/tensor.h"
#include "yolo/detection.h"

namespace qyolo {

enum class HeadKind {
  kYoloV5,  // [N, A, 5+nc]: cx, cy, w, h, obj, cls... (input pixels, already sigmoid)
  kYoloV8,  // [N, 4+nc, A]: cx, cy, w, h, cls... (no objectness)
};

const char* head_kind_name(HeadKind kind);

// Infers the head layout from a rank-3 output shape. With num_classes_hint >= 0 the layout
// whose class count matches is chosen (error if none or both match); with -1 the anchor
// axis is taken to be the longer one.
Result<HeadKind> detect_head_kind(const Shape& output_shape, int num_classes_hint = -1);

// Number of classes implied by shape and head kind (error if the shape is too small).
Result<int> head_num_classes(const Shape& output_shape, HeadKind kind);

// Checks that `output` (float32, shape output_shape) is a decoded head of `kind`: every value
// finite, scores (objectness and classes) in [0, 1], and, when the input size is given, boxes in
// input pixels (some box centre lies past a quarter of the input, no negative width or height). A
// model that outputs raw logits or grid offsets (e.g. YOLOX exported without its decode) fails here
// with a message that says what the output holds and points to --head, instead of producing
// nonsense boxes. `name` names the output; `head` the head description it was decoded with ("" for
// an output read as it is).
Status check_decoded_head(const float* output, const Shape& output_shape, HeadKind kind, const std::string& name,
                          int input_h = 0, int input_w = 0, const std::string& head = "");

// Greedy NMS over n boxes (xyxy, 4 floats each): visits boxes by score descending (stable for
// ties), keeps one unless an already kept box has IoU > iou_thres with it. IoU uses areas
// (x2-x1)*(y2-y1) in float, like torchvision.ops.nms on CPU. Returns kept indices in the
// order visited (score descending). max_keep >= 0 stops after that many kept boxes (the same
// prefix as the full result, since later boxes never affect earlier ones).
std::vector<int> nms(const float* boxes_xyxy, const float* scores, int n, float iou_thres, int max_keep = -1);

// Decodes one batch of raw head output (float32, contiguous, shape output_shape) into
// per-image detections in network-input pixels, sorted by score descending.
Result<std::vector<std::vector<Detection>>> postprocess(const float* output, const Shape& output_shape,
                                                        HeadKind kind, const NmsOptions& options);
// Same for a float32 Tensor (e.g. read from an .npy file or a runtime output).
Result<std::vector<std::vector<Detection>>> postprocess(const Tensor& output, HeadKind kind,
                                                        const NmsOptions& options);

// Maps boxes from letterboxed network-input pixels back to the original image, as ultralytics
// scale_boxes does: subtract the padding, divide by the resize gain, clip to [0,w]x[0,h].
void unletterbox(std::vector<Detection>& detections, float gain, float pad_x, float pad_y, int orig_width,
                 int orig_height);

}  // namespace qyolo
