// qyolo: build, run, calibrate, evaluate and benchmark YOLO detectors exported to ONNX.
#include <cstdio>
#include <cstdlib>

#include "commands.h"

namespace qyolo::cli {
int report(const std::string& command, const Status& status) {
  std::fprintf(stderr, "qyolo %s: error: %s\n", command.c_str(), status.to_string().c_str());
  return 1;
}
}  // namespace qyolo::cli

int main(int argc, char** argv) {
  CLI::App app{"qyolo " QYOLO_VERSION_STRING
               " — INT8/FP16/FP32 engines for YOLO detectors exported to ONNX: build, calibrate, run, evaluate, bench"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("qyolo ") + QYOLO_VERSION_STRING);
  int exit_code = 0;
  qyolo::cli::register_info(app, exit_code);
  qyolo::cli::register_build(app, exit_code);
  qyolo::cli::register_detect(app, exit_code);
  qyolo::cli::register_eval(app, exit_code);
  qyolo::cli::register_bench(app, exit_code);
  qyolo::cli::register_calibrate(app, exit_code);
  qyolo::cli::register_export_qdq(app, exit_code);
  qyolo::cli::register_compare(app, exit_code);
  qyolo::cli::register_export_float(app, exit_code);
  // QYOLO_PARSE_ONLY=1: parse the command line (unknown flags, missing values, bad numbers fail as
  // usual) and stop before running anything. The tests run every qyolo line of the README and
  // scripts/ this way, so that a renamed flag breaks CI, not a user.
  app.parse_complete_callback([] {
    const char* parse_only = std::getenv("QYOLO_PARSE_ONLY");
    if (parse_only && *parse_only && *parse_only != '0') throw CLI::Success();
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return exit_code;
}
