#include "commands.h"
namespace qyolo::cli {
void register_export_qdq(CLI::App& app, int& exit_code) {}
}  // namespace qyolo::cli
