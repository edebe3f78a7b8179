// `qyolo export-float`: a quantized model (Q/DQ, or ONNX Runtime QOperator) written back as a float
// ONNX with its weights dequantized, so qyolo's calibrators can recalibrate it.
#include <cstdio>

#include "commands.h"
#include "onnx/onnx_export.h"
#include "onnx/onnx_import.h"
#include "quant/dequantize_graph.h"

namespace qyolo::cli {

void register_export_float(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "export-float",
      "write a quantized ONNX model (Q/DQ or QLinear*) as float ONNX with dequantized weights");
  struct Args {
    std::string model, out;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model,-m", a->model, "quantized ONNX model")->required();
  cmd->add_option("--out,-o", a->out, "float ONNX to write")->required();
  cmd->callback([&exit_code, a] {
    auto run = [&]() -> Status {
      QYOLO_ASSIGN_OR_RETURN(Graph g, import_onnx(a->model));
      DequantizeReport rep;
      QYOLO_RETURN_IF_ERROR(dequantize_graph(g, &rep).with_context(a->model));
      QYOLO_RETURN_IF_ERROR(write_onnx(g, a->out, "qyolo export-float"));
      std::printf(
          "wrote %s: %d weights dequantized, %d activation Q/DQ nodes removed, %d integer biases made "
          "float, %d bias adds folded into convs\n",
          a->out.c_str(), rep.weights, rep.activation_qdq, rep.integer_biases, rep.conv_biases);
      return Status::ok();
    };
    Status st = run();
    exit_code = st ? 0 : report("export-float", st);
  });
}

}  // namespace qyolo::cli
