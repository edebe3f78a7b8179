#include "runtime/image_source.h"

#include <algorithm>
#include <filesystem>

namespace qyolo {

bool has_image_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

Result<std::vector<std::string>> list_image_files(const std::string& source) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(source, ec)) return not_found("image source '" + source + "' does not exist");
  std::vector<std::string> files;
  if (fs::is_directory(source, ec)) {
    for (const auto& e : fs::directory_iterator(source, ec))
      if (e.is_regular_file() && has_image_extension(e.path().string())) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    if (files.empty()) return not_found("folder '" + source + "' contains no .jpg/.jpeg/.png images");
    return files;
  }
  if (!has_image_extension(source))
    return invalid_argument("'" + source + "' is not a .jpg/.jpeg/.png image or a folder of them");
  files.push_back(source);
  return files;
}

}  // namespace qyolo
