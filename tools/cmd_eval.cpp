// `qyolo eval`: COCO mAP of a model/engine on a dataset folder (images/ + instances.json or labels/),
// or of saved detections (--results: COCO results json files, merged). The work is qyolo::evaluate
// (qyolo/evaluate.h); --plots hands its curves and matrix to scripts/plots.py.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <tuple>

#include "cmd_common.h"
#include "commands.h"
#include "plots.h"
#include "progress.h"
#include "qyolo/evaluate.h"

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
  other.int8 = other.fp16 = other.all_int8 = false;
  other.cache.clear();
  QYOLO_ASSIGN_OR_RETURN(auto engine, open_engine(other));
  QYOLO_ASSIGN_OR_RETURN(Evaluation ev, evaluate(engine, a.data, opt));
  std::fprintf(stderr, "compare: %s mAP50-95 %.4f\n", run_label(ev).c_str(), ev.map);
  return plot_json(ev, run_label(ev));
}

Status run_eval(const EvalArgs& a) {
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
