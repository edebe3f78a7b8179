// qyolo CLI: each subcommand lives in tools/cmd_<name>.cpp and registers itself on the app.
// A subcommand's callback stores its exit code in the shared int (0 ok, 1 error, 2 usage).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "qyolo/status.h"

namespace qyolo::cli {

void register_info(CLI::App& app, int& exit_code);
void register_build(CLI::App& app, int& exit_code);
void register_detect(CLI::App& app, int& exit_code);
void register_eval(CLI::App& app, int& exit_code);
void register_bench(CLI::App& app, int& exit_code);
void register_calibrate(CLI::App& app, int& exit_code);
void register_export_qdq(CLI::App& app, int& exit_code);
void register_compare(CLI::App& app, int& exit_code);
void register_export_float(CLI::App& app, int& exit_code);

// Prints "qyolo <cmd>: error: <message>" to stderr and returns 1.
int report(const std::string& command, const Status& status);

}  // namespace qyolo::cli
