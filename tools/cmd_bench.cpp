#include "commands.h"
namespace qyolo::cli {
void register_bench(CLI::App& app, int& exit_code) {}
}  // namespace qyolo::cli
