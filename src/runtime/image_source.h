// Image sources for detect/eval/calibrate: a file, or every image in a folder (sorted by name).
#pragma once

#include <string>
#include <vector>

#include "qyolo/status.h"

namespace qyolo {

// Errors: missing path, a folder without images, a file that is not an image by extension.
Result<std::vector<std::string>> list_image_files(const std::string& source);
bool has_image_extension(const std::string& path);

}  // namespace qyolo
