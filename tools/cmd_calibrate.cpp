#include "commands.h"
namespace qyolo::cli {
void register_calibrate(CLI::App& app, int& exit_code) {}
}  // namespace qyolo::cli
