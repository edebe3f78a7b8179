// Head names, descriptions and the CPU decode (the per-point math is in head_decode.h).
#include "yolo/head.h"

#include <cstdio>

#include "yolo/head_decode.h"

namespace qyolo {

const char* box_encoding_name(BoxEncoding e) {
  switch (e) {
    case BoxEncoding::kXywh:
      return "xywh";
    case BoxEncoding::kXyxy:
      return "xyxy";
    case BoxEncoding::kYoloV5:
      return "yolov5";
    case BoxEncoding::kYoloX:
      return "yolox";
    case BoxEncoding::kDfl:
      return "dfl";
    case BoxEncoding::kDeltas:
      return "deltas";
  }
  return "?";
}

const char* head_part_name(HeadPart p) {
  switch (p) {
    case HeadPart::kBox:
      return "box";
    case HeadPart::kObj:
      return "obj";
    case HeadPart::kCls:
      return "cls";
  }
  return "?";
}

const char* output_layout_name(OutputLayout l) {
  switch (l) {
    case OutputLayout::kAuto:
      return "auto";
    case OutputLayout::kNchw:
      return "nchw";
    case OutputLayout::kNhwc:
      return "nhwc";
    case OutputLayout::kNahwc:
      return "nahwc";
    case OutputLayout::kRows:
      return "rows";
    case OutputLayout::kColumns:
      return "columns";
  }
  return "?";
}

Shape BoundHead::decoded_shape() const {
  const int64_t c = 4 + (objectness ? 1 : 0) + nc;
  return objectness ? Shape{batch, points, c} : Shape{batch, c, points};
}

std::string BoundHead::describe() const {
  std::string s = spec_name + ": ";
  if (passthrough_output >= 0) {
    s += objectness ? "decoded [N, P, 5+nc]" : "decoded [N, 4+nc, P]";
  } else {
    s += std::string(box_encoding_name(box)) + " boxes";
    if (box == BoxEncoding::kDfl) s += " (reg_max " + std::to_string(reg_max) + ")";
    if (box != BoxEncoding::kXywh && box != BoxEncoding::kXyxy) {
      s += ", " + std::to_string(levels.size()) +
           (levels.size() == 1 ? " level (stride " : " levels (strides ");
      for (size_t i = 0; i < levels.size(); ++i)
        s += (i ? ", " : "") + std::to_string(static_cast<int>(levels[i].stride));
      s += ")";
      if (!levels.empty() && !levels[0].anchors.empty())
        s += ", " + std::to_string(levels[0].a) + " anchors per cell";
    }
  }
  s += ", " + std::to_string(points) + " points, " + std::to_string(nc) + (nc == 1 ? " class" : " classes");
  s += objectness ? ", objectness" : ", no objectness";
  bool logits = false;
  for (const auto& l : levels) logits |= l.cls.logits;
  s += logits ? ", scores from logits" : ", scores as probabilities";
  return s;
}

Result<HeadDecodeParams> make_decode_params(const BoundHead& h) {
  if (h.levels.empty()) return invalid_argument("head '" + h.spec_name + "' has no levels");
  if (h.levels.size() > static_cast<size_t>(kHeadMaxLevels))
    return unsupported("head '" + h.spec_name + "' has " + std::to_string(h.levels.size()) +
                       " levels; at most " + std::to_string(kHeadMaxLevels) + " are supported");
  if (h.box == BoxEncoding::kDfl && (h.reg_max < 1 || h.reg_max > kHeadMaxRegMax))
    return unsupported("DFL reg_max " + std::to_string(h.reg_max) + " is outside 1.." +
                       std::to_string(kHeadMaxRegMax));
  HeadDecodeParams p;
  p.encoding = static_cast<int>(h.box);
  p.objectness = h.objectness ? 1 : 0;
  p.nc = h.nc;
  p.reg_max = h.reg_max;
  p.grid_offset = h.grid_offset;
  for (int k = 0; k < 4; ++k) p.delta_weights[k] = h.delta_weights[static_cast<size_t>(k)];
  p.batch = h.batch;
  p.points = h.points;
  p.num_levels = static_cast<int>(h.levels.size());
  for (size_t i = 0; i < h.levels.size(); ++i) {
    const BoundLevel& l = h.levels[i];
    HeadDecodeLevel& d = p.levels[i];
    d.stride = l.stride;
    d.h = l.h, d.w = l.w, d.a = l.a, d.first_point = l.first_point;
    if (l.anchors.size() > static_cast<size_t>(2 * kHeadMaxAnchors))
      return unsupported("head '" + h.spec_name + "': at most " + std::to_string(kHeadMaxAnchors) +
                         " anchors per cell");
    d.num_anchors = static_cast<int>(l.anchors.size() / 2);
    for (size_t k = 0; k < l.anchors.size(); ++k) d.anchors[k] = l.anchors[k];
    auto part = [](const PartAccess& a) {
      HeadDecodePart q;
      q.output = a.output;
      q.logits = a.logits ? 1 : 0;
      q.base = a.base, q.batch_stride = a.batch_stride, q.anchor_stride = a.anchor_stride;
      q.y_stride = a.y_stride, q.x_stride = a.x_stride, q.channel_stride = a.channel_stride;
      return q;
    };
    d.box = part(l.box);
    d.obj = part(l.obj);
    d.cls = part(l.cls);
    const bool anchored = h.box == BoxEncoding::kYoloV5 || h.box == BoxEncoding::kDeltas;
    if (anchored && d.num_anchors != l.a)
      return internal_error("head '" + h.spec_name + "': level without its anchors");
  }
  return p;
}

Status decode_head(const BoundHead& h, const std::vector<const float*>& outputs, float* decoded) {
  QYOLO_ASSIGN_OR_RETURN(HeadDecodeParams p, make_decode_params(h));
  for (int o : h.outputs_used)
    if (o < 0 || static_cast<size_t>(o) >= outputs.size() || outputs[static_cast<size_t>(o)] == nullptr)
      return invalid_argument("head decode: output " + std::to_string(o) + " is missing");
  const int64_t total = h.batch * h.points;
  int64_t bad = 0;
  const float* const* outs = outputs.data();
#pragma omp parallel for reduction(+ : bad) schedule(static) if (total > 4096)
  for (int64_t t = 0; t < total; ++t) bad += head_decode_point(p, outs, t / h.points, t % h.points, decoded);
  if (bad > 0)
    return invalid_argument(
        "head '" + h.spec_name + "': " + std::to_string(bad) +
        " score values that the description takes as probabilities lie outside [0, 1]: the "
        "scores are logits (set \"scores\": \"logits\" in the head description) or the "
        "description does not fit the model");
  return Status::ok();
}

}  // namespace qyolo
