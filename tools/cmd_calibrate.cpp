// `qyolo calibrate`: PTQ calibration -> TensorRT-format calibration cache.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "calib/calib_cache.h"
#include "cmd_common.h"
#include "commands.h"
#include "progress.h"
#include "quant/calibrate_model.h"
#include "quant/scale_choice.h"
#include "runtime/detector.h"
#include "runtime/image_source.h"

namespace qyolo::cli {

namespace {
struct CalibrateArgs {
  EngineArgs engine;
  // Default chosen on the held-out proxy (docs/accuracy.md): mse agreed best with FP32.
  std::string calib, algo = "mse", cache;
  std::string choose_from;  // caches to choose among per tensor (no calibration pass)
  double percentile = 99.99;
  int num = 128, batch = 8, judge_images = 4;
  std::vector<int> imgsz;
};

// "minmax,mse" -> algorithms; several need "{algo}" in the cache path (one cache each).
Result<std::vector<std::pair<CalibAlgo, std::string>>> parse_algos(const CalibrateArgs& a) {
  std::vector<std::pair<CalibAlgo, std::string>> out;
  size_t start = 0;
  while (start <= a.algo.size()) {
    size_t end = a.algo.find(',', start);
    if (end == std::string::npos) end = a.algo.size();
    const std::string name = a.algo.substr(start, end - start);
    QYOLO_ASSIGN_OR_RETURN(CalibAlgo algo, parse_calib_algo(name));
    out.emplace_back(algo, name);
    start = end + 1;
  }
  const size_t slot = a.cache.find("{algo}");
  if (out.size() > 1 && slot == std::string::npos)
    return invalid_argument("--algo " + a.algo +
                            " writes one cache per algorithm: put {algo} in --cache, e.g. m.{algo}.cache");
  for (auto& [algo, path] : out) {
    std::string name = path;
    path = a.cache;
    if (slot != std::string::npos) path.replace(slot, 6, name);
  }
  return out;
}

// --choose-from: no calibration pass; the per-tensor choice among existing caches of this model.
Status run_choose(const CalibrateArgs& a) {
  std::vector<CalibrationTable> candidates;
  for (size_t start = 0; start <= a.choose_from.size();) {
    size_t end = a.choose_from.find(',', start);
    if (end == std::string::npos) end = a.choose_from.size();
    QYOLO_ASSIGN_OR_RETURN(CalibrationTable t,
                           read_calibration_file(a.choose_from.substr(start, end - start)));
    candidates.push_back(std::move(t));
    start = end + 1;
  }
  QYOLO_ASSIGN_OR_RETURN(auto engine, open_engine(a.engine));
  QYOLO_ASSIGN_OR_RETURN(auto hw, image_size_for(a.imgsz, *engine));
  std::string folder = a.calib;
  if (std::filesystem::is_directory(std::filesystem::path(a.calib) / "images")) folder += "/images";
  QYOLO_ASSIGN_OR_RETURN(auto files, list_image_files(folder));
  if (engine->profile().opt[0] != 1)
    return unsupported("--choose-from judges batch-1 inputs; this model's batch is fixed");
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < files.size() && static_cast<int>(i) < std::min(a.judge_images, a.num); ++i) {
    QYOLO_ASSIGN_OR_RETURN(Image img, load_image(files[i]));
    inputs.push_back(Detector::preprocess({&img}, hw.first, hw.second, nullptr));
  }
  auto t0 = std::chrono::steady_clock::now();
  ScaleChoiceReport choice;
  QYOLO_ASSIGN_OR_RETURN(CalibrationTable table,
                         choose_scales_per_tensor(*engine, inputs, candidates, {}, &choice));
  QYOLO_RETURN_IF_ERROR(write_calibration_cache(a.cache, table));
  std::string picks;
  for (const auto& [name, n] : choice.chosen)
    picks += (picks.empty() ? "" : ", ") + name + " " + std::to_string(n);
  std::printf("per-tensor choice over %d conv inputs (judged on %zu images): %s\n", choice.tensors_judged,
              inputs.size(), picks.c_str());
  std::printf("wrote %s: %zu tensors, %s, %.1f s\n", a.cache.c_str(), table.scales.size(),
              table.algorithm.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return Status::ok();
}

Status run_calibrate(const CalibrateArgs& a) {
  if (!a.choose_from.empty()) return run_choose(a);
  const bool per_tensor = a.algo == "auto";
  CalibrateArgs as_mse = a;
  if (per_tensor) as_mse.algo = "mse";
  QYOLO_ASSIGN_OR_RETURN(auto algos, parse_algos(as_mse));
  if (a.engine.int8 || a.engine.fp16)
    return invalid_argument("calibration runs the FP32 model; drop --int8/--fp16");
  EngineArgs ea = a.engine;
  // Dynamic models calibrate at a stated shape (like TensorRT's calibration profile).
  QYOLO_ASSIGN_OR_RETURN(auto engine, open_engine(ea));
  CalibrationOptions opt;
  opt.algo = algos[0].first;
  opt.percentile = a.percentile;
  opt.num_images = a.num;
  opt.batch = a.batch;
  QYOLO_ASSIGN_OR_RETURN(auto hw, image_size_for(a.imgsz, *engine));
  opt.shape = {a.batch, 3, hw.first, hw.second};
  bool dynamic = false;
  for (auto d : engine->info().input_dims) dynamic |= d < 0;
  if (!dynamic) {
    // A static model fixes the batch: calibrate at its shape.
    opt.shape = engine->profile().opt;
    if (opt.batch != opt.shape[0])
      std::fprintf(stderr, "note: static model with batch %lld: calibrating with --batch %lld\n",
                   static_cast<long long>(opt.shape[0]), static_cast<long long>(opt.shape[0]));
    opt.batch = static_cast<int>(opt.shape[0]);
  }
  std::fprintf(stderr, "calibrating %s with %s on %d images from %s at %s%s\n", engine->info().source.c_str(),
               a.algo.c_str(), a.num, a.calib.c_str(), shape_str(opt.shape).c_str(),
               dynamic ? " (calibration profile of a dynamic model)" : "");
  ProgressBar bar("calibrate", static_cast<size_t>(a.num));
  CalibrationReport report;
  if (per_tensor) {
    ScaleChoiceReport choice;
    QYOLO_ASSIGN_OR_RETURN(CalibrationTable table, calibrate_per_tensor(
                                                       *engine, a.calib, opt, a.judge_images, &report,
                                                       [&](size_t d, size_t) { bar.update(d); }, &choice));
    bar.finish();
    QYOLO_RETURN_IF_ERROR(write_calibration_cache(a.cache, table));
    std::string picks;
    for (const auto& [name, n] : choice.chosen)
      picks += (picks.empty() ? "" : ", ") + name + " " + std::to_string(n);
    std::printf("per-tensor choice over %d conv inputs (judged on %d images): %s\n", choice.tensors_judged,
                a.judge_images, picks.c_str());
    std::printf("wrote %s: %d tensors, %s, %d images at %s, %.1f s\n", a.cache.c_str(), report.tensors,
                table.algorithm.c_str(), report.images, shape_str(report.shape).c_str(), report.seconds);
    return Status::ok();
  }
  std::vector<CalibAlgo> list;
  for (const auto& [algo, path] : algos) list.push_back(algo);
  QYOLO_ASSIGN_OR_RETURN(auto tables, calibrate_algorithms(*engine, a.calib, opt, list, &report,
                                                           [&](size_t d, size_t) { bar.update(d); }));
  bar.finish();
  for (size_t i = 0; i < tables.size(); ++i) {
    QYOLO_RETURN_IF_ERROR(write_calibration_cache(algos[i].second, tables[i]));
    std::printf("wrote %s: %d tensors, %s, %d images at %s, %.1f s\n", algos[i].second.c_str(),
                report.tensors, tables[i].algorithm.c_str(), report.images, shape_str(report.shape).c_str(),
                report.seconds);
  }
  return Status::ok();
}
}  // namespace

void register_calibrate(CLI::App& app, int& exit_code) {
  auto* cmd =
      app.add_subcommand("calibrate", "INT8 post-training calibration; writes a TensorRT-format cache");
  auto a = std::make_shared<CalibrateArgs>();
  add_engine_options(cmd, a->engine, /*allow_engine_file=*/false, /*with_precision=*/false);
  cmd->add_option("--calib,-c", a->calib, "folder of calibration images (or a dataset with images/)")
      ->required();
  cmd->add_option("--algo", a->algo,
                  "entropy | minmax | percentile | mse | auto (per tensor, the one whose conv outputs err "
                  "least), or several separated by commas (one pass; "
                  "--cache then needs {algo})")
      ->capture_default_str();
  cmd->add_option(
      "--choose-from", a->choose_from,
      "comma-separated caches of this model: write their per-tensor choice (as --algo auto) without "
      "a calibration pass; the first cache gives the tensors no conv reads");
  cmd->add_option("--judge-images", a->judge_images,
                  "with --algo auto: images whose conv outputs judge each tensor's candidate scales")
      ->capture_default_str();
  cmd->add_option("--percentile", a->percentile, "for --algo percentile")->capture_default_str();
  cmd->add_option("--num", a->num, "number of calibration images")->capture_default_str();
  cmd->add_option("--batch", a->batch, "calibration batch size")->capture_default_str();
  add_imgsz_option(cmd, a->imgsz, "calibration image size (dynamic models)");
  cmd->add_option("--cache,-o", a->cache, "calibration cache to write")->required();
  cmd->callback([&exit_code, a] {
    Status st = run_calibrate(*a);
    exit_code = st ? 0 : report("calibrate", st);
  });
}

}  // namespace qyolo::cli
