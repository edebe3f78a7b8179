// Files written whole or not at all.
#pragma once

#include <string>
#include <string_view>

#include "qyolo/status.h"

namespace qyolo {

// Writes `bytes` to path + ".tmp" and renames it over `path`: `path` is never left half-written;
// on failure the temporary file is removed.
Status write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace qyolo
