// `qyolo eval`: COCO mAP of a model/engine on a dataset folder (images/ + instances.json or labels/),
// or of saved detections (--results: COCO results json files, merged). The work is qyolo::evaluate
// (qyolo/evaluate.h); --plots hands its curves and matrix to scripts/plots.py. --labels-from is the
// accuracy proxy (quant/accuracy_proxy.h): agreement with an FP32 model's detections, no ground truth.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <tuple>

#include "cmd_common.h"
#include "commands.h"
#include "eval/coco_eval.h"
#include "plots.h"
#include "progress.h"
#include "quant/accuracy_proxy.h"
#include "qyolo/evaluate.h"
#include "runtime/detector.h"
#include "runtime/image_source.h"

namespace qyolo::cli {

namespace {
namespace fs = std::filesystem;

struct EvalArgs {
  EngineArgs engine;
  std::string data, json_out, results_out, plots_dir, compare;
  std::vector<std::string> results_in;           // --results: evaluate these detections, no model
  std::vector<std::string> model_options_given;  // options that make no sense with --results
  std::vector<int> imgsz;
  int batch = 0, limit = 0, max_det = 300;  // batch 0: the API's default
  float conf = 0.001f, iou = -1.f;          // iou < 0: the head's default (see register_eval)
  std::string head;
  bool quiet = false, cpu_prepost = false;
  // Accuracy proxy: labels from this FP32 model's own detections (score >= labels_conf) instead of
  // the dataset's ground truth; --skip leaves out the first images (those that calibrated the scales).
  std::string labels_from, labels_cache;
  float labels_conf = 0.25f;
  int skip = 0;
};

// The --json summary: numbers per class and, for a model run, what ran.
nlohmann::json summary_json(const Evaluation& ev) {
  nlohmann::json per_class = nlohmann::json::object();
  for (const auto& c : ev.classes)
    if (c.ap >= 0) per_class[c.name] = {{"ap", c.ap}, {"ap50", c.ap50}};
  nlohmann::json j = {{"data", ev.data},
                      {"images", ev.images},
                      {"map50_95", ev.map},
                      {"map50", ev.map50},
                      {"map75", ev.map75},
                      {"map_small", ev.map_small},
                      {"map_medium", ev.map_medium},
                      {"map_large", ev.map_large},
                      {"ar1", ev.ar1},
                      {"ar10", ev.ar10},
                      {"ar100", ev.ar100},
                      {"per_class", per_class}};
  if (!ev.results_files.empty()) {
    j["results"] = ev.results_files;
  } else {
    j.update({{"model", ev.model},
              {"device", ev.device},
              {"prepost_device", ev.prepost_device},
              {"batch", ev.batch},
              {"precision", ev.precision},
              {"calibration", ev.calibration},
              {"float_outputs", ev.float_outputs},
              {"imgsz", {ev.input_h, ev.input_w}},
              {"conf", ev.conf},
              {"iou", ev.iou},
              {"head", ev.head},
              {"images_per_s", ev.images_per_s},
              {"network_ms_per_image", ev.network_ms}});
  }
  return j;
}

// What scripts/plots.py draws: PR curves, confusion matrix, per-class AP.
nlohmann::json plot_json(const Evaluation& ev, const std::string& label) {
  nlohmann::json classes = nlohmann::json::array();
  for (const auto& c : ev.classes)
    classes.push_back({{"name", c.name},
                       {"id", c.category_id},
                       {"num_gt", c.num_gt},
                       {"ap", c.ap},
                       {"ap50", c.ap50},
                       {"precision50", c.precision50}});
  return {{"label", label},
          {"data", ev.data},
          {"map50_95", ev.map},
          {"map50", ev.map50},
          {"classes", classes},
          {"recall", ev.recall_points},
          {"precision50", ev.precision50},
          {"confusion", ev.confusion}};
}

std::string run_label(const Evaluation& ev) {
  if (!ev.results_files.empty()) return fs::path(ev.results_files[0]).filename().string();
  return fs::path(ev.model).filename().string() + " " + ev.precision + " (" + ev.device + ")";
}

// --compare: a `qyolo eval --json` summary, or a model (.onnx built with this run's flags but in
// FP32, or a .qengine) evaluated here on the same data.
Result<nlohmann::json> compare_plot_json(const EvalArgs& a, const EvaluateOptions& opt) {
  if (fs::path(a.compare).extension() == ".json") {
    nlohmann::json j;
    try {
      std::ifstream f(a.compare);
      if (!f) return not_found("--compare: cannot read '" + a.compare + "'");
      j = nlohmann::json::parse(f);
    } catch (const std::exception& e) {
      return corrupt("--compare: '" + a.compare + "' is not JSON: " + e.what());
    }
    if (!j.contains("per_class") || !j["per_class"].is_object())
      return invalid_argument("--compare: '" + a.compare +
                              "' has no per_class table (write it with qyolo eval --json)");
    nlohmann::json classes = nlohmann::json::array();
    for (auto& [name, v] : j["per_class"].items())
      classes.push_back({{"name", name}, {"ap", v.value("ap", -1.0)}, {"ap50", v.value("ap50", -1.0)}});
    std::string label = j.value("model", a.compare);
    label = fs::path(label).filename().string() + " " + j.value("precision", std::string());
    return nlohmann::json{{"label", label}, {"map50_95", j.value("map50_95", -1.0)}, {"classes", classes}};
  }
  EngineArgs other = a.engine;
  other.model.clear();
  other.engine.clear();
  (fs::path(a.compare).extension() == ".onnx" ? other.model : other.engine) = a.compare;
  other.int8 = other.fp16 = other.all_int8 = other.float_output = false;
  other.cache.clear();
  other.refined_weights.clear();
  QYOLO_ASSIGN_OR_RETURN(auto engine, open_engine(other));
  QYOLO_ASSIGN_OR_RETURN(Evaluation ev, evaluate(engine, a.data, opt));
  std::fprintf(stderr, "compare: %s mAP50-95 %.4f\n", run_label(ev).c_str(), ev.map);
  return plot_json(ev, run_label(ev));
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
  ref.int8 = ref.fp16 = ref.all_int8 = ref.float_output = false;
  ref.cache.clear();
  ref.refined_weights.clear();
  ref.float_layers.clear();
  ref.device = "cpu";  // the FP32 CPU engine is the reference
  QYOLO_ASSIGN_OR_RETURN(auto engine, open_engine(a.engine, !a.quiet));
  ProxyOptions po;
  po.label_conf = a.labels_conf;
  // Labels and detections at one letterbox size: the evaluated engine's own (its profile's opt
  // H/W) unless --imgsz, also when the labels model's default differs (an engine file's profile).
  QYOLO_ASSIGN_OR_RETURN(std::tie(po.input_h, po.input_w), image_size_for(a.imgsz, *engine));
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
  if (!a.labels_from.empty()) {
    if (!a.plots_dir.empty() || !a.compare.empty() || !a.results_out.empty())
      return invalid_argument("--labels-from prints the proxy's agreement mAP only; drop --plots, --compare "
                              "and --save-results");
    return run_proxy_eval(a);
  }
  if (a.skip != 0) return invalid_argument("--skip applies to --labels-from (the proxy's held-out images)");
  const bool from_results = !a.results_in.empty();
  if (from_results && !a.model_options_given.empty()) {
    std::string given;
    for (const auto& o : a.model_options_given) given += (given.empty() ? "" : ", ") + o;
    return invalid_argument("--results evaluates saved detections, without a model: drop " + given);
  }
  if (!a.compare.empty() && a.plots_dir.empty())
    return invalid_argument("--compare draws into --plots DIR: give it");
  EvaluateOptions opt;
  QYOLO_ASSIGN_OR_RETURN(std::tie(opt.input_h, opt.input_w), image_size_from(a.imgsz));
  opt.batch = a.batch;
  opt.limit = a.limit;
  opt.conf = a.conf;
  opt.iou = a.iou;
  opt.max_det = a.max_det;
  opt.head = a.head;
  opt.gpu_prepost = !a.cpu_prepost;
  opt.save_results = a.results_out;
  Evaluation ev;
  if (from_results) {
    QYOLO_ASSIGN_OR_RETURN(ev, evaluate_results(a.results_in, a.data, opt));
  } else {
    QYOLO_ASSIGN_OR_RETURN(auto engine, open_engine(a.engine));
    auto bar = std::make_shared<ProgressBar>("eval", 0, !a.quiet);
    opt.progress = [bar](size_t done, size_t total) { bar->update(done, total); };
    QYOLO_ASSIGN_OR_RETURN(ev, evaluate(engine, a.data, opt));
    bar->finish();
    if (!a.quiet) std::fprintf(stderr, "head: %s; NMS IoU %.2f\n", ev.head.c_str(), ev.iou);
  }

  std::printf("%s", ev.summary.c_str());
  std::printf("images %d  gt boxes %d  detections %d\n", ev.images, ev.num_gt, ev.num_dets);
  std::printf("mAP50-95 %.4f  mAP50 %.4f  mAP75 %.4f\n", ev.map, ev.map50, ev.map75);
  if (from_results) {
    std::string line = "detections: from results files";
    for (const auto& f : a.results_in) line += " " + f;
    std::printf("%s\n", line.c_str());
  } else {
    std::printf(
        "speed: %.1f images/s end to end (decode %.1f ms, pre %.1f ms, network %.1f ms, NMS %.1f ms per "
        "image; "
        "batch %d, network on %s, pre/post-processing on %s; set-up %.1f ms once, not included)\n",
        ev.images_per_s, ev.decode_ms, ev.pre_ms, ev.network_ms, ev.post_ms, ev.batch, ev.device.c_str(),
        ev.prepost_device.c_str(), ev.setup_ms);
  }
  if (!a.quiet) {
    std::printf("\n%-16s %8s %8s\n", "class", "AP50-95", "AP50");
    for (const auto& c : ev.classes)
      if (c.ap >= 0) std::printf("%-16s %8.3f %8.3f\n", c.name.c_str(), c.ap, c.ap50);
  }
  if (!a.json_out.empty())
    QYOLO_RETURN_IF_ERROR(write_text_atomic(a.json_out, summary_json(ev).dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"));
  if (!a.plots_dir.empty()) {
    nlohmann::json data = plot_json(ev, run_label(ev));
    if (!a.compare.empty()) {
      EvaluateOptions quiet = opt;
      quiet.progress = nullptr;
      quiet.save_results.clear();
      QYOLO_ASSIGN_OR_RETURN(data["compare"], compare_plot_json(a, quiet));
    }
    QYOLO_ASSIGN_OR_RETURN(std::vector<std::string> written, draw_plots("eval", data, a.plots_dir));
    for (const auto& f : written) std::printf("wrote %s\n", f.c_str());
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
  cmd->add_option("--plots", a->plots_dir,
                  "write PNGs here: precision-recall curves (overall and per class), confusion matrix "
                  "(scripts/plots.py, matplotlib)");
  cmd->add_option(
      "--compare", a->compare,
      "with --plots: per-class AP bars against another run: a `qyolo eval --json` summary, or a model "
      "(.onnx built in FP32 with the same flags, or a .qengine) evaluated here on the same data");
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
