// Running Python helpers from the CLI: scripts/plots.py (matplotlib) and polygraphy-style data
// loader scripts. Python is QYOLO_PYTHON, else Debian's /usr/bin/python3 (where python3-numpy and
// python3-matplotlib are installed), else python3 on PATH.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "qyolo/status.h"

namespace qyolo::cli {

inline std::string python_executable() {
  const char* env = std::getenv("QYOLO_PYTHON");
  if (env && *env) return env;
  std::error_code ec;
  if (std::filesystem::exists("/usr/bin/python3", ec)) return "/usr/bin/python3";
  return "python3";
}

// The repository's scripts/ (QYOLO_SCRIPTS_DIR overrides the path compiled in).
inline std::string scripts_dir() {
  const char* env = std::getenv("QYOLO_SCRIPTS_DIR");
  if (env && *env) return env;
#ifdef QYOLO_SCRIPTS_DIR
  return QYOLO_SCRIPTS_DIR;
#else
  return "scripts";
#endif
}

inline std::string read_file_text(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs `python args...` with stdout and stderr captured in files of `work_dir`; returns stdout.
// A failure names `what` and ends with the last line Python wrote to stderr (the exception).
inline Result<std::string> run_python(const std::vector<std::string>& args, const std::string& what,
                                      const std::filesystem::path& work_dir) {
  const std::string py = python_executable();
  const auto out_path = work_dir / "python.stdout", err_path = work_dir / "python.stderr";
  // posix_spawn, not fork: the CLI has OpenMP threads, and nothing runs in a forked copy of them.
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, STDOUT_FILENO, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&files, STDERR_FILENO, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  std::vector<char*> argv{const_cast<char*>(py.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, py.c_str(), &files, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&files);
  if (rc != 0) return not_found("cannot run " + py + " for " + what + ": " + std::strerror(rc));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return internal_error("waiting for " + py + " (" + what + "): " + std::strerror(errno));
  const std::string out = read_file_text(out_path), err = read_file_text(err_path);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return out;
  // The last line of stderr: the exception Python raised (or the script's own message).
  std::string tail;
  std::istringstream lines(err);
  for (std::string line; std::getline(lines, line);)
    if (line.find_first_not_of(" \t\r") != std::string::npos) tail = line;
  const std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                            : "signal " + std::to_string(WTERMSIG(status));
  return invalid_argument(what + " failed (" + py + ", " + how + ")" + (tail.empty() ? "" : ": " + tail));
}

// A fresh temporary folder, removed with the object.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix) {
    std::string templ = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
    if (mkdtemp(templ.data())) path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  bool ok() const { return !path_.empty(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace qyolo::cli
