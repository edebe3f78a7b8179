// Runs the qyolo CLI built alongside the tests (QYOLO_CLI_PATH) and captures its output.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace qyolo::testing {

struct CliResult {
  int exit_code = -1;
  bool signalled = false;
  std::string output;
};

// stdout, plus stderr when with_stderr.
inline CliResult run_cli(const std::string& args, bool with_stderr = true) {
  std::string cmd = std::string(QYOLO_CLI_PATH) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  int status = pclose(p);
  r.signalled = WIFSIGNALED(status);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace qyolo::testing
