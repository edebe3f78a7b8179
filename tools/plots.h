// --plots: the CLI writes the numbers as JSON and scripts/plots.py (matplotlib) draws the PNGs.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cmd_common.h"
#include "python_tool.h"

namespace qyolo::cli {

// Writes <dir>/<kind>.json and runs `plots.py <kind> <json> <dir>`; returns the PNGs it wrote.
inline Result<std::vector<std::string>> draw_plots(const std::string& kind, const nlohmann::json& data,
                                                   const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return io_error("--plots: cannot create '" + dir + "': " + ec.message());
  const std::string json_path = (std::filesystem::path(dir) / (kind + ".json")).string();
  QYOLO_RETURN_IF_ERROR(write_text_atomic(json_path, data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"));
  TempDir work("qyolo_plots_");
  if (!work.ok()) return io_error("cannot create a temporary folder");
  const std::string script = scripts_dir() + "/plots.py";
  QYOLO_ASSIGN_OR_RETURN(std::string out, run_python({script, kind, json_path, dir},
                                                     "drawing plots (" + script + ")", work.path()));
  std::vector<std::string> written;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) written.push_back(line);
  return written;
}

}  // namespace qyolo::cli
