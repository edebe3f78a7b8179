// `qyolo export-qdq`: explicit-quantisation ONNX (Q/DQ) from a calibration cache.
#include <cstdio>

#include "commands.h"
#include "onnx/onnx_import.h"
#include "quant/export_qdq.h"
#include "quant/precision_plan_pass.h"
#include "quant/quantize_graph.h"

namespace qyolo::cli {

void register_export_qdq(CLI::App& app, int& exit_code) {
  auto* cmd =
      app.add_subcommand("export-qdq", "write a Q/DQ ONNX model (for ONNX Runtime / TensorRT explicit INT8)");
  struct Args {
    std::string model, cache, out;
    bool asymmetric_activations = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model,-m", a->model, "FP32 ONNX model")->required();
  cmd->add_option("--cache", a->cache, "calibration cache or PPQ json")->required();
  cmd->add_option("--out,-o", a->out, "Q/DQ ONNX to write")->required();
  cmd->add_flag(
      "--asymmetric-activations", a->asymmetric_activations,
      "conv inputs bounded below (SiLU outputs and their pools, resizes, concats) as uint8 with a zero "
      "point, as CPU INT8 engines quantise them by default (for ONNX Runtime; TensorRT needs "
      "symmetric int8)");
  cmd->callback([&exit_code, a] {
    auto run = [&]() -> Status {
      QYOLO_ASSIGN_OR_RETURN(Graph g, import_onnx(a->model));
      QYOLO_ASSIGN_OR_RETURN(auto scales, load_activation_scales(a->cache, g));
      QdqExportReport rep;
      QdqExportOptions options;
      if (a->asymmetric_activations) options.lower_bounds = activation_lower_bounds(g);
      QYOLO_RETURN_IF_ERROR(export_qdq(a->model, scales, a->out, &rep, options));
      std::printf(
          "wrote %s: %d activation Q/DQ pairs (%d uint8 asymmetric), %d per-channel weights, %d residual "
          "adds, "
          "%d convs left float\n",
          a->out.c_str(), rep.quantized_activations, rep.asymmetric_activations, rep.quantized_weights,
          rep.residual_adds, rep.missing_scales);
      return Status::ok();
    };
    Status st = run();
    exit_code = st ? 0 : report("export-qdq", st);
  });
}

}  // namespace qyolo::cli
