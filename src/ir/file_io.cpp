#include "ir/file_io.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace qyolo {

Status write_file_atomically(const std::string& path, std::initializer_list<std::string_view> parts,
                             const std::string& what) {
  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  const std::string where = what + " '" + path + "'";
  std::error_code ec;
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return io_error(where + ": cannot open '" + tmp + "' for writing");
    for (std::string_view p : parts) f.write(p.data(), static_cast<std::streamsize>(p.size()));
    f.flush();
    if (!f) {
      f.close();
      std::filesystem::remove(tmp, ec);
      return io_error(where + ": writing '" + tmp + "' failed (disk full?)");
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    const std::string why = ec.message();
    std::filesystem::remove(tmp, ec);
    return io_error(where + ": cannot rename '" + tmp + "' into place: " + why);
  }
  return Status::ok();
}

}  // namespace qyolo
