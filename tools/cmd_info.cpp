// `qyolo info`: what a model is and whether qyolo supports it; `qyolo info --ops`: the op table;
// `qyolo info --engine E`: what an engine file holds, and its precision plan node by node (read
// from the file, not built: works for cuda engines on any machine).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <map>

#include "backends/cpu/cpu_kernel.h"
#ifdef QYOLO_HAS_CUDA
#include "backends/cuda/cuda_kernel.h"
#endif
#include "commands.h"
#include "ir/op_registry.h"
#include "onnx/onnx_import.h"
#include "onnx/qoperator.h"
#include "quant/output_quantization.h"
#include "runtime/engine_impl.h"
#include "yolo/metadata.h"

namespace qyolo::cli {

namespace {
int run_engine_info(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return report("info", not_found("engine file '" + path + "' does not exist or cannot be read"));
  std::stringstream ss;
  ss << f.rdbuf();
  auto c = parse_engine_file(ss.str(), path);
  if (!c) return report("info", c.status());
  const BuildOptions& o = c->options;
  std::printf("engine   %s\nmodel    %s\ndevice   %s\nprecision %s%s\n", path.c_str(), c->source.c_str(),
              device_name(o.device), build_mode_name(build_mode(o)),
              o.float_layers_regex.empty() ? "" : (" float layers '" + o.float_layers_regex + "'").c_str());
  std::printf("profile  min %s opt %s max %s\n", shape_str(c->profile.min).c_str(), shape_str(c->profile.opt).c_str(),
              shape_str(c->profile.max).c_str());
  if (o.device == Device::kCuda)
    std::printf("gpu      %s, %zu tactics\n", c->target.str(/*with_cudnn=*/true).c_str(), c->tactics.size());
  std::printf("%s", format_precision_plan(c->plan).c_str());
  return 0;
}

int run_info(const std::string& model, bool list_ops) {
  if (list_ops) {
    std::printf("%-20s %-18s %s\n", "op", "stem", "backends");
    for (const auto& op : all_ops()) {
      std::string backends = find_cpu_kernel(op.op_type) ? "cpu" : "";
#ifdef QYOLO_HAS_CUDA
      if (cuda::find_cuda_op(op.op_type)) backends += backends.empty() ? "cuda" : ", cuda";
#endif
      std::printf("%-20.*s %-18.*s %s\n", static_cast<int>(op.op_type.size()), op.op_type.data(),
                  static_cast<int>(op.stem.size()), op.stem.data(), backends.c_str());
    }
    std::printf("\nrewritten at import into DequantizeLinear -> float op -> QuantizeLinear (ONNX Runtime QOperator):\n");
    for (const auto& op : qoperator_ops())
      std::printf("%-26.*s -> %.*s\n", static_cast<int>(op.op_type.size()), op.op_type.data(),
                  static_cast<int>(op.float_op.size()), op.float_op.data());
    return 0;
  }
  if (model.empty()) return report("info", invalid_argument("give --model M.onnx or --ops"));
  auto g = import_onnx(model);
  if (!g) return report("info", g.status());
  std::printf("model    %s\nopset    %lld\n", model.c_str(), static_cast<long long>(g->opset));
  for (const auto& in : g->inputs) std::printf("input    %s %s %s\n", in.name.c_str(), dtype_name(in.dtype), in.dims_str().c_str());
  for (const auto& o : g->outputs) std::printf("output   %s %s %s\n", o.name.c_str(), dtype_name(o.dtype), o.dims_str().c_str());
  // Whether the values left once the output's own pair is dropped (--float-output) still lie only on
  // grids that give a probability no non-zero level.
  Graph without_pair = *g;
  remove_output_quantization(without_pair);
  auto zero_scores_only = [](const std::optional<std::vector<OutputQuantization>>& grids) {
    if (!grids) return false;
    for (const auto& q : *grids)
      if (q.probability_levels() > 0) return false;
    return true;
  };
  for (const auto& o : g->outputs) {
    const auto q = output_quantization(*g, o.name);
    if (!q) continue;
    const char* advice = "";
    if (q->probability_levels() == 0)
      advice = zero_scores_only(output_grids(without_pair, o.name))
                   ? "; every score in [0, 1] rounds to 0 on it, and on the Q/DQ pairs it concatenates: keep those "
                     "in float with --int8 --float-layers"
                   : "; every score in [0, 1] rounds to 0 on it: use --float-output";
    std::printf("quant    %s is quantized by the model: step %g, zero point %lld (DequantizeLinear '%s')%s\n",
                o.name.c_str(), static_cast<double>(q->scale), static_cast<long long>(q->zero_point), q->node.c_str(),
                advice);
  }
  std::map<std::string, int> counts;
  for (const auto& n : g->nodes) counts[n.op_type]++;
  std::printf("nodes    %zu\n", g->nodes.size());
  for (const auto& [op, c] : counts) std::printf("  %-18s %d\n", op.c_str(), c);
  for (const auto& [k, v] : g->metadata) std::printf("meta     %s = %.80s%s\n", k.c_str(), v.c_str(), v.size() > 80 ? "..." : "");
  std::vector<std::string> problems;
  const UltralyticsMetadata meta = parse_ultralytics_metadata(g->metadata, &problems);
  for (const auto& p : problems) std::printf("warning  %s (ignored)\n", p.c_str());
  if (!meta.names.empty()) std::printf("classes  %zu (names metadata)\n", meta.names.size());
  if (Status task = check_detect_task(meta.task, model); !task)
    std::printf("task     %s\n", task.message().c_str());
  else if (g->outputs.size() > 1)
    std::printf("head     %zu outputs: detect/eval read the first as a decoded head unless --head describes them "
                "(docs/heads.md)\n",
                g->outputs.size());
  return 0;
}
}  // namespace

void register_info(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("info", "show a model's inputs, outputs, ops and metadata; --ops lists supported ops");
  auto model = std::make_shared<std::string>();
  auto ops = std::make_shared<bool>(false);
  auto engine = std::make_shared<std::string>();
  cmd->add_option("--model,-m", *model, "ONNX model");
  cmd->add_option("--engine,-e", *engine, "engine file: its options, profile and precision plan");
  cmd->add_flag("--ops", *ops, "list the operators qyolo supports");
  cmd->callback([&exit_code, model, ops, engine] {
    if (!engine->empty() && (!model->empty() || *ops)) {
      exit_code = report("info", invalid_argument("give one of --model, --engine and --ops"));
      return;
    }
    exit_code = engine->empty() ? run_info(*model, *ops) : run_engine_info(*engine);
  });
}

}  // namespace qyolo::cli
