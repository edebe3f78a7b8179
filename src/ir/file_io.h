// Files written whole or not at all.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include "qyolo/status.h"

namespace qyolo {

// Writes `parts`, in order, to a temporary file beside `path` (path + ".tmp.<pid>": concurrent
// writers of one path do not share it) and renames it over `path`: `path` is never left
// half-written, and on failure the temporary file is removed. `what` (e.g. "engine file") starts
// the error messages.
Status write_file_atomically(const std::string& path, std::initializer_list<std::string_view> parts,
                             const std::string& what = "file");
inline Status write_file_atomically(const std::string& path, std::string_view bytes, const std::string& what = "file") {
  return write_file_atomically(path, {bytes}, what);
}

}  // namespace qyolo
