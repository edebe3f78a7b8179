// NonMaxSuppression: boxes [N, B, 4], scores [N, C, B], optional max_output_boxes_per_class,
// iou_threshold, score_threshold (scalars or 1-element tensors); output int64 [K, 3] of (batch,
// class, box). K depends on the data: qyolo knows it only when every input is a constant (the
// node tests bind theirs so); a model that runs NMS on its own activations is refused with a
// message that says so.
#include "ir/ops/non_max_suppression.h"

#include <algorithm>
#include <numeric>

#include "ir/op_registry.h"

namespace qyolo {

namespace {

struct Corners {
  float x1, y1, x2, y2;
};

Corners corners(const float* b, bool center_point_box) {
  if (center_point_box) {
    const float hw = b[2] / 2, hh = b[3] / 2;
    return {b[0] - hw, b[1] - hh, b[0] + hw, b[1] + hh};
  }
  // Any diagonal pair of corners (test_nonmaxsuppression_flipped_coordinates).
  return {std::min(b[1], b[3]), std::min(b[0], b[2]), std::max(b[1], b[3]), std::max(b[0], b[2])};
}

// As ONNX Runtime: empty boxes never suppress, and IoU must exceed the threshold.
bool suppresses(const Corners& a, const Corners& b, float iou_threshold) {
  const float area_a = (a.x2 - a.x1) * (a.y2 - a.y1), area_b = (b.x2 - b.x1) * (b.y2 - b.y1);
  if (area_a <= 0 || area_b <= 0) return false;
  const float iw = std::max(0.f, std::min(a.x2, b.x2) - std::max(a.x1, b.x1));
  const float ih = std::max(0.f, std::min(a.y2, b.y2) - std::max(a.y1, b.y1));
  const float inter = iw * ih;
  const float uni = area_a + area_b - inter;
  if (uni <= 0) return false;
  return inter / uni > iou_threshold;
}

}  // namespace

std::vector<std::array<int64_t, 3>> nms_select(const float* boxes, const float* scores,
                                               const NmsSelectParams& p) {
  std::vector<std::array<int64_t, 3>> rows;
  if (p.max_per_class <= 0) return rows;
  std::vector<int64_t> order;
  std::vector<Corners> kept;
  for (int64_t n = 0; n < p.batches; ++n)
    for (int64_t c = 0; c < p.classes; ++c) {
      const float* s = scores + (n * p.classes + c) * p.boxes;
      order.clear();
      for (int64_t i = 0; i < p.boxes; ++i)
        if (!p.score_threshold || s[i] > *p.score_threshold) order.push_back(i);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[a] > s[b]; });
      kept.clear();
      for (int64_t i : order) {
        const Corners box = corners(boxes + (n * p.boxes + i) * 4, p.center_point_box);
        bool keep = true;
        for (const Corners& k : kept)
          if (suppresses(k, box, p.iou_threshold)) {
            keep = false;
            break;
          }
        if (!keep) continue;
        kept.push_back(box);
        rows.push_back({n, c, i});
        if (static_cast<int64_t>(kept.size()) >= p.max_per_class) break;
      }
    }
  return rows;
}

Status infer_non_max_suppression(InferContext& ctx) {
  const ValueDesc* boxes = ctx.input(0);
  const ValueDesc* scores = ctx.input(1);
  if (boxes->dtype != DataType::kFloat32 || scores->dtype != DataType::kFloat32)
    return unsupported(ctx.node.describe() + ": supports float32 boxes and scores only, got " +
                       dtype_name(boxes->dtype) + " and " + dtype_name(scores->dtype));
  const Shape& bs = boxes->shape;
  const Shape& ss = scores->shape;
  if (bs.size() != 3 || bs[2] != 4)
    return ctx.error("boxes must be [num_batches, num_boxes, 4], got " + shape_str(bs));
  if (ss.size() != 3 || ss[0] != bs[0] || ss[2] != bs[1])
    return ctx.error("scores must be [num_batches, num_classes, num_boxes] = [" + std::to_string(bs[0]) +
                     ", C, " + std::to_string(bs[1]) + "] for boxes " + shape_str(bs) + ", got " +
                     shape_str(ss));
  QYOLO_ASSIGN_OR_RETURN(int64_t center, ctx.node.attr_int("center_point_box", 0));
  if (center != 0 && center != 1)
    return ctx.error("center_point_box must be 0 or 1, got " + std::to_string(center));
  for (size_t i = 2; i < 5; ++i) {
    const ValueDesc* d = ctx.input(i);
    if (d == nullptr) continue;
    if (shape_numel(d->shape) > 1)
      return ctx.error("input " + std::to_string(i) + " ('" + ctx.node.inputs[i] +
                       "') must hold one value, got " + shape_str(d->shape));
    const bool want_int = i == 2;
    if (want_int ? d->dtype != DataType::kInt64 : d->dtype != DataType::kFloat32)
      return ctx.error("input " + std::to_string(i) + " ('" + ctx.node.inputs[i] + "') must be " +
                       (want_int ? "int64" : "float32") + ", got " + dtype_name(d->dtype));
  }
  bool all_const = boxes->value && scores->value;
  for (size_t i = 2; i < 5; ++i)
    if (ctx.input(i) && !ctx.input(i)->value) all_const = false;
  if (!all_const)
    return unsupported(
        ctx.node.describe() +
        ": its output [K, 3] has a data-dependent shape (K = the boxes kept), and qyolo fixes every "
        "shape at build time: NonMaxSuppression runs only on constant inputs (data-dependent shapes "
        "are not supported). Export the detector without NMS (ultralytics' default, nms=False); qyolo "
        "applies its own NMS after the head");
  NmsSelectParams p;
  p.batches = bs[0];
  p.classes = ss[1];
  p.boxes = bs[1];
  p.center_point_box = center == 1;
  auto scalar = [&](size_t i) { return ctx.input(i)->value->to_float_vector(); };
  if (ctx.input(2) && ctx.input(2)->value->numel() == 1)
    p.max_per_class = ctx.input(2)->value->to_int64_vector()[0];
  if (ctx.input(3) && ctx.input(3)->value->numel() == 1) p.iou_threshold = scalar(3)[0];
  if (ctx.input(4) && ctx.input(4)->value->numel() == 1) p.score_threshold = scalar(4)[0];
  if (p.iou_threshold < 0 || p.iou_threshold > 1)
    return ctx.error("iou_threshold must lie in [0, 1], got " + std::to_string(p.iou_threshold));
  const auto rows = nms_select(boxes->value->data<float>(), scores->value->data<float>(), p);
  ctx.outputs[0] = ValueDesc{DataType::kInt64, {static_cast<int64_t>(rows.size()), 3}, std::nullopt};
  return Status::ok();
}

}  // namespace qyolo
