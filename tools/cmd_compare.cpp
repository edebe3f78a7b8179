// `qyolo compare`: per-layer FP32 vs INT8 error (SNR, cosine), worst first.
#include <cstdio>
#include <cstdlib>

#include "cmd_common.h"
#include "commands.h"
#include "plots.h"
#include "quant/compare_layers.h"
#include "quant/error_split.h"
#include "runtime/detector.h"
#include "runtime/engine_impl.h"
#include "runtime/image_source.h"

namespace qyolo::cli {

void register_compare(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("compare", "layer-wise FP32 vs INT8 comparison (SNR, cosine), worst layers first");
  struct Args {
    EngineArgs engine;
    std::string images, plots_dir;
    std::vector<int> imgsz;
    int num = 4, top = 25;
    bool split = false;
    std::string layers, write_rounded;
  };
  auto a = std::make_shared<Args>();
  add_engine_options(cmd, a->engine, /*allow_engine_file=*/false);
  cmd->add_option("--images", a->images, "image file or folder (default: $QYOLO_SHARED/data/coco128/images)");
  cmd->add_option("--num", a->num, "images to use")->capture_default_str();
  add_imgsz_option(cmd, a->imgsz);
  cmd->add_option("--top", a->top, "rows to print (0 = all)")->capture_default_str();
  cmd->add_flag("--split", a->split,
               "instead: split the INT8 output error (NSR) into weight rounding alone and activation "
               "quantisation alone, for the whole network and per conv (src/quant/error_split.h)");
  cmd->add_option("--layers", a->layers, "with --split: only the convs matching this regex");
  cmd->add_option("--write-rounded", a->write_rounded,
                  "with --split: write every INT8 conv's rounded weights as a --refined-weights file "
                  "(an FP32 engine with it has the weight rounding alone)");
  cmd->add_option("--plots", a->plots_dir,
                  "write a PNG of every layer's SNR here (scripts/plots.py, matplotlib)");
  // --split: where the INT8 error comes from.
  auto run_split = [](const Args& a, const Engine& e_q, const std::vector<std::string>& files,
                      std::pair<int, int> hw) -> Status {
    std::vector<Tensor> inputs;
    for (const auto& f : files) {
      QYOLO_ASSIGN_OR_RETURN(Image img, load_image(f));
      inputs.push_back(Detector::preprocess({&img}, hw.first, hw.second, nullptr));
    }
    if (!a.write_rounded.empty()) {
      QYOLO_ASSIGN_OR_RETURN(WeightOverrides rounded, rounded_int8_weights(e_q));
      QYOLO_RETURN_IF_ERROR(write_weight_overrides(a.write_rounded, rounded));
      std::printf("wrote %s (%zu rounded conv weights)\n", a.write_rounded.c_str(), rounded.size());
    }
    auto log = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
    QYOLO_ASSIGN_OR_RETURN(auto rows, split_int8_error(a.engine.model, e_q.options(), e_q.impl().weight_overrides, inputs, a.layers, log));
    std::printf("%-44s %12s %12s %12s\n", "conv (output NSR vs FP32)", "weights", "activations", "both");
    size_t shown = 0;
    for (const auto& r : rows) {
      if (a.top > 0 && shown++ > static_cast<size_t>(a.top)) break;
      std::printf("%-44.44s %12.4g %12.4g %12.4g\n", r.node.c_str(), r.nsr_weights, r.nsr_activations, r.nsr_both);
    }
    std::printf("%zu convs split over %zu images (weights: rounded weights in FP32; activations: INT8 conv on "
                "those rounded weights vs that; both: the conv alone in INT8)\n",
                rows.size() - 1, files.size());
    return Status::ok();
  };
  cmd->callback([&exit_code, a, run_split] {
    auto run = [&]() -> Status {
      std::string images = a->images;
      if (images.empty()) {
        const char* shared = std::getenv("QYOLO_SHARED");
        images = std::string(shared && *shared ? shared : "../shared") + "/data/coco128/images";
      }
      QYOLO_ASSIGN_OR_RETURN(auto files, list_image_files(images));
      if (a->num > 0 && static_cast<size_t>(a->num) < files.size()) files.resize(static_cast<size_t>(a->num));
      EngineArgs f = a->engine, q = a->engine;
      f.int8 = false;
      f.cache.clear();
      f.refined_weights.clear();
      q.int8 = true;
      QYOLO_ASSIGN_OR_RETURN(auto e_f, open_engine(f, false));
      QYOLO_ASSIGN_OR_RETURN(auto e_q, open_engine(q, false));
      QYOLO_ASSIGN_OR_RETURN(auto hw, image_size_for(a->imgsz, *e_f));
      if (a->split) return run_split(*a, *e_q, files, hw);
      QYOLO_ASSIGN_OR_RETURN(auto rows, compare_layers(*e_f, *e_q, files, hw.first, hw.second));
      std::printf("%-48s %-22s %9s %9s %11s\n", "tensor", "op", "SNR dB", "cosine", "max |err|");
      size_t shown = 0;
      for (const auto& r : rows) {
        if (a->top > 0 && shown++ >= static_cast<size_t>(a->top)) break;
        std::printf("%-48.48s %-22.22s %9.2f %9.5f %11.4g\n", r.tensor.c_str(), r.op.c_str(), r.snr_db, r.cosine,
                    r.max_abs_err);
      }
      std::printf("%zu tensors compared over %zu images (sorted by SNR, worst first)\n", rows.size(), files.size());
      if (!a->plots_dir.empty()) {
        nlohmann::json layers = nlohmann::json::array();
        for (const auto& r : rows)
          layers.push_back({{"tensor", r.tensor},
                            {"node", r.node},
                            {"op", r.op},
                            {"position", r.position},
                            {"snr_db", r.snr_db},
                            {"cosine", r.cosine},
                            {"max_abs_err", r.max_abs_err}});
        nlohmann::json data = {{"model", e_f->info().source},
                               {"calibration", e_q->options().calibration_file},
                               {"images", files.size()},
                               {"layers", layers}};
        QYOLO_ASSIGN_OR_RETURN(std::vector<std::string> written, draw_plots("compare", data, a->plots_dir));
        for (const auto& f : written) std::printf("wrote %s\n", f.c_str());
      }
      return Status::ok();
    };
    Status st = run();
    exit_code = st ? 0 : report("compare", st);
  });
}

}  // namespace qyolo::cli
