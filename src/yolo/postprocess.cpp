#include "yolo/postprocess.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <string>

namespace qyolo {

const char* head_kind_name(HeadKind kind) {
  switch (kind) {
    case HeadKind::kYoloV5:
      return "yolov5";
    case HeadKind::kYoloV8:
      return "yolov8";
  }
  return "unknown";
}

namespace {

Status check_shape(const Shape& s) {
  if (s.size() != 3)
    return invalid_argument("YOLO output must be rank 3 [N, A, C] or [N, C, A], got " + shape_str(s));
  for (int64_t d : s)
    if (d < 0) return invalid_argument("YOLO output shape has a negative dim: " + shape_str(s));
  return Status::ok();
}

// One (box, class) candidate before NMS.
struct Candidate {
  float box[4];
  float score;
  int cls;
};

// Reads the channels of one anchor regardless of the head layout.
struct HeadView {
  const float* base;
  int64_t anchors;
  int64_t channels;
  bool channels_last;  // v5: [A, C]; v8: [C, A]
  float at(int64_t a, int64_t c) const {
    return channels_last ? base[a * channels + c] : base[c * anchors + a];
  }
};

}  // namespace

Result<int> head_num_classes(const Shape& output_shape, HeadKind kind) {
  QYOLO_RETURN_IF_ERROR(check_shape(output_shape));
  int64_t nc = kind == HeadKind::kYoloV5 ? output_shape[2] - 5 : output_shape[1] - 4;
  if (nc < 1)
    return invalid_argument(std::string(head_kind_name(kind)) + " output " + shape_str(output_shape) +
                            " leaves no class channels");
  return static_cast<int>(nc);
}

Result<HeadKind> detect_head_kind(const Shape& output_shape, int num_classes_hint) {
  QYOLO_RETURN_IF_ERROR(check_shape(output_shape));
  const int64_t d1 = output_shape[1], d2 = output_shape[2];
  if (num_classes_hint >= 0) {
    bool v5 = d2 == num_classes_hint + 5;
    bool v8 = d1 == num_classes_hint + 4;
    if (v5 && v8)
      return invalid_argument("YOLO output " + shape_str(output_shape) + " fits both v5 and v8 heads for " +
                              std::to_string(num_classes_hint) + " classes");
    if (v5) return HeadKind::kYoloV5;
    if (v8) return HeadKind::kYoloV8;
    return invalid_argument("YOLO output " + shape_str(output_shape) + " fits neither [N, A, 5+" +
                            std::to_string(num_classes_hint) + "] nor [N, 4+" +
                            std::to_string(num_classes_hint) + ", A]");
  }
  // Heads have far more anchors than channels.
  if (d1 > d2 && d2 >= 6) return HeadKind::kYoloV5;
  if (d2 > d1 && d1 >= 5) return HeadKind::kYoloV8;
  return invalid_argument("cannot tell the head layout of YOLO output " + shape_str(output_shape) +
                          "; pass the number of classes");
}

Status check_decoded_head(const float* output, const Shape& output_shape, HeadKind kind, const std::string& name,
                          int input_h, int input_w, const std::string& head) {
  QYOLO_RETURN_IF_ERROR(check_shape(output_shape));
  QYOLO_RETURN_IF_ERROR(head_num_classes(output_shape, kind).status());
  const bool v5 = kind == HeadKind::kYoloV5;
  const int64_t anchors = v5 ? output_shape[1] : output_shape[2];
  const int64_t channels = v5 ? output_shape[2] : output_shape[1];
  const int64_t first_score = 4;  // v5: objectness then classes; v8: classes
  float score_min = INFINITY, score_max = -INFINITY;
  float cx_max = -INFINITY, cy_max = -INFINITY, wh_min = INFINITY;
  int64_t non_finite = 0;
  for (int64_t n = 0; n < output_shape[0]; ++n) {
    HeadView view{output + n * anchors * channels, anchors, channels, v5};
    for (int64_t a = 0; a < anchors; ++a)
      for (int64_t c = 0; c < channels; ++c) {
        const float v = view.at(a, c);
        if (!std::isfinite(v)) {
          ++non_finite;
        } else if (c >= first_score) {
          score_min = std::min(score_min, v);
          score_max = std::max(score_max, v);
        } else if (c == 0) {
          cx_max = std::max(cx_max, v);
        } else if (c == 1) {
          cy_max = std::max(cy_max, v);
        } else {
          wh_min = std::min(wh_min, v);
        }
      }
  }
  const std::string what =
      "output '" + name + "' " + shape_str(output_shape) +
      (head.empty() ? std::string(" read as a ") + head_kind_name(kind) +
                          (v5 ? " head [N, anchors, 4 box + objectness + classes]" : " head [N, 4 box + classes, anchors]")
                    : " decoded with head '" + head + "'");
  const std::string advice =
      head.empty() ? ". qyolo reads boxes in input pixels and sigmoid scores as they are (ultralytics YOLOv5 [N, A, 5+nc] "
                     "or YOLOv8 [N, 4+nc, A] exports); describe any other head with --head yolov5|yolov8|yolox|FILE.json "
                     "(docs/heads.md)"
                   : ": the head description does not fit this model (docs/heads.md)";
  if (non_finite > 0)
    return invalid_argument(what + " holds " + std::to_string(non_finite) +
                            " non-finite values (NaN/Inf): the model's output is not usable");
  // Decoded heads end in a sigmoid: scores are probabilities. Raw logits go far below 0.
  constexpr float kTolerance = 1e-3f;
  if (score_min < -kTolerance || score_max > 1 + kTolerance) {
    char range[96];
    std::snprintf(range, sizeof range, "[%.3g, %.3g]", score_min, score_max);
    return invalid_argument(what + " has scores in " + range +
                            ", outside [0, 1]: this looks like raw logits and grid offsets (a head exported without its "
                            "decode, e.g. YOLOX), not a decoded detection head" + advice);
  }
  // Decoded boxes are in input pixels: centres spread over the image (the grid of the finest level
  // reaches its far side) and sizes are never negative. Raw grid offsets stay near 0.
  if (input_h > 0 && input_w > 0 && anchors > 0 && output_shape[0] > 0) {
    char box[160];
    if (wh_min < -1.0f) {
      std::snprintf(box, sizeof box, " has box widths/heights down to %.3g", wh_min);
      return invalid_argument(what + box + ": decoded boxes have none below 0, so these are raw (log-space) box "
                              "offsets, not boxes in input pixels" + advice);
    }
    if (cx_max < 0.25f * static_cast<float>(input_w) && cy_max < 0.25f * static_cast<float>(input_h)) {
      std::snprintf(box, sizeof box, " has box centres only up to x %.3g, y %.3g for a %dx%d input", cx_max, cy_max,
                    input_h, input_w);
      return invalid_argument(what + box + ": these look like raw grid offsets (e.g. YOLOX exported without its "
                              "decode), not boxes in input pixels" + advice);
    }
  }
  return Status::ok();
}

std::vector<int> nms(const float* boxes, const float* scores, int n, float iou_thres, int max_keep) {
  std::vector<int> keep;
  if (n <= 0 || max_keep == 0) return keep;
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] > scores[b]; });
  std::vector<float> areas(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const float* b = boxes + 4 * i;
    areas[i] = (b[2] - b[0]) * (b[3] - b[1]);
  }
  std::vector<char> suppressed(static_cast<size_t>(n), 0);
  for (int oi = 0; oi < n; ++oi) {
    const int i = order[oi];
    if (suppressed[i]) continue;
    keep.push_back(i);
    if (max_keep > 0 && static_cast<int>(keep.size()) >= max_keep) break;
    const float* bi = boxes + 4 * i;
    for (int oj = oi + 1; oj < n; ++oj) {
      const int j = order[oj];
      if (suppressed[j]) continue;
      const float* bj = boxes + 4 * j;
      float w = std::max(0.0f, std::min(bi[2], bj[2]) - std::max(bi[0], bj[0]));
      float h = std::max(0.0f, std::min(bi[3], bj[3]) - std::max(bi[1], bj[1]));
      float inter = w * h;
      float ovr = inter / (areas[i] + areas[j] - inter);
      if (ovr > iou_thres) suppressed[j] = 1;
    }
  }
  return keep;
}

