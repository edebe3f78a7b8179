// `qyolo eval`: COCO mAP of a model/engine on a dataset folder (images/ + instances.json or labels/),
// or of saved detections (--results: COCO results json files, merged).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "cmd_common.h"
#include "commands.h"
#include "eval/coco_eval.h"
#include "progress.h"
#include "quant/accuracy_proxy.h"
#include "runtime/detector.h"
#include "runtime/image_source.h"

namespace qyolo::cli {

namespace {
namespace fs = std::filesystem;

struct EvalArgs {
  EngineArgs engine;
  std::string data, json_out, results_out;
  std::vector<std::string> results_in;           // --results: evaluate these detections, no model
  std::vector<std::string> model_options_given;  // options that make no sense with --results
  std::vector<int> imgsz;
  int batch = 0, limit = 0, max_det = 300;  // batch 0: default_batch()
  float conf = 0.001f, iou = -1.f;          // iou < 0: the head's default (see register_eval)
  std::string head;
  bool quiet = false, cpu_prepost = false;
  // Accuracy proxy: labels from this FP32 model's own detections (score >= labels_conf) instead of
  // the dataset's ground truth; --skip leaves out the first images (those that calibrated the scales).
  std::string labels_from, labels_cache;
  float labels_conf = 0.25f;
  int skip = 0;
};

// --batch default: 8 on cuda engines (GPU pre/post and network batched; within the profile's
// batch range), 1 on the CPU.
int default_batch(const Engine& engine) {
  if (engine.options().device != Device::kCuda) return 1;
  const ShapeProfile p = engine.profile();
  if (p.min.empty() || p.max.empty()) return 1;
  return static_cast<int>(std::clamp<int64_t>(8, p.min[0], p.max[0]));
}

struct Dataset {
  GroundTruth gt;                      // restricted to `images`
  std::vector<GtImage> images;         // evaluated: by file name, the first --limit
  std::vector<int> class_to_category;  // model class index -> GT category id (empty: identity)
};

// The dataset folder's ground truth. With --limit, `all` (when given) receives it before the
// restriction to the first N images.
Result<Dataset> load_dataset(const EvalArgs& a, GroundTruth* all = nullptr) {
  fs::path data(a.data);
  std::error_code ec;
  if (!fs::is_directory(data / "images", ec))
    return not_found("dataset '" + a.data +
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
    return not_found("dataset '" + a.data + "' has neither instances.json nor labels/");
  }
  if (all) *all = gt;
  ds.images = gt.images;
  std::sort(ds.images.begin(), ds.images.end(),
            [](const GtImage& x, const GtImage& y) { return x.file_name < y.file_name; });
  if (a.limit > 0 && static_cast<size_t>(a.limit) < ds.images.size()) {
    ds.images.resize(static_cast<size_t>(a.limit));
    // Evaluate on the subset only.
    std::set<int> keep;
    for (const auto& im : ds.images) keep.insert(im.id);
    std::erase_if(gt.images, [&](const GtImage& im) { return !keep.count(im.id); });
    std::erase_if(gt.annotations, [&](const GtAnnotation& an) { return !keep.count(an.image_id); });
  }
  if (ds.images.empty()) return not_found("dataset '" + a.data + "' lists no images");
  return ds;
}

// Where the detections came from: the line printed in place of the speed line, and the --json
// summary's fields that describe it.
struct DetectionSource {
  std::string line;
  nlohmann::json fields = nlohmann::json::object();
};

// Runs the model over the dataset's images.
Result<DetectionSource> detect_with_model(const EvalArgs& a, const Dataset& ds, CocoEvaluator& evaluator) {
  const fs::path data(a.data);
  const std::vector<GtImage>& images = ds.images;
  QYOLO_ASSIGN_OR_RETURN(auto engine, open_engine(a.engine));
  DetectOptions opt;
  QYOLO_ASSIGN_OR_RETURN(std::tie(opt.input_h, opt.input_w), image_size_from(a.imgsz));
  opt.nms.conf = a.conf;
  opt.nms.iou = a.iou;
  opt.nms.max_det = a.max_det;
  opt.nms.multi_label = true;  // as ultralytics val.py
  opt.head = a.head;
  opt.iou_objectness = 0.65f;    // what qyolo always used for YOLOv5 (its README's mAP runs)
  opt.iou_no_objectness = 0.7f;  // YOLOv8/YOLO11 `yolo val`
  opt.gpu_prepost = !a.cpu_prepost;
  QYOLO_ASSIGN_OR_RETURN(auto detector, Detector::create(engine, opt));

  const size_t batch = static_cast<size_t>(a.batch > 0 ? a.batch : default_batch(*engine));
  // Set-up for the batch sizes this run uses (a full batch, a partial last one), once, apart from the
  // steady-state times below.
  double setup_s = 0;
  for (size_t n : {std::min(batch, images.size()), images.size() % batch}) {
    if (n == 0) continue;
    QYOLO_ASSIGN_OR_RETURN(double s, detector->prepare(static_cast<int>(n)));
    setup_s += s;
  }
  if (!a.quiet)
    std::fprintf(stderr, "head: %s; NMS IoU %.2f\n", detector->head_description().c_str(),
                 detector->options().nms.iou);
  ProgressBar bar("eval", images.size(), !a.quiet);
  double pre_s = 0, infer_s = 0, post_s = 0, decode_s = 0;
  auto t_start = std::chrono::steady_clock::now();
  const char* prepost = device_name(detector->prepost_device());
  for (size_t start = 0; start < images.size(); start += batch) {
    size_t n = std::min(batch, images.size() - start);
    std::vector<Image> decoded(n);
    std::vector<Status> errors(n);
    auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(dynamic)
    for (size_t i = 0; i < n; ++i) {
      auto img = load_image((data / "images" / images[start + i].file_name).string());
      if (img)
        decoded[i] = std::move(img).value();
      else
        errors[i] = img.status();
    }
    for (const auto& e : errors) QYOLO_RETURN_IF_ERROR(e);
    decode_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::vector<const Image*> ptrs;
    for (const auto& d : decoded) ptrs.push_back(&d);
    QYOLO_ASSIGN_OR_RETURN(auto dets, detector->detect(ptrs));
    pre_s += detector->last_pre_s;
    infer_s += detector->last_infer_s;
    post_s += detector->last_post_s;
    for (size_t i = 0; i < n; ++i)
      QYOLO_RETURN_IF_ERROR(evaluator.add_detections(images[start + i].id, dets[i], ds.class_to_category));
    bar.update(start + n);
  }
  bar.finish();
  double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();

  const double n_img = static_cast<double>(images.size());
  DetectionSource src;
  char line[512];
  std::snprintf(
      line, sizeof line,
      "speed: %.1f images/s end to end (decode %.1f ms, pre %.1f ms, network %.1f ms, NMS %.1f ms per image; "
      "batch %zu, network on %s, pre/post-processing on %s; set-up %.1f ms once, not included)",
      n_img / total_s, decode_s * 1e3 / n_img, pre_s * 1e3 / n_img, infer_s * 1e3 / n_img,
      post_s * 1e3 / n_img, batch, device_name(engine->options().device), prepost, setup_s * 1e3);
  src.line = line;
  src.fields = {{"model", engine->info().source},
                {"device", device_name(engine->options().device)},
                {"prepost_device", prepost},
                {"batch", batch},
                {"precision", precision_name(engine->options().precision)},
                {"calibration", engine->options().calibration_file},
                {"imgsz", {detector->options().input_h, detector->options().input_w}},
                {"conf", a.conf},
                {"iou", detector->options().nms.iou},
                {"head", detector->head_description()},
                {"images_per_s", n_img / total_s},
                {"network_ms_per_image", infer_s * 1e3 / n_img}};
  return src;
}

// Detections from --results files (COCO results json, e.g. from --save-results). Several files
// merge; an image's detections must all come from one file. Detections of dataset images past
// --limit are left out; dataset images without detections in any file have none.
Result<DetectionSource> detections_from_results(const EvalArgs& a, const GroundTruth& all, const Dataset& ds,
                                                CocoEvaluator& evaluator) {
  QYOLO_ASSIGN_OR_RETURN(std::vector<CocoDetection> dets,
                         load_coco_results_files(a.results_in, all, "the dataset '" + a.data + "'"));
  std::set<int> evaluated;
  for (const auto& im : ds.images) evaluated.insert(im.id);
  std::erase_if(dets, [&](const CocoDetection& d) { return !evaluated.count(d.image_id); });
  QYOLO_RETURN_IF_ERROR(evaluator.add_detections(dets));
  DetectionSource src;
  src.line = "detections: from results files";
  for (const auto& f : a.results_in) src.line += " " + f;
  src.fields = {{"results", a.results_in}};
  return src;
}

// --labels-from: agreement mAP of the engine with an FP32 model's detections on held-out images
// (src/quant/accuracy_proxy.h); the dataset's own labels are not read.
Status run_proxy_eval(const EvalArgs& a) {
  if (!a.results_in.empty())
    return invalid_argument("--labels-from runs models; it cannot evaluate --results files");
  if (a.skip < 0) return invalid_argument("--skip must be >= 0");
  std::string folder = a.data;
  if (fs::is_directory(fs::path(a.data) / "images")) folder += "/images";
  QYOLO_ASSIGN_OR_RETURN(auto files, list_image_files(folder));
  if (static_cast<size_t>(a.skip) >= files.size())
    return invalid_argument("--skip " + std::to_string(a.skip) + " leaves none of the " +
                            std::to_string(files.size()) + " images of '" + folder + "'");
  files.erase(files.begin(), files.begin() + a.skip);
  if (a.limit > 0 && static_cast<size_t>(a.limit) < files.size()) files.resize(static_cast<size_t>(a.limit));
  EngineArgs ref = a.engine;
  ref.model = a.labels_from;
  ref.engine.clear();
  ref.int8 = ref.fp16 = ref.all_int8 = false;
  ref.cache.clear();
  ref.float_layers.clear();
  ref.device = "cpu";  // the FP32 CPU engine is the reference
  QYOLO_ASSIGN_OR_RETURN(auto engine, open_engine(a.engine, !a.quiet));
  ProxyOptions po;
  po.label_conf = a.labels_conf;
  QYOLO_ASSIGN_OR_RETURN(std::tie(po.input_h, po.input_w), image_size_from(a.imgsz));
  po.head = a.head;
  auto t0 = std::chrono::steady_clock::now();
  // --labels-cache: the FP32 detections of an earlier run, valid only for the same model, images,
  // letterbox and head (all recorded in it and compared).
  const nlohmann::json key = {
      {"labels_from", a.labels_from}, {"images", files}, {"imgsz", a.imgsz}, {"head", a.head}};
  std::unique_ptr<AccuracyProxy> proxy;
  if (!a.labels_cache.empty() && fs::exists(a.labels_cache)) {
    std::ifstream f(a.labels_cache);
    nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.contains("key") || !j.contains("detections"))
      return corrupt("--labels-cache '" + a.labels_cache + "' is not a labels cache written by qyolo eval");
    if (j["key"] != key)
      return invalid_argument(
          "--labels-cache '" + a.labels_cache +
          "' holds labels of another model, image list, --imgsz or --head; delete it or give another path");
    std::vector<std::vector<Detection>> ref;
    for (const auto& image : j["detections"]) {
      ref.emplace_back();
      for (const auto& d : image)
        ref.back().push_back({d[0].get<float>(), d[1].get<float>(), d[2].get<float>(), d[3].get<float>(),
                              d[4].get<float>(), d[5].get<int>()});
    }
    QYOLO_ASSIGN_OR_RETURN(proxy, AccuracyProxy::create(std::move(ref), files, po));
  } else {
    QYOLO_ASSIGN_OR_RETURN(auto ref_engine, open_engine(ref, !a.quiet));
    QYOLO_ASSIGN_OR_RETURN(proxy, AccuracyProxy::create(ref_engine, files, po));
    if (!a.labels_cache.empty()) {
      nlohmann::json dets = nlohmann::json::array();
      for (const auto& image : proxy->reference()) {
        nlohmann::json list = nlohmann::json::array();
        for (const auto& d : image) list.push_back({d.x1, d.y1, d.x2, d.y2, d.score, d.class_id});
        dets.push_back(list);
      }
      QYOLO_RETURN_IF_ERROR(write_text_atomic(
          a.labels_cache, nlohmann::json{{"key", key}, {"detections", dets}}.dump() + "\n"));
    }
  }
  QYOLO_ASSIGN_OR_RETURN(CocoMetrics m, proxy->evaluate(engine));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s", format_summary(m).c_str());
  std::printf(
      "images %zu (after --skip %d)  labels %zu (FP32 detections with score >= %.2f from %s)  detections "
      "%d\n",
      files.size(), a.skip, proxy->num_labels(), a.labels_conf, a.labels_from.c_str(), m.num_dets);
  std::printf("mAP50-95 %.4f  mAP50 %.4f  mAP75 %.4f\n", m.map, m.map50, m.map75);
  std::printf("proxy: agreement with FP32, %.1f s\n", secs);
  if (!a.json_out.empty()) {
    nlohmann::json j = {{"data", a.data},
                        {"images", files.size()},
                        {"skip", a.skip},
                        {"labels_from", a.labels_from},
                        {"labels_conf", a.labels_conf},
                        {"labels", proxy->num_labels()},
                        {"map50_95", m.map},
                        {"map50", m.map50},
                        {"map75", m.map75},
                        {"model", engine->info().source},
                        {"precision", precision_name(engine->options().precision)},
                        {"calibration", engine->options().calibration_file},
                        {"float_layers", engine->options().float_layers_regex}};
    QYOLO_RETURN_IF_ERROR(write_text_atomic(a.json_out, j.dump(1) + "\n"));
  }
  return Status::ok();
}

Status run_eval(const EvalArgs& a) {
  if (!a.labels_from.empty()) return run_proxy_eval(a);
  if (a.skip != 0) return invalid_argument("--skip applies to --labels-from (the proxy's held-out images)");
  const bool from_results = !a.results_in.empty();
  if (from_results && !a.model_options_given.empty()) {
    std::string given;
    for (const auto& o : a.model_options_given) given += (given.empty() ? "" : ", ") + o;
    return invalid_argument("--results evaluates saved detections, without a model: drop " + given);
  }
  GroundTruth all;
  QYOLO_ASSIGN_OR_RETURN(Dataset ds, load_dataset(a, from_results ? &all : nullptr));
  CocoEvaluator evaluator(ds.gt);
  DetectionSource src;
  if (from_results) {
    QYOLO_ASSIGN_OR_RETURN(src, detections_from_results(a, all, ds, evaluator));
  } else {
    QYOLO_ASSIGN_OR_RETURN(src, detect_with_model(a, ds, evaluator));
  }
  QYOLO_ASSIGN_OR_RETURN(CocoMetrics m, evaluator.evaluate());

  const GroundTruth& gt = ds.gt;
  std::printf("%s", format_summary(m).c_str());
  std::printf("images %zu  gt boxes %d  detections %d\n", ds.images.size(), m.num_gt, m.num_dets);
  std::printf("mAP50-95 %.4f  mAP50 %.4f  mAP75 %.4f\n", m.map, m.map50, m.map75);
  std::printf("%s\n", src.line.c_str());

  std::map<int, std::string> cat_names;
  for (const auto& c : gt.categories) cat_names[c.id] = c.name;
  if (!a.quiet) {
    std::printf("\n%-16s %8s %8s\n", "class", "AP50-95", "AP50");
    for (size_t i = 0; i < m.per_class_ap.size(); ++i) {
      auto [cat, ap] = m.per_class_ap[i];
      if (ap < 0) continue;
      double ap50 = i < m.per_class_ap50.size() ? m.per_class_ap50[i].second : -1;
      std::string name = cat_names.count(cat) ? cat_names[cat] : std::to_string(cat);
      std::printf("%-16s %8.3f %8.3f\n", name.c_str(), ap, ap50);
    }
  }
  if (!a.results_out.empty())
    QYOLO_RETURN_IF_ERROR(write_coco_results_json(a.results_out, evaluator.detections()));
  if (!a.json_out.empty()) {
    nlohmann::json per_class = nlohmann::json::object();
    for (size_t i = 0; i < m.per_class_ap.size(); ++i) {
      auto [cat, ap] = m.per_class_ap[i];
      if (ap < 0) continue;
      std::string name = cat_names.count(cat) ? cat_names[cat] : std::to_string(cat);
      per_class[name] = {{"ap", ap}, {"ap50", i < m.per_class_ap50.size() ? m.per_class_ap50[i].second : -1}};
    }
    nlohmann::json j = {{"data", a.data},
                        {"images", ds.images.size()},
                        {"map50_95", m.map},
                        {"map50", m.map50},
                        {"map75", m.map75},
                        {"map_small", m.map_small},
                        {"map_medium", m.map_medium},
                        {"map_large", m.map_large},
                        {"ar1", m.ar1},
                        {"ar10", m.ar10},
                        {"ar100", m.ar100},
                        {"per_class", per_class}};
    j.update(src.fields);
    QYOLO_RETURN_IF_ERROR(write_text_atomic(a.json_out, j.dump(1) + "\n"));
  }
  return Status::ok();
}

}  // namespace

