// `qyolo calibrate`: PTQ calibration -> TensorRT-format calibration cache.
#include <cstdio>

#include "calib/calib_cache.h"
#include "cmd_common.h"
#include "commands.h"
#include "progress.h"
#include "quant/calibrate_model.h"

namespace qyolo::cli {

namespace {
struct CalibrateArgs {
  EngineArgs engine;
  std::string calib, algo = "entropy", cache;
  double percentile = 99.99;
  int num = 128, batch = 8;
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

Status run_calibrate(const CalibrateArgs& a) {
  QYOLO_ASSIGN_OR_RETURN(auto algos, parse_algos(a));
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
                  "entropy | minmax | percentile | mse, or several separated by commas (one pass; "
                  "--cache then needs {algo})")
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