Result<std::vector<std::vector<Detection>>> postprocess(const float* output, const Shape& output_shape,
                                                        HeadKind kind, const NmsOptions& opt) {
  QYOLO_ASSIGN_OR_RETURN(const int nc, head_num_classes(output_shape, kind));
  if (!(opt.conf >= 0.0f && opt.conf <= 1.0f))
    return invalid_argument("NMS conf threshold must be in [0, 1], got " + std::to_string(opt.conf));
  if (!(opt.iou >= 0.0f && opt.iou <= 1.0f))
    return invalid_argument("NMS IoU threshold must be in [0, 1], got " + std::to_string(opt.iou));
  if (opt.max_det < 0)
    return invalid_argument("NMS max_det must be >= 0, got " + std::to_string(opt.max_det));
  if (opt.max_nms <= 0)
    return invalid_argument("NMS max_nms must be > 0, got " + std::to_string(opt.max_nms));
  if (opt.max_wh < 0) return invalid_argument("NMS max_wh must be >= 0, got " + std::to_string(opt.max_wh));

  const int64_t batch = output_shape[0];
  const bool v5 = kind == HeadKind::kYoloV5;
  const int64_t anchors = v5 ? output_shape[1] : output_shape[2];
  const int64_t channels = v5 ? output_shape[2] : output_shape[1];
  const int64_t cls0 = v5 ? 5 : 4;
  if (output == nullptr && batch * anchors * channels > 0)
    return invalid_argument("YOLO output pointer is null for shape " + shape_str(output_shape));
  const bool multi_label = opt.multi_label && nc > 1;  // as ultralytics: multi_label &= nc > 1
  auto class_allowed = [&](int c) {
    return opt.classes.empty() || std::find(opt.classes.begin(), opt.classes.end(), c) != opt.classes.end();
  };

  std::vector<std::vector<Detection>> result(static_cast<size_t>(batch));
  std::vector<Candidate> cand;
  for (int64_t b = 0; b < batch; ++b) {
    HeadView view{output + b * anchors * channels, anchors, channels, v5};
    cand.clear();
    for (int64_t a = 0; a < anchors; ++a) {
      float obj = 1.0f;
      if (v5) {
        obj = view.at(a, 4);
        if (!(obj > opt.conf)) continue;
      }
      // v5 multiplies each class score by objectness in float (x[:, 5:] *= x[:, 4:5]).
      auto class_conf = [&](int64_t c) { return v5 ? view.at(a, cls0 + c) * obj : view.at(a, cls0 + c); };
      if (!v5) {
        // v8 candidates: max class score > conf (NaN never passes).
        float best = -INFINITY;
        for (int64_t c = 0; c < nc; ++c) best = std::max(best, class_conf(c));
        if (!(best > opt.conf)) continue;
      }
      const float cx = view.at(a, 0), cy = view.at(a, 1), w = view.at(a, 2), h = view.at(a, 3);
      Candidate base{{cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2}, 0.0f, 0};
      if (multi_label) {
        for (int64_t c = 0; c < nc; ++c) {
          float s = class_conf(c);
          if (s > opt.conf && class_allowed(static_cast<int>(c))) {
            base.score = s;
            base.cls = static_cast<int>(c);
            cand.push_back(base);
          }
        }
      } else {
        // torch.max: first maximal index; a NaN score wins and then fails the threshold.
        float best = class_conf(0);
        int best_c = 0;
        for (int64_t c = 1; c < nc && !std::isnan(best); ++c) {
          float s = class_conf(c);
          if (s > best || std::isnan(s)) {
            best = s;
            best_c = static_cast<int>(c);
          }
        }
        if (best > opt.conf && class_allowed(best_c)) {
          base.score = best;
          base.cls = best_c;
          cand.push_back(base);
        }
      }
    }
    if (cand.empty()) continue;
    std::stable_sort(cand.begin(), cand.end(),
                     [](const Candidate& l, const Candidate& r) { return l.score > r.score; });
    if (cand.size() > static_cast<size_t>(opt.max_nms)) cand.resize(static_cast<size_t>(opt.max_nms));

    // Batched NMS: shift each class into its own region so boxes of different classes never overlap.
    const int n = static_cast<int>(cand.size());
    std::vector<float> shifted(static_cast<size_t>(n) * 4), scores(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      const float off =
          opt.agnostic ? 0.0f : static_cast<float>(cand[i].cls) * static_cast<float>(opt.max_wh);
      for (int k = 0; k < 4; ++k) shifted[4 * i + k] = cand[i].box[k] + off;
      scores[i] = cand[i].score;
    }
    std::vector<int> keep = nms(shifted.data(), scores.data(), n, opt.iou, opt.max_det);
    auto& out = result[static_cast<size_t>(b)];
    out.reserve(keep.size());
    for (int i : keep) {
      const Candidate& c = cand[i];
      out.push_back({c.box[0], c.box[1], c.box[2], c.box[3], c.score, c.cls});
    }
  }
  return result;
}

Result<std::vector<std::vector<Detection>>> postprocess(const Tensor& output, HeadKind kind,
                                                        const NmsOptions& options) {
  if (output.dtype() != DataType::kFloat32)
    return invalid_argument(std::string("YOLO output must be float32, got ") + dtype_name(output.dtype()) +
                            " " + shape_str(output.shape()));
  return postprocess(output.data<float>(), output.shape(), kind, options);
}

void unletterbox(std::vector<Detection>& detections, float gain, float pad_x, float pad_y, int orig_width,
                 int orig_height) {
  const float w = static_cast<float>(orig_width), h = static_cast<float>(orig_height);
  for (Detection& d : detections) {
    d.x1 = std::clamp((d.x1 - pad_x) / gain, 0.0f, w);
    d.x2 = std::clamp((d.x2 - pad_x) / gain, 0.0f, w);
    d.y1 = std::clamp((d.y1 - pad_y) / gain, 0.0f, h);
    d.y2 = std::clamp((d.y2 - pad_y) / gain, 0.0f, h);
  }
}

}  // namespace qyolo