void register_eval(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("eval", "COCO mAP on a dataset (images/ + instances.json or YOLO labels/)");
  auto a = std::make_shared<EvalArgs>();
  add_engine_options(cmd, a->engine);
  cmd->add_option("--data,-d", a->data, "dataset folder, e.g. ../shared/data/val500")->required();
  add_imgsz_option(cmd, a->imgsz);
  cmd->add_option("--batch", a->batch,
                  "images per batch (default: 8 on cuda engines, within the profile; 1 on cpu)");
  add_nms_options(cmd, a->conf, a->iou, a->max_det,
                  "0.65 for heads with objectness (YOLOv5, YOLOX), 0.7 without (YOLOv8/YOLO11)");
  add_head_option(cmd, a->head);
  cmd->add_option("--limit", a->limit, "evaluate only the first N images (by file name)");
  cmd->add_option("--json", a->json_out, "write a machine-readable summary here");
  cmd->add_option("--save-results", a->results_out, "write COCO results json (detections) here");
  cmd->add_flag("--quiet,-q", a->quiet, "no progress bar or per-class table");
  cmd->add_flag("--cpu-prepost", a->cpu_prepost,
                "cuda engines: letterbox and NMS on the CPU instead of the GPU (the CPU engines' path)");
  cmd->add_option("--results", a->results_in,
                  "evaluate these COCO results files (e.g. from --save-results; repeat to merge files that "
                  "cover different images) instead of running a model");
  cmd->add_option(
      "--labels-from", a->labels_from,
      "accuracy proxy: FP32 ONNX model whose own detections are the labels (no ground truth read; "
      "see docs/accuracy.md)");
  cmd->add_option(
      "--labels-cache", a->labels_cache,
      "with --labels-from: keep the FP32 detections in this file and reuse them on later runs with the "
      "same model, images, --imgsz and --head");
  cmd->add_option("--labels-conf", a->labels_conf,
                  "with --labels-from: score a detection needs to become a label")
      ->capture_default_str();
  cmd->add_option(
      "--skip", a->skip,
      "with --labels-from: leave out the first N images by file name (e.g. the calibration images)");
  // Options of the model run, refused with --results.
  std::vector<CLI::Option*> model_options;
  for (const char* name : {"--model", "--engine", "--device", "--int8", "--fp16", "--all-int8", "--cache",
                           "--float-layers", "--min-shapes", "--opt-shapes", "--max-shapes", "--imgsz",
                           "--batch", "--conf", "--iou", "--max-det", "--cpu-prepost", "--head"})
    if (CLI::Option* o = cmd->get_option_no_throw(name)) model_options.push_back(o);
  cmd->callback([&exit_code, a, model_options] {
    a->model_options_given.clear();
    for (const CLI::Option* o : model_options)
      if (o->count() > 0) a->model_options_given.push_back(o->get_name());
    Status st = run_eval(*a);
    exit_code = st ? 0 : report("eval", st);
  });
}

}  // namespace qyolo::cli
