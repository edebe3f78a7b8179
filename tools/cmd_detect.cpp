// `qyolo detect`: annotated images + one JSON with every detection in original-image pixels.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <tuple>
#include <nlohmann/json.hpp>

#include "cmd_common.h"
#include "commands.h"
#include "image/draw.h"
#include "progress.h"
#include "runtime/detector.h"
#include "runtime/image_source.h"

namespace qyolo::cli {

namespace {

struct DetectArgs {
  EngineArgs engine;
  std::string source, out = "runs/detect";
  float conf = 0.25f, iou = -1.f;  // iou < 0: the head's ultralytics default
  std::string head;
  int max_det = 300;
  std::vector<int> imgsz, classes;
  bool agnostic = false, no_images = false, cpu_prepost = false;
};

std::string class_name(const std::vector<std::string>& names, int id) {
  if (id >= 0 && static_cast<size_t>(id) < names.size() && !names[static_cast<size_t>(id)].empty())
    return names[static_cast<size_t>(id)];
  return "class" + std::to_string(id);
}


Status run_detect(const DetectArgs& a) {
  QYOLO_ASSIGN_OR_RETURN(auto files, list_image_files(a.source));
  QYOLO_ASSIGN_OR_RETURN(auto engine, open_engine(a.engine));
  DetectOptions opt;
  QYOLO_ASSIGN_OR_RETURN(std::tie(opt.input_h, opt.input_w), image_size_from(a.imgsz));
  opt.nms.conf = a.conf;
  opt.nms.iou = a.iou;
  opt.nms.max_det = a.max_det;
  opt.nms.classes = a.classes;
  opt.nms.agnostic = a.agnostic;
  opt.head = a.head;
  opt.iou_objectness = 0.45f;     // YOLOv5 detect.py
  opt.iou_no_objectness = 0.7f;   // YOLOv8/YOLO11 `yolo predict`
  opt.gpu_prepost = !a.cpu_prepost;
  QYOLO_ASSIGN_OR_RETURN(auto detector, Detector::create(engine, opt));
  // One-time set-up (executor for this size, warm-up run, head check) is reported once, apart from
  // the per-image times, which are then steady-state.
  QYOLO_ASSIGN_OR_RETURN(double setup_s, detector->prepare(1));
  std::fprintf(stderr, "head: %s; NMS IoU %.2f\n", detector->head_description().c_str(), detector->options().nms.iou);
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec) return io_error("cannot create output folder '" + a.out + "': " + ec.message());

  const auto& names = engine->info().class_names;
  nlohmann::json results = nlohmann::json::array();
  ProgressBar bar("detect", files.size(), files.size() > 1);
  double infer_s = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    QYOLO_ASSIGN_OR_RETURN(Image img, load_image(files[i]));
    QYOLO_ASSIGN_OR_RETURN(auto dets, detector->detect({&img}));
    infer_s += detector->last_infer_s;
    nlohmann::json jd = nlohmann::json::array();
    for (const auto& d : dets[0]) {
      jd.push_back({{"box_xyxy", {d.x1, d.y1, d.x2, d.y2}},
                    {"score", d.score},
                    {"class_id", d.class_id},
                    {"name", class_name(names, d.class_id)}});
      if (!a.no_images) {
        RGB color = class_color(d.class_id);
        draw_box(img, d.x1, d.y1, d.x2, d.y2, color, std::max(2, label_scale(img)));
        char label[128];
        std::snprintf(label, sizeof label, "%s %.2f", class_name(names, d.class_id).c_str(), d.score);
        draw_label(img, d.x1, d.y1, label, color);
      }
    }
    std::string stem = std::filesystem::path(files[i]).stem().string();
    if (!a.no_images) QYOLO_RETURN_IF_ERROR(save_jpeg((std::filesystem::path(a.out) / (stem + ".jpg")).string(), img));
    results.push_back({{"image", files[i]}, {"width", img.width}, {"height", img.height}, {"detections", jd}});
    if (files.size() == 1 || !isatty(fileno(stdout))) {
      std::printf("%s: %zu detections (%.1f ms network)\n", files[i].c_str(), dets[0].size(),
                  detector->last_infer_s * 1e3);
      for (const auto& d : dets[0])
        std::printf("  %-14s %.3f  [%.1f, %.1f, %.1f, %.1f]\n", class_name(names, d.class_id).c_str(), d.score, d.x1,
                    d.y1, d.x2, d.y2);
    }
    bar.update(i + 1);
  }
  bar.finish();
  const char* prepost = device_name(detector->prepost_device());
  nlohmann::json doc = {{"model", engine->info().source},
                        {"device", device_name(engine->options().device)},
                        {"prepost_device", prepost},
                        {"precision", precision_name(engine->options().precision)},
                        {"imgsz", {detector->options().input_h, detector->options().input_w}},
                        {"conf", a.conf},
                        {"iou", detector->options().nms.iou},
                        {"head", detector->head_description()},
                        {"results", results}};
  std::string json_path = (std::filesystem::path(a.out) / "detections.json").string();
  QYOLO_RETURN_IF_ERROR(
      write_text_atomic(json_path, doc.dump(1, ' ', false, nlohmann::json::error_handler_t::replace)));
  std::printf("%zu images, %.1f ms/image network on %s (set-up %.1f ms once, not included), pre/post-processing on "
              "%s; results in %s (annotated images + detections.json)\n",
              files.size(), infer_s * 1e3 / static_cast<double>(files.size()), device_name(engine->options().device),
              setup_s * 1e3, prepost, a.out.c_str());
  return Status::ok();
}

}  // namespace

void register_detect(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("detect", "detect objects in an image or a folder; writes annotated images + JSON");
  auto a = std::make_shared<DetectArgs>();
  add_engine_options(cmd, a->engine);
  cmd->add_option("--source,-s", a->source, "image file or folder")->required();
  cmd->add_option("--out,-o", a->out, "output folder")->capture_default_str();
  add_nms_options(cmd, a->conf, a->iou, a->max_det, "0.45 for heads with objectness (YOLOv5, YOLOX), 0.7 without (YOLOv8/YOLO11)");
  add_head_option(cmd, a->head);
  cmd->add_option("--classes", a->classes, "keep only these class ids");
  add_imgsz_option(cmd, a->imgsz);
  cmd->add_flag("--agnostic-nms", a->agnostic, "NMS across classes");
  cmd->add_flag("--no-images", a->no_images, "write only detections.json");
  cmd->add_flag("--cpu-prepost", a->cpu_prepost,
                "cuda engines: letterbox and NMS on the CPU instead of the GPU (the CPU engines' path)");
  cmd->callback([&exit_code, a] {
    Status st = run_detect(*a);
    exit_code = st ? 0 : report("detect", st);
  });
}


}  // namespace qyolo::cli
