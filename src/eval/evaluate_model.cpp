// qyolo::evaluate / evaluate_results (qyolo/evaluate.h): the dataset folder's ground truth, the
// model run over its images (or saved detections), COCO metrics, PR curves, confusion matrix.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>

#include "eval/coco_eval.h"
#include "eval/confusion_matrix.h"
#include "qyolo/evaluate.h"
#include "runtime/detector.h"

namespace qyolo {

namespace {
namespace fs = std::filesystem;

struct Dataset {
  GroundTruth gt;                      // restricted to `images`
  std::vector<GtImage> images;         // evaluated: by file name, the first `limit`
  std::vector<int> class_to_category;  // model class index -> GT category id (empty: identity)
};

// The dataset folder's ground truth. With a limit, `all` (when given) receives it before the
// restriction to the first N images.
Result<Dataset> load_dataset(const std::string& data_dir, int limit, GroundTruth* all = nullptr) {
  fs::path data(data_dir);
  std::error_code ec;
  if (!fs::is_directory(data / "images", ec))
    return not_found("dataset '" + data_dir +
                     "' has no images/ folder (expected images/ plus instances.json or labels/)");
  Dataset ds;
  GroundTruth& gt = ds.gt;
  if (fs::exists(data / "instances.json", ec)) {
    QYOLO_ASSIGN_OR_RETURN(gt, load_coco_json((data / "instances.json").string()));
    bool coco91 = false;
    for (const auto& c : gt.categories)
      if (c.id > 80) coco91 = true;
    if (coco91) ds.class_to_category = coco80_to_coco91();
  } else if (fs::is_directory(data / "labels", ec)) {
    QYOLO_ASSIGN_OR_RETURN(gt, load_yolo_labels((data / "images").string(), (data / "labels").string(),
                                                [](const std::string& p) { return read_image_size(p); }));
  } else {
    return not_found("dataset '" + data_dir + "' has neither instances.json nor labels/");
  }
  if (all) *all = gt;
  ds.images = gt.images;
  std::sort(ds.images.begin(), ds.images.end(),
            [](const GtImage& x, const GtImage& y) { return x.file_name < y.file_name; });
  if (limit > 0 && static_cast<size_t>(limit) < ds.images.size()) {
    ds.images.resize(static_cast<size_t>(limit));
    // Evaluate on the subset only.
    std::set<int> keep;
    for (const auto& im : ds.images) keep.insert(im.id);
    std::erase_if(gt.images, [&](const GtImage& im) { return !keep.count(im.id); });
    std::erase_if(gt.annotations, [&](const GtAnnotation& an) { return !keep.count(an.image_id); });
  }
  if (ds.images.empty()) return not_found("dataset '" + data_dir + "' lists no images");
  return ds;
}

// Default batch: 8 on cuda engines (GPU pre/post and network batched; within the profile's batch
// range), 1 on the CPU.
int default_batch(const Engine& engine) {
  if (engine.options().device != Device::kCuda) return 1;
  const ShapeProfile p = engine.profile();
  if (p.min.empty() || p.max.empty()) return 1;
  return static_cast<int>(std::clamp<int64_t>(8, p.min[0], p.max[0]));
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs the model over the dataset's images into `evaluator`; fills the run's fields of `ev`.
Status detect_with_model(const std::shared_ptr<const Engine>& engine, const std::string& data_dir,
                         const Dataset& ds, const EvaluateOptions& o, CocoEvaluator& evaluator,
                         Evaluation& ev) {
  const fs::path data(data_dir);
  const std::vector<GtImage>& images = ds.images;
  DetectOptions opt;
  opt.input_h = o.input_h;
  opt.input_w = o.input_w;
  opt.nms.conf = o.conf;
  opt.nms.iou = o.iou;
  opt.nms.max_det = o.max_det;
  opt.nms.multi_label = true;  // as ultralytics val.py
  opt.head = o.head;
  opt.iou_objectness = 0.65f;    // what qyolo always used for YOLOv5 (its README's mAP runs)
  opt.iou_no_objectness = 0.7f;  // YOLOv8/YOLO11 `yolo val`
  opt.gpu_prepost = o.gpu_prepost;
  QYOLO_ASSIGN_OR_RETURN(auto detector, Detector::create(engine, opt));

  const size_t batch = static_cast<size_t>(o.batch > 0 ? o.batch : default_batch(*engine));
  // Set-up for the batch sizes this run uses (a full batch, a partial last one), once, apart from
  // the steady-state times below.
  double setup_s = 0;
  for (size_t n : {std::min(batch, images.size()), images.size() % batch}) {
    if (n == 0) continue;
    QYOLO_ASSIGN_OR_RETURN(double s, detector->prepare(static_cast<int>(n)));
    setup_s += s;
  }
  double pre_s = 0, infer_s = 0, post_s = 0, decode_s = 0;
  const auto t_start = std::chrono::steady_clock::now();
  for (size_t start = 0; start < images.size(); start += batch) {
    const size_t n = std::min(batch, images.size() - start);
    std::vector<Image> decoded(n);
    std::vector<Status> errors(n);
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(dynamic)
    for (size_t i = 0; i < n; ++i) {
      auto img = load_image((data / "images" / images[start + i].file_name).string());
      if (img)
        decoded[i] = std::move(img).value();
      else
        errors[i] = img.status();
    }
    for (const auto& e : errors) QYOLO_RETURN_IF_ERROR(e);
    decode_s += seconds_since(t0);
    std::vector<const Image*> ptrs;
    for (const auto& d : decoded) ptrs.push_back(&d);
    QYOLO_ASSIGN_OR_RETURN(auto dets, detector->detect(ptrs));
    pre_s += detector->last_pre_s;
    infer_s += detector->last_infer_s;
    post_s += detector->last_post_s;
    for (size_t i = 0; i < n; ++i)
      QYOLO_RETURN_IF_ERROR(evaluator.add_detections(images[start + i].id, dets[i], ds.class_to_category));
    if (o.progress) o.progress(start + n, images.size());
  }
  const double total_s = seconds_since(t_start);
  const double n_img = static_cast<double>(images.size());
  ev.model = engine->info().source;
  ev.device = device_name(engine->options().device);
  ev.prepost_device = device_name(detector->prepost_device());
  ev.precision = precision_name(engine->options().precision);
  ev.calibration = engine->options().calibration_file;
  ev.float_outputs = engine->options().float_outputs;
  ev.head = detector->head_description();
  ev.batch = static_cast<int>(batch);
  ev.input_h = detector->options().input_h;
  ev.input_w = detector->options().input_w;
  ev.conf = o.conf;
  ev.iou = detector->options().nms.iou;
  ev.images_per_s = n_img / total_s;
  ev.setup_ms = setup_s * 1e3;
  ev.decode_ms = decode_s * 1e3 / n_img;
  ev.pre_ms = pre_s * 1e3 / n_img;
  ev.network_ms = infer_s * 1e3 / n_img;
  ev.post_ms = post_s * 1e3 / n_img;
  return Status::ok();
}

// Metrics, curves and the confusion matrix from the evaluator's detections.
Status finish(const std::string& data_dir, const Dataset& ds, const CocoEvaluator& evaluator,
              const EvaluateOptions& o, Evaluation& ev) {
  QYOLO_ASSIGN_OR_RETURN(CocoMetrics m, evaluator.evaluate());
  if (!o.save_results.empty())
    QYOLO_RETURN_IF_ERROR(write_coco_results_json(o.save_results, evaluator.detections()));
  const GroundTruth& gt = ds.gt;
  ev.data = data_dir;
  ev.images = static_cast<int>(ds.images.size());
  ev.num_gt = m.num_gt;
  ev.num_dets = m.num_dets;
  ev.map = m.map, ev.map50 = m.map50, ev.map75 = m.map75;
  ev.map_small = m.map_small, ev.map_medium = m.map_medium, ev.map_large = m.map_large;
  ev.ar1 = m.ar1, ev.ar10 = m.ar10, ev.ar100 = m.ar100;
  ev.ar_small = m.ar_small, ev.ar_medium = m.ar_medium, ev.ar_large = m.ar_large;
  ev.summary = format_summary(m);

  std::map<int, std::string> names;
  for (const auto& c : gt.categories) names[c.id] = c.name;
  std::map<int, int> gt_count;
  for (const auto& a : gt.annotations)
    if (!a.iscrowd) ++gt_count[a.category_id];
  constexpr int kRecallPoints = 101;
  ev.recall_points.resize(kRecallPoints);
  for (int r = 0; r < kRecallPoints; ++r) ev.recall_points[r] = r / 100.0;
  ev.precision50.assign(kRecallPoints, 0.0);
  int with_curve = 0;
  for (size_t i = 0; i < m.per_class_ap.size(); ++i) {
    ClassEvaluation c;
    c.category_id = m.per_class_ap[i].first;
    c.name = names.count(c.category_id) ? names[c.category_id] : std::to_string(c.category_id);
    c.num_gt = gt_count[c.category_id];
    c.ap = m.per_class_ap[i].second;
    c.ap50 = i < m.per_class_ap50.size() ? m.per_class_ap50[i].second : -1;
    if (i < m.per_class_pr50.size() && !m.per_class_pr50[i].empty()) {
      c.precision50 = m.per_class_pr50[i];
      for (int r = 0; r < kRecallPoints; ++r) ev.precision50[r] += c.precision50[r];
      ++with_curve;
    } else {
      c.precision50.assign(kRecallPoints, -1.0);
    }
    ev.classes.push_back(std::move(c));
  }
  for (double& p : ev.precision50) p = with_curve ? p / with_curve : -1.0;
  // The matrix is indexed like ev.classes (categories by id), as COCOeval orders them.
  GroundTruth by_class = gt;
  by_class.categories.clear();
  for (const auto& c : ev.classes) by_class.categories.push_back({c.category_id, c.name});
  ev.confusion = confusion_matrix(by_class, evaluator.detections(), o.matrix_conf, o.matrix_iou);
  return Status::ok();
}

}  // namespace

Result<Evaluation> evaluate(const std::shared_ptr<const Engine>& engine, const std::string& data,
                            const EvaluateOptions& options) {
  if (!engine) return invalid_argument("no engine");
  QYOLO_ASSIGN_OR_RETURN(Dataset ds, load_dataset(data, options.limit));
  CocoEvaluator evaluator(ds.gt);
  Evaluation ev;
  QYOLO_RETURN_IF_ERROR(detect_with_model(engine, data, ds, options, evaluator, ev));
  QYOLO_RETURN_IF_ERROR(finish(data, ds, evaluator, options, ev));
  return ev;
}

Result<Evaluation> evaluate_results(const std::vector<std::string>& results_files, const std::string& data,
                                    const EvaluateOptions& options) {
  if (results_files.empty()) return invalid_argument("no results files given");
  GroundTruth all;
  QYOLO_ASSIGN_OR_RETURN(Dataset ds, load_dataset(data, options.limit, &all));
  CocoEvaluator evaluator(ds.gt);
  QYOLO_ASSIGN_OR_RETURN(std::vector<CocoDetection> dets,
                         load_coco_results_files(results_files, all, "the dataset '" + data + "'"));
  // Detections of dataset images past the limit are left out.
  std::set<int> evaluated;
  for (const auto& im : ds.images) evaluated.insert(im.id);
  std::erase_if(dets, [&](const CocoDetection& d) { return !evaluated.count(d.image_id); });
  QYOLO_RETURN_IF_ERROR(evaluator.add_detections(dets));
  Evaluation ev;
  ev.results_files = results_files;
  QYOLO_RETURN_IF_ERROR(finish(data, ds, evaluator, options, ev));
  return ev;
}

}  // namespace qyolo
