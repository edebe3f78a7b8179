#include "quant/accuracy_proxy.h"

#include <algorithm>

namespace qyolo {

DetectOptions eval_detect_options(int input_h, int input_w, const std::string& head) {
  DetectOptions opt;
  opt.input_h = input_h;
  opt.input_w = input_w;
  opt.nms.conf = 0.001f;
  opt.nms.iou = -1.f;  // the head's default below
  opt.nms.max_det = 300;
  opt.nms.multi_label = true;  // as ultralytics val.py
  opt.head = head;
  opt.iou_objectness = 0.65f;
  opt.iou_no_objectness = 0.7f;
  return opt;
}

GroundTruth pseudo_ground_truth(const std::vector<std::vector<Detection>>& reference,
                                const std::vector<std::pair<int, int>>& sizes, float label_conf,
                                int num_classes) {
  GroundTruth gt;
  for (int c = 0; c < num_classes; ++c) gt.categories.push_back({c, std::to_string(c)});
  int ann_id = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    const int image_id = static_cast<int>(i) + 1;
    gt.images.push_back({image_id, "image" + std::to_string(image_id), sizes[i].first, sizes[i].second});
    for (const Detection& d : reference[i]) {
      if (d.score < label_conf) continue;
      GtAnnotation a;
      a.id = ++ann_id;
      a.image_id = image_id;
      a.category_id = d.class_id;
      a.x = d.x1;
      a.y = d.y1;
      a.w = static_cast<double>(d.x2) - d.x1;
      a.h = static_cast<double>(d.y2) - d.y1;
      a.area = a.w * a.h;
      gt.annotations.push_back(a);
    }
  }
  return gt;
}

Result<CocoMetrics> agreement_metrics(const std::vector<std::vector<Detection>>& reference,
                                      const std::vector<std::vector<Detection>>& candidate,
                                      const std::vector<std::pair<int, int>>& sizes, float label_conf) {
  if (reference.size() != candidate.size() || reference.size() != sizes.size())
    return invalid_argument("agreement_metrics: " + std::to_string(reference.size()) + " reference, " +
                            std::to_string(candidate.size()) + " candidate and " +
                            std::to_string(sizes.size()) + " image sizes; one of each per image expected");
  int num_classes = 1;
  for (const auto* list : {&reference, &candidate})
    for (const auto& dets : *list)
      for (const auto& d : dets) {
        if (d.class_id < 0)
          return invalid_argument("agreement_metrics: negative class id " + std::to_string(d.class_id));
        num_classes = std::max(num_classes, d.class_id + 1);
      }
  CocoEvaluator evaluator(pseudo_ground_truth(reference, sizes, label_conf, num_classes));
  for (size_t i = 0; i < candidate.size(); ++i)
    QYOLO_RETURN_IF_ERROR(evaluator.add_detections(static_cast<int>(i) + 1, candidate[i]));
  return evaluator.evaluate();
}

Result<std::unique_ptr<AccuracyProxy>> AccuracyProxy::create(std::shared_ptr<const Engine> reference,
                                                             const std::vector<std::string>& image_files,
                                                             const ProxyOptions& options) {
  if (image_files.empty()) return invalid_argument("the accuracy proxy needs at least one held-out image");
  if (reference->options().precision != Precision::kFp32)
    return invalid_argument("the accuracy proxy's labels come from an FP32 engine (got " +
                            std::string(precision_name(reference->options().precision)) + ")");
  std::unique_ptr<AccuracyProxy> p(new AccuracyProxy());
  p->options_ = options;
  QYOLO_RETURN_IF_ERROR(p->load_images(image_files));
  QYOLO_ASSIGN_OR_RETURN(p->reference_, p->detect_all(std::move(reference)));
  return p;
}

Result<std::unique_ptr<AccuracyProxy>> AccuracyProxy::create(std::vector<std::vector<Detection>> reference,
                                                             const std::vector<std::string>& image_files,
                                                             const ProxyOptions& options) {
  if (image_files.empty()) return invalid_argument("the accuracy proxy needs at least one held-out image");
  if (reference.size() != image_files.size())
    return invalid_argument("accuracy proxy: " + std::to_string(reference.size()) +
                            " reference detection lists for " + std::to_string(image_files.size()) +
                            " images");
  std::unique_ptr<AccuracyProxy> p(new AccuracyProxy());
  p->options_ = options;
  QYOLO_RETURN_IF_ERROR(p->load_images(image_files));
  p->reference_ = std::move(reference);
  return p;
}

Status AccuracyProxy::load_images(const std::vector<std::string>& image_files) {
  for (const auto& f : image_files) {
    auto img = load_image(f);
    if (!img) return img.status().with_context("accuracy proxy image");
    sizes_.emplace_back(img->width, img->height);
    images_.push_back(std::move(img).value());
  }
  return Status::ok();
}

size_t AccuracyProxy::num_labels() const {
  size_t n = 0;
  for (const auto& dets : reference_)
    n += static_cast<size_t>(std::count_if(
        dets.begin(), dets.end(), [&](const Detection& d) { return d.score >= options_.label_conf; }));
  return n;
}

Result<std::vector<std::vector<Detection>>> AccuracyProxy::detect_all(
    std::shared_ptr<const Engine> engine) const {
  QYOLO_ASSIGN_OR_RETURN(
      auto detector,
      Detector::create(std::move(engine),
                       eval_detect_options(options_.input_h, options_.input_w, options_.head)));
  std::vector<std::vector<Detection>> out;
  for (const Image& im : images_) {
    QYOLO_ASSIGN_OR_RETURN(auto dets, detector->detect({&im}));
    out.push_back(std::move(dets[0]));
  }
  return out;
}

Result<CocoMetrics> AccuracyProxy::evaluate(std::shared_ptr<const Engine> candidate) const {
  QYOLO_ASSIGN_OR_RETURN(auto dets, detect_all(std::move(candidate)));
  return agreement_metrics(reference_, dets, sizes_, options_.label_conf);
}

}  // namespace qyolo
