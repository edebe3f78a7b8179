// `qyolo build`: import, validate, quantise and serialise an engine (like trtexec --saveEngine).
// Cuda engines also record the GPU (name, compute capability, cuDNN version) and the tactics the
// build timed: loading elsewhere is an error, loading here skips the timing.
#include <chrono>
#include <cstdio>

#include "cmd_common.h"
#include "commands.h"
#include "runtime/engine_impl.h"

namespace qyolo::cli {

void register_build(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("build", "build an engine file from an ONNX model");
  auto args = std::make_shared<EngineArgs>();
  auto out = std::make_shared<std::string>();
  add_engine_options(cmd, *args, /*allow_engine_file=*/false);
  cmd->add_option("--out,-o", *out, "engine file to write")->required();
  cmd->callback([&exit_code, args, out] {
    if (args->model.empty()) {
      exit_code = report("build", invalid_argument("--model is required"));
      return;
    }
    auto t0 = std::chrono::steady_clock::now();
    auto engine = open_engine(*args);
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
                precision_name((*engine)->options().precision), target.c_str(), secs);
    exit_code = 0;
  });
}

}  // namespace qyolo::cli
