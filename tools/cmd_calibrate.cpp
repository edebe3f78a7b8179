// `qyolo calibrate`: PTQ calibration -> TensorRT-format calibration cache. Calibration data the
// TensorRT ways: an image folder, a trtexec-style .npy array, or a polygraphy data loader script.
// Several algorithms in one pass ("--algo minmax,mse", one cache each) go through the public API;
// the per-tensor choice (--algo auto, --choose-from) is internal (quant/scale_choice.h).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "calib/calib_cache.h"
#include "cmd_common.h"
#include "commands.h"
#include "progress.h"
#include "python_tool.h"
#include "quant/activation_equalization.h"
#include "quant/equalization_sidecar.h"
#include "quant/scale_choice.h"
#include "quant/weight_refit.h"
#include "runtime/engine_impl.h"
#include "qyolo/calibration.h"
#include "runtime/detector.h"
#include "runtime/image_source.h"

namespace qyolo::cli {

namespace {
namespace fs = std::filesystem;

struct CalibrateArgs {
  EngineArgs engine;
  // Default chosen on the held-out proxy (docs/accuracy.md): mse agreed best with FP32.
  std::string calib, loader_script, algo = "mse", cache;
  std::string choose_from;  // caches to choose among per tensor (no calibration pass)
  double percentile = 99.99;
  int num = 128, batch = 8, judge_images = 4;
  // Weight-side refinement (quant/weight_refine.h): methods, output, images, bias iterations.
  std::string refine, weights_out;
  int refine_images = 0, bias_iterations = 1;
  double fit_ridge = 1e-3;
  bool refine_only = false;  // no calibration pass: refine the existing --cache
  // Activation equalisation (quant/activation_equalization.h): tensors regex ("none" off, "all").
  // On by default: it won on the held-out proxy of yolov5n and yolov5s (docs/weight-refine.md).
  std::string equalize = "all";
  double equalize_alpha = 0.5, equalize_min = 1.0 / 64;
  bool equalize_concat = false;
  bool num_given = false, equalize_given = false, batch_given = false;
  std::vector<int> imgsz;
};

// Runs the loader script's load_data() (polygraphy's convention: a generator of
// {input_name: array} dicts, or of bare arrays) and saves each batch as float32 .npy.
// The script runs in its own Python (python_tool.h), so it may import whatever that Python has.
constexpr const char* kLoaderDriver = R"PY(
import importlib.util, os, sys
import numpy as np
script, out_dir, input_name, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
spec = importlib.util.spec_from_file_location("qyolo_data_loader", script)
module = importlib.util.module_from_spec(spec)
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
spec.loader.exec_module(module)
if not hasattr(module, "load_data"):
    sys.exit(f"{script} defines no load_data() function (polygraphy's data loader convention)")
images = 0
for i, item in enumerate(module.load_data()):
    if isinstance(item, dict):
        if input_name in item:
            item = item[input_name]
        elif len(item) == 1:
            item = next(iter(item.values()))
        else:
            sys.exit(f"batch {i} has inputs {sorted(item)}, none of them the model's input '{input_name}'")
    a = np.asarray(item)
    if a.dtype != np.uint8:
        a = a.astype(np.float32)
    np.save(os.path.join(out_dir, f"batch_{i:06d}.npy"), np.ascontiguousarray(a))
    images += a.shape[0] if a.ndim else 1
    if limit and images >= limit:
        break
)PY";

// Batches from the .npy files the driver wrote, in order; uint8 NHWC files are letterboxed.
BatchSource loader_batches(const fs::path& dir, int input_h, int input_w) {
  auto index = std::make_shared<size_t>(0);
  return [=]() -> Result<Tensor> {
    char name[32];
    std::snprintf(name, sizeof name, "batch_%06zu.npy", *index);
    const fs::path p = dir / name;
    std::error_code ec;
    if (!fs::exists(p, ec)) return Tensor();
    ++*index;
    QYOLO_ASSIGN_OR_RETURN(Tensor t, load_npy(p.string()));
    const std::string what = "data loader batch " + std::to_string(*index - 1);
    QYOLO_ASSIGN_OR_RETURN(BatchSource one,
                           npy_batches(t, static_cast<int>(std::max<int64_t>(t.rank() ? t.dim(0) : 1, 1)),
                                       input_h, input_w, what));
    return one();
  };
}

std::string chosen_str(const ScaleChoiceReport& choice) {
  std::string picks;
  for (const auto& [name, n] : choice.chosen)
    picks += (picks.empty() ? "" : ", ") + name + " " + std::to_string(n);
  return picks;
}

// Each written cache gets the factors beside it (quant/equalization_sidecar.h); a cache written
// without equalisation loses any sidecar an earlier calibration left.
Status write_sidecars(const std::vector<std::string>& caches, const EqualizationFactors& factors) {
  for (const auto& cache : caches) {
    if (factors.empty()) {
      QYOLO_RETURN_IF_ERROR(remove_equalization_sidecar(cache));
      continue;
    }
    QYOLO_RETURN_IF_ERROR(write_equalization_sidecar(cache, factors));
    std::printf("wrote %s: equalisation of %zu tensors (used by INT8 builds from %s)\n",
                equalization_sidecar_path(cache).c_str(), factors.size(), cache.c_str());
  }
  return Status::ok();
}

// --choose-from: no calibration pass; the per-tensor choice among existing caches of this model.
Status run_choose(const CalibrateArgs& a) {
  if (!a.loader_script.empty() || !fs::is_directory(a.calib))
    return invalid_argument("--choose-from judges on a folder of images: give it as --calib");
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
  if (fs::is_directory(fs::path(a.calib) / "images")) folder += "/images";
  QYOLO_ASSIGN_OR_RETURN(auto files, list_image_files(folder));
  const Shape judged{1, 3, hw.first, hw.second};
  if (!engine->profile().contains(judged))
    return unsupported("--choose-from judges batch-1 inputs (" + shape_str(judged) +
                       "), outside this model's shapes (min " + shape_str(engine->profile().min) + ", max " +
                       shape_str(engine->profile().max) + ")");
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
  QYOLO_RETURN_IF_ERROR(write_sidecars({a.cache}, {}));
  std::printf("per-tensor choice over %d conv inputs (judged on %zu images): %s\n", choice.tensors_judged,
              inputs.size(), chosen_str(choice).c_str());
  std::printf("wrote %s: %zu tensors, %s, %.1f s\n", a.cache.c_str(), table.scales.size(),
              table.algorithm.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return Status::ok();
}

// --algo auto: one pass for four calibrators, then the per-tensor choice (image folders only).
Status run_per_tensor(const CalibrateArgs& a, const Engine& engine, const CalibrationSettings& s,
                      const EqualizationFactors& factors) {
  if (!a.loader_script.empty() || !fs::is_directory(a.calib))
    return invalid_argument("--algo auto judges on a folder of images: give it as --calib");
  CalibrationOptions opt;
  opt.percentile = s.percentile;
  opt.num_images = s.num_images;
  opt.batch = s.batch;
  opt.shape = s.shape;
  ProgressBar bar("calibrate", static_cast<size_t>(a.num));
  CalibrationReport report;
  ScaleChoiceReport choice;
  QYOLO_ASSIGN_OR_RETURN(CalibrationTable table,
                         calibrate_per_tensor(engine, a.calib, opt, a.judge_images, &report,
                                              [&](size_t d, size_t) { bar.update(d); }, &choice));
  bar.finish();
  QYOLO_RETURN_IF_ERROR(write_calibration_cache(a.cache, table));
  QYOLO_RETURN_IF_ERROR(write_sidecars({a.cache}, factors));
  std::printf("per-tensor choice over %d conv inputs (judged on %d images): %s\n", choice.tensors_judged,
              a.judge_images, chosen_str(choice).c_str());
  std::printf("wrote %s: %d tensors, %s, %d images at %s, %.1f s\n", a.cache.c_str(), report.tensors,
              table.algorithm.c_str(), report.images, shape_str(report.shape).c_str(), report.seconds);
  return Status::ok();
}

// --refine: weight-side methods on the INT8 engine of the cache just written, into --weights-out.
Status run_refine(const CalibrateArgs& a, const Engine& fp32, std::pair<int, int> hw, WeightOverrides w) {
  if (a.refine.empty() && (w.empty() || a.weights_out.empty())) return Status::ok();
  bool fit = false, clip = false, bias = false;
  for (size_t start = 0; !a.refine.empty() && start <= a.refine.size();) {
    size_t end = a.refine.find(',', start);
    if (end == std::string::npos) end = a.refine.size();
    const std::string m = a.refine.substr(start, end - start);
    if (m == "fit") fit = true;
    else if (m == "clip") clip = true;
    else if (m == "bias") bias = true;
    else if (m != "none") return invalid_argument("--refine: unknown method '" + m + "' (fit, clip, bias, none)");
    start = end + 1;
  }
  if (!fit && !clip && !bias && w.empty()) return Status::ok();
  if (a.weights_out.empty()) return invalid_argument("--refine needs --weights-out (the weights file to write)");
  if (a.cache.find("{algo}") != std::string::npos)
    return invalid_argument("--refine refines one cache: give one --algo");
  if (!a.loader_script.empty() || !fs::is_directory(a.calib))
    return invalid_argument("--refine runs on a folder of images: give it as --calib");
  std::string folder = a.calib;
  if (fs::is_directory(fs::path(a.calib) / "images")) folder += "/images";
  QYOLO_ASSIGN_OR_RETURN(auto files, list_image_files(folder));
  const int n = a.refine_images > 0 ? std::min(a.refine_images, a.num) : a.num;
  if (static_cast<size_t>(n) < files.size()) files.resize(static_cast<size_t>(n));
  BuildOptions q = fp32.options();
  q.precision = Precision::kInt8;
  q.calibration_file = a.cache;
  q.device = Device::kCpu;
  q.weight_clip = false;  // --refine clip is explicit here
  if (fit) {
    auto t0 = std::chrono::steady_clock::now();
    RefitReport rep;
    RefitOptions ro;
    ro.ridge = a.fit_ridge;
    auto log = [&](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
    QYOLO_ASSIGN_OR_RETURN(w, refit_int8_weights(a.engine.model, q, w, files, hw.first, hw.second, ro, &rep, log));
    std::printf("refine fit: %d convs refitted on %d images, mean relative residual %.4g -> %.4g, %.1f s\n",
                rep.convs, rep.images, rep.residual_before, rep.residual_after,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  if (clip) {
    auto t0 = std::chrono::steady_clock::now();
    QYOLO_ASSIGN_OR_RETURN(auto int8, build_engine_with_weights(a.engine.model, q, w));
    ClipReport rep;
    QYOLO_ASSIGN_OR_RETURN(w, clip_int8_weights(*int8, w, &rep));
    std::printf("refine clip: %d convs, %lld of %lld channels clipped, weight squared error %.4g -> %.4g, %.1f s\n",
                rep.convs, static_cast<long long>(rep.channels_clipped), static_cast<long long>(rep.channels),
                rep.error_before, rep.error_after,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  if (bias) {
    auto t0 = std::chrono::steady_clock::now();
    BiasCorrectionReport rep;
    auto log = [&](const std::string& line) {
      std::fprintf(stderr, "[%6.1f s] %s\n",
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), line.c_str());
    };
    QYOLO_ASSIGN_OR_RETURN(w, correct_biases(a.engine.model, q, w, files, hw.first, hw.second, a.bias_iterations,
                                             /*measure_after=*/false, &rep, log));
    std::printf("refine bias: %d convs corrected on %d images, %d iteration(s), mean |shift| %.4g before, %.1f s\n",
                rep.convs, rep.images, a.bias_iterations, rep.mean_abs_shift.empty() ? 0.0 : rep.mean_abs_shift[0],
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  QYOLO_RETURN_IF_ERROR(write_weight_overrides(a.weights_out, w));
  std::printf("wrote %s: %zu weight overrides (use with --refined-weights)\n", a.weights_out.c_str(), w.size());
  return Status::ok();
}

Status run_calibrate(const CalibrateArgs& a) {
  if (!a.choose_from.empty()) return run_choose(a);
  if (a.engine.int8 || a.engine.fp16)
    return invalid_argument("calibration runs the FP32 model; drop --int8/--fp16");
  if (a.calib.empty() == a.loader_script.empty())
    return invalid_argument("give exactly one of --calib (image folder or .npy) and --data-loader-script");
  // Dynamic models calibrate at a stated shape (like TensorRT's calibration profile).
  QYOLO_ASSIGN_OR_RETURN(auto engine, open_engine(a.engine));
  QYOLO_ASSIGN_OR_RETURN(auto hw, image_size_for(a.imgsz, *engine));
  CalibrationSettings s;
  s.algorithm = a.algo;
  s.percentile = a.percentile;
  s.num_images = a.num;
  s.batch = a.batch;
  // A profile's opt shape is the calibration shape (TensorRT's calibration profile): its H/W
  // (image_size_for) and, unless --batch is given, its batch.
  if (!a.engine.opt_shapes.empty() && !a.batch_given) s.batch = static_cast<int>(engine->profile().opt[0]);
  s.shape = {s.batch, 3, hw.first, hw.second};
  bool dynamic = false;
  for (auto d : engine->info().input_dims) dynamic |= d < 0;
  const std::string source = a.loader_script.empty() ? a.calib : a.loader_script;
  const bool image_folder = a.loader_script.empty() && fs::is_directory(a.calib);
  if (!dynamic) {
    // A static model fixes the batch: calibrate at its shape.
    s.shape = engine->profile().opt;
    if (s.batch != s.shape[0] && image_folder)
      std::fprintf(stderr, "note: static model with batch %lld: calibrating with --batch %lld\n",
                   static_cast<long long>(s.shape[0]), static_cast<long long>(s.shape[0]));
    s.batch = static_cast<int>(s.shape[0]);
  }
  std::fprintf(stderr, "calibrating %s with %s on %s%s\n", engine->info().source.c_str(), a.algo.c_str(),
               source.c_str(), dynamic ? " (calibration profile of a dynamic model)" : "");
  // --equalize (default all): the factors from the calibration images' ranges; calibration then
  // runs on the equalised FP32 network (which observes both T and T'). --refine-only keeps the
  // factors of the cache's sidecar unless --equalize is given.
  const bool equalize = a.equalize != "none" && !a.equalize.empty() && (!a.refine_only || a.equalize_given);
  EqualizationFactors factors;
  std::shared_ptr<const Engine> equalized;
  const bool batch1 = engine->profile().contains({1, 3, hw.first, hw.second});
  if (equalize && (!image_folder || !batch1)) {
    const std::string why = !image_folder ? "runs on a folder of images (--calib)" : "runs the model at batch 1";
    if (a.equalize_given) return invalid_argument("--equalize " + why);
    std::fprintf(stderr, "note: no activation equalisation (it %s)\n", why.c_str());
  } else if (equalize) {
    std::string folder = a.calib;
    if (fs::is_directory(fs::path(a.calib) / "images")) folder += "/images";
    QYOLO_ASSIGN_OR_RETURN(auto files, list_image_files(folder));
    if (static_cast<size_t>(a.num) < files.size()) files.resize(static_cast<size_t>(a.num));
    EqualizeOptions eo;
    eo.alpha = a.equalize_alpha;
    eo.min_factor = a.equalize_min;
    eo.tensors_regex = a.equalize == "all" ? ".*" : a.equalize;
    eo.with_concat = a.equalize_concat;
    EqualizeReport rep;
    QYOLO_ASSIGN_OR_RETURN(factors, choose_activation_equalization(*engine, {1, 3, hw.first, hw.second},
                                                                   image_inputs(files, hw.first, hw.second), eo,
                                                                   &rep));
    std::printf("equalize: %d of %d equalizable tensors (alpha %g, min factor %g), ranges on %d images, %.1f s\n",
                rep.tensors, rep.candidates, eo.alpha, eo.min_factor, rep.images, rep.seconds);
    for (const auto& [t, f] : factors) {
      float lo = 1.f;
      for (float v : f) lo = std::min(lo, v);
      std::printf("  %s: %zu channels, min factor %.4g\n", t.c_str(), f.size(), lo);
    }
    QYOLO_ASSIGN_OR_RETURN(equalized, build_engine_with_weights(a.engine.model, engine->options(),
                                                                with_equalization({}, factors)));
  }
  if (a.refine_only) {
    if (a.refine.empty() && !a.equalize_given) return invalid_argument("--refine-only needs --refine or --equalize");
    if (a.weights_out.empty()) return invalid_argument("--refine-only writes --weights-out: give it");
    std::error_code ec;
    if (!fs::exists(a.cache, ec)) return not_found("--refine-only refines the existing cache '" + a.cache + "': not found");
    if (!a.equalize_given) {
      QYOLO_ASSIGN_OR_RETURN(auto stored, read_equalization_sidecar(a.cache));
      if (stored) factors = *stored;
    }
    return run_refine(a, *engine, hw, with_equalization({}, factors));
  }
  const Engine& calib_engine = equalized ? *equalized : *engine;
  const WeightOverrides base = with_equalization({}, factors);
  if (a.algo == "auto") {
    QYOLO_RETURN_IF_ERROR(run_per_tensor(a, calib_engine, s, factors));
    return run_refine(a, *engine, hw, base);
  }
  // The bar's total: the images planned (unknown for a loader script without --num).
  ProgressBar bar("calibrate", 0);
  auto progress = [&](size_t done, size_t total) { bar.update(done, total); };
  CalibrationSummary summary;
  if (image_folder) {
    bar.update(0, static_cast<size_t>(a.num));
    QYOLO_ASSIGN_OR_RETURN(summary, calibrate_images(calib_engine, a.calib, s, a.cache, progress));
  } else {
    // Batch sources use every image they give unless --num caps them.
    s.num_images = a.num_given ? a.num : 0;
    BatchSource batches;
    TempDir work("qyolo_loader_");
    if (!a.loader_script.empty()) {
      if (!fs::is_regular_file(a.loader_script))
        return not_found("data loader script '" + a.loader_script + "' does not exist");
      if (!work.ok()) return io_error("cannot create a temporary folder");
      QYOLO_RETURN_IF_ERROR(run_python({"-c", kLoaderDriver, a.loader_script, work.path().string(),
                                        engine->info().input_name, std::to_string(s.num_images)},
                                       "data loader script '" + a.loader_script + "'", work.path())
                                .status());
      batches = loader_batches(work.path(), hw.first, hw.second);
      bar.update(0, static_cast<size_t>(s.num_images));
    } else {
      std::error_code ec;
      if (!fs::exists(a.calib, ec)) return not_found("calibration data '" + a.calib + "' does not exist");
      if (fs::path(a.calib).extension() != ".npy")
        return invalid_argument("--calib '" + a.calib + "' is neither a folder of images nor a .npy array");
      QYOLO_ASSIGN_OR_RETURN(Tensor array, load_npy(a.calib));
      if (array.rank() > 0)
        bar.update(0, static_cast<size_t>(s.num_images > 0 ? std::min<int64_t>(s.num_images, array.dim(0))
                                                           : array.dim(0)));
      QYOLO_ASSIGN_OR_RETURN(batches, npy_batches(array, s.batch, hw.first, hw.second, a.calib));
    }
    QYOLO_ASSIGN_OR_RETURN(summary, calibrate_batches(calib_engine, batches, s, a.cache, progress));
  }
  bar.finish();
  if (summary.dropped)
    std::fprintf(stderr,
                 "note: the last %d images do not fill a batch of the model's fixed batch %lld: left out\n",
                 summary.dropped, static_cast<long long>(s.batch));
  // One cache per algorithm (--algo minmax,mse); summary.algorithm lists their names in that order.
  size_t name_start = 0;
  for (const auto& cache : summary.caches) {
    size_t name_end = summary.algorithm.find(',', name_start);
    if (name_end == std::string::npos) name_end = summary.algorithm.size();
    std::printf("wrote %s: %d tensors, %s, %d images at %s, %.1f s\n", cache.c_str(), summary.tensors,
                summary.algorithm.substr(name_start, name_end - name_start).c_str(), summary.images,
                shape_str(summary.shape).c_str(), summary.seconds);
    name_start = name_end + 1;
  }
  QYOLO_RETURN_IF_ERROR(write_sidecars(summary.caches, factors));
  return run_refine(a, *engine, hw, base);
}
}  // namespace

void register_calibrate(CLI::App& app, int& exit_code) {
  auto* cmd =
      app.add_subcommand("calibrate", "INT8 post-training calibration; writes a TensorRT-format cache");
  auto a = std::make_shared<CalibrateArgs>();
  add_engine_options(cmd, a->engine, /*allow_engine_file=*/false, /*with_precision=*/false);
  cmd->add_option(
      "--calib,-c", a->calib,
      "calibration data: a folder of images (or a dataset with images/), letterboxed as inference does; "
      "or a .npy array as trtexec takes: float32 N x C x H x W already pre-processed, or uint8 "
      "N x H x W x 3 RGB images");
  cmd->add_option("--data-loader-script", a->loader_script,
                  "Python file with a load_data() generator yielding {input_name: array} dicts (polygraphy's "
                  "convention) of float32 N x 3 x H x W batches (or uint8 N x H x W x 3 images); run by "
                  "$QYOLO_PYTHON, else /usr/bin/python3");
  cmd->add_option("--algo", a->algo,
                  "entropy | minmax | percentile | mse | auto (per tensor, the one whose conv outputs err "
                  "least; image folders), or several separated by commas (one pass; --cache then needs "
                  "{algo})")
      ->capture_default_str();
  cmd->add_option(
      "--choose-from", a->choose_from,
      "comma-separated caches of this model: write their per-tensor choice (as --algo auto) without "
      "a calibration pass; the first cache gives the tensors no conv reads");
  cmd->add_option("--judge-images", a->judge_images,
                  "with --algo auto: images whose conv outputs judge each tensor's candidate scales")
      ->capture_default_str();
  cmd->add_option("--percentile", a->percentile, "for --algo percentile")->capture_default_str();
  auto* num = cmd->add_option("--num", a->num, "number of calibration images (.npy and loaders: default all)")
                  ->capture_default_str();
  auto* batch =
      cmd->add_option("--batch", a->batch,
                      "calibration batch size (folders and .npy; default: the batch of --opt-shapes when given)")
          ->capture_default_str();
  add_imgsz_option(cmd, a->imgsz, "calibration image size (dynamic models)");
  cmd->add_option("--cache,-o", a->cache, "calibration cache to write")->required();
  cmd->add_option("--refine", a->refine,
                  "weight-side PTQ on the INT8 engine of this cache (src/quant/weight_refine.h): fit "
                  "(least-squares refit of conv weights to their quantised inputs), clip "
                  "(per-channel MSE weight clip), bias (empirical bias correction on the calibration "
                  "images), both as clip,bias; writes --weights-out");
  auto* equalize = cmd->add_option(
      "--equalize", a->equalize,
      "per-channel activation equalisation of the conv outputs read only by convs: 'all', a regex of "
      "tensor names, or 'none'. The factors go to CACHE.equalize beside each cache, which INT8 builds "
      "from that cache apply (`--no-equalization` ignores it); also into --weights-out when given");
  equalize->capture_default_str();
  cmd->add_option("--equalize-alpha", a->equalize_alpha, "with --equalize: s_c = (a_c / max a)^alpha")
      ->capture_default_str();
  cmd->add_flag("--equalize-concat", a->equalize_concat,
                "with --equalize: also the Concat outputs read only by convs (an explicit Mul; the Concat "
                "then runs in float)");
  cmd->add_option("--equalize-min", a->equalize_min, "with --equalize: smallest factor s_c")->capture_default_str();
  cmd->add_flag("--refine-only", a->refine_only, "skip the calibration pass: refine the existing --cache");
  cmd->add_option("--weights-out", a->weights_out,
                  "with --refine: weights file to write (--refined-weights; holds the equalisation too)");
  cmd->add_option("--refine-images", a->refine_images,
                  "with --refine bias: the first N calibration images (default: --num)");
  cmd->add_option("--fit-ridge", a->fit_ridge, "with --refine fit: ridge, times the mean input energy")
      ->capture_default_str();
  cmd->add_option("--bias-iterations", a->bias_iterations, "with --refine bias: correction passes")
      ->capture_default_str();
  cmd->callback([&exit_code, a, num, equalize, batch] {
    a->num_given = num->count() > 0;
    a->batch_given = batch->count() > 0;
    a->equalize_given = equalize->count() > 0;
    Status st = run_calibrate(*a);
    exit_code = st ? 0 : report("calibrate", st);
  });
}

}  // namespace qyolo::cli
