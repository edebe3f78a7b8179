// `qyolo build`: import, validate, quantise and serialise an engine (like trtexec --saveEngine).
// Cuda engines also record the GPU (name, compute capability, cuDNN version) and the tactics the
// build timed: loading elsewhere is an error, loading here skips the timing.
// --accuracy-budget (INT8): automatic mixed precision (src/quant/mixed_precision.h); the convs it
// keeps in float become the build's float-layers regex, a rule of the engine's precision plan.
// Prints the engine's precision plan in one line (conv counts per precision, INT8 share of the
// conv MACs); --print-plan lists it node by node (`qyolo info --engine E` does for a saved one).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "cmd_common.h"
#include "commands.h"
#include "quant/mixed_precision.h"
#include "runtime/detector.h"
#include "runtime/engine_impl.h"
#include "runtime/image_source.h"

namespace qyolo::cli {

namespace {

struct BudgetArgs {
  double budget = -1;  // < 0: off
  std::string calib;   // calibration-side images (default $QYOLO_SHARED/data/coco128)
  int holdout = 32, sensitivity_images = 4;
};

// Median seconds of `runs` single-image runs at the engine's opt shape (after one warm-up).
Result<double> median_run_seconds(const Engine& engine, int runs) {
  QYOLO_ASSIGN_OR_RETURN(auto ctx, engine.create_context());
  Tensor in(DataType::kFloat32, engine.profile().opt), out;
  std::fill(in.data<float>(), in.data<float>() + in.numel(), 0.5f);
  QYOLO_RETURN_IF_ERROR(ctx->run(in, out));
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    QYOLO_RETURN_IF_ERROR(ctx->run(in, out));
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Ranks the convs, searches the plan, prints it; returns the build options with the plan's regex.
Result<BuildOptions> plan_to_budget(const EngineArgs& args, const BudgetArgs& b) {
  if (!args.int8) return invalid_argument("--accuracy-budget plans an INT8 engine: add --int8 (and --cache)");
  Status st;
  BuildOptions options = build_options_from(args, &st);
  QYOLO_RETURN_IF_ERROR(st);
  // The planning engines take the float images below; the engine built from the plan keeps the
  // user's input format (options).
  BuildOptions planning = options;
  planning.input_format = InputFormat::kFloat32Nchw;
  std::string folder = b.calib;
  if (folder.empty()) {
    const char* shared = std::getenv("QYOLO_SHARED");
    folder = std::string(shared && *shared ? shared : "../shared") + "/data/coco128";
  }
  if (std::filesystem::is_directory(std::filesystem::path(folder) / "images")) folder += "/images";
  QYOLO_ASSIGN_OR_RETURN(auto files, list_image_files(folder));
  if (b.holdout <= 0 || b.sensitivity_images <= 0)
    return invalid_argument("--holdout and --sensitivity-images must be positive");
  if (static_cast<size_t>(b.holdout) >= files.size())
    return invalid_argument("--holdout " + std::to_string(b.holdout) +
                            " leaves no calibration image of the " + std::to_string(files.size()) + " in '" +
                            folder + "'");
  // The last --holdout images (by name) score plans; the first ones (those `qyolo calibrate --num`
  // takes) rank the layers.
  std::vector<std::string> held(files.end() - b.holdout, files.end());
  std::vector<std::string> calib(
      files.begin(), files.begin() + std::min<size_t>(b.sensitivity_images, files.size() - held.size()));

  BuildOptions fp32_options = fp32_reference_options(planning);
  fp32_options.device = Device::kCpu;
  QYOLO_ASSIGN_OR_RETURN(auto fp32, Engine::build(args.model, fp32_options));
  const Shape opt = fp32->profile().opt;
  std::vector<Tensor> inputs;
  for (const auto& f : calib) {
    QYOLO_ASSIGN_OR_RETURN(Image img, load_image(f));
    Tensor t = Detector::preprocess({&img}, static_cast<int>(opt[2]), static_cast<int>(opt[3]), nullptr);
    if (opt[0] != 1)
      return unsupported("--accuracy-budget needs a model that runs batch 1 (its opt batch is " +
                         std::to_string(opt[0]) + ")");
    inputs.push_back(std::move(t));
  }
  auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  auto log = [&](const std::string& line) {
    std::fprintf(stderr, "[%6.1f s] %s\n", elapsed(), line.c_str());
  };
  BuildOptions cpu_int8 = planning;  // plans are measured on the CPU reference backend
  cpu_int8.device = Device::kCpu;
  cpu_int8.int8_fp16 = cpu_int8.int8_all = false;
  QYOLO_ASSIGN_OR_RETURN(auto ranking, rank_layer_sensitivity(args.model, cpu_int8, inputs, log));
  QYOLO_ASSIGN_OR_RETURN(auto proxy, AccuracyProxy::create(fp32, held));
  log("proxy: " + std::to_string(held.size()) + " held-out images, " + std::to_string(proxy->num_labels()) +
      " FP32 labels");
  QYOLO_ASSIGN_OR_RETURN(MixedPrecisionPlan plan,
                         plan_mixed_precision(args.model, cpu_int8, ranking, *proxy, b.budget, log));
  std::printf(
      "accuracy budget %.2f proxy points (agreement mAP50-95 with FP32 on %zu held-out images of %s): "
      "all-INT8 %.4f (loss %.2f), plan %.4f (loss %.2f); %zu of %zu convs kept in float "
      "(%.1f%% of conv MACs); %d proxy runs, %.1f s\n",
      b.budget, held.size(), folder.c_str(), plan.proxy_all_int8, 100 * (1 - plan.proxy_all_int8),
      plan.proxy_plan, 100 * (1 - plan.proxy_plan), plan.float_layers.size(), ranking.size(),
      100 * plan.float_mac_fraction, plan.proxy_evaluations, elapsed());
  for (size_t i = 0; i < plan.float_layers.size(); ++i)
    std::printf("  float: %-40s output NSR alone in INT8 %.3g, %.1f MMAC\n", ranking[i].node.c_str(),
                ranking[i].nsr, ranking[i].macs / 1e6);
  if (!plan.float_layers.empty()) {
    BuildOptions with_plan = cpu_int8;
    with_plan.float_layers_regex = plan.regex;
    QYOLO_ASSIGN_OR_RETURN(auto e_all, Engine::build(args.model, cpu_int8));
    QYOLO_ASSIGN_OR_RETURN(auto e_plan, Engine::build(args.model, with_plan));
    QYOLO_ASSIGN_OR_RETURN(double s_all, median_run_seconds(*e_all, 5));
    QYOLO_ASSIGN_OR_RETURN(double s_plan, median_run_seconds(*e_plan, 5));
    std::printf("speed cost (CPU, %s, median of 5): all-INT8 %.1f ms, plan %.1f ms (%+.1f%%)\n",
                shape_str(opt).c_str(), s_all * 1e3, s_plan * 1e3, 100 * (s_plan / s_all - 1));
  }
  options.float_layers_regex = plan.regex;
  return options;
}

}  // namespace

void register_build(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("build", "build an engine file from an ONNX model");
  auto args = std::make_shared<EngineArgs>();
  auto out = std::make_shared<std::string>();
  auto budget = std::make_shared<BudgetArgs>();
  auto print_plan = std::make_shared<bool>(false);
  add_engine_options(cmd, *args, /*allow_engine_file=*/false);
  cmd->add_flag("--print-plan", *print_plan, "list the engine's precision plan node by node");
  cmd->add_option("--out,-o", *out, "engine file to write")->required();
  cmd->add_option(
      "--accuracy-budget", budget->budget,
      "INT8: keep the fewest, most sensitive convs in float so that the held-out proxy (agreement "
      "mAP50-95 with FP32, in points) loses at most this much (docs/accuracy.md)");
  cmd->add_option("--calib,-c", budget->calib,
                  "with --accuracy-budget: calibration-side images (default $QYOLO_SHARED/data/coco128)");
  cmd->add_option("--holdout", budget->holdout,
                  "with --accuracy-budget: the last N images (by name) score plans; calibrate on the others")
      ->capture_default_str();
  cmd->add_option("--sensitivity-images", budget->sensitivity_images,
                  "with --accuracy-budget: first N images rank the layers' sensitivity")
      ->capture_default_str();
  cmd->callback([&exit_code, args, out, budget, print_plan] {
    if (args->model.empty()) {
      exit_code = report("build", invalid_argument("--model is required"));
      return;
    }
    auto t0 = std::chrono::steady_clock::now();
    Result<std::shared_ptr<const Engine>> engine = invalid_argument("unset");
    if (budget->budget >= 0) {
      auto planned = plan_to_budget(*args, *budget);
      if (!planned) {
        exit_code = report("build", planned.status());
        return;
      }
      engine = Engine::build(args->model, *planned);
    } else {
      engine = open_engine(*args);
    }
    if (!engine) {
      exit_code = report("build", engine.status());
      return;
    }
    Status st = (*engine)->save(*out);
    if (!st) {
      exit_code = report("build", st);
      return;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const Engine::Impl& impl = (*engine)->impl();
    std::string target;
    if ((*engine)->options().device == Device::kCuda)
      target = "; built on " + impl.cuda_target.str(/*with_cudnn=*/true) + ", " +
               std::to_string(impl.tactics().size()) + " tactics: loads only on this GPU model" +
               (impl.build_note.empty() ? "" : "; " + impl.build_note);
    std::printf("wrote %s (%s, %s%s) in %.1f s\n", out->c_str(), device_name((*engine)->options().device),
                build_mode_name(build_mode((*engine)->options())), target.c_str(), secs);
    std::printf("precision plan at %s: %s\n", shape_str((*engine)->profile().opt).c_str(), impl.plan_summary.c_str());
    if (*print_plan) std::printf("%s", format_precision_plan(impl.plan).c_str());
    exit_code = 0;
  });
}

}  // namespace qyolo::cli
