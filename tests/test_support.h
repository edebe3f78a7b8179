// Shared helpers for tests: where ../shared is, skipping when it is absent.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "backends/cpu/conv2d_int8.h"

namespace qyolo::testing {

// QYOLO_SHARED, else ../shared next to the source tree.
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("QYOLO_SHARED"); env && *env) return env;
  return std::filesystem::path(QYOLO_SOURCE_DIR) / ".." / "shared";
}

inline std::filesystem::path onnx_testdata_dir() {
  return "/usr/share/libonnx-testdata/data";
}

// A file's bytes ("" when it cannot be read).
inline std::string read_file_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// A scratch directory `prefix` + this process's id under the system temp directory, removed with
// its contents at scope exit.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix)
      : dir_(std::filesystem::temp_directory_path() / (prefix + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

 private:
  std::filesystem::path dir_;
};

// n values uniform in [lo, hi), from `seed`.
inline std::vector<float> uniform_values(size_t n, unsigned seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace qyolo::testing

// Skips the test with a clear message when a shared file is absent.
#define QYOLO_REQUIRE_SHARED(relpath)                                                        \
  do {                                                                                       \
    if (!std::filesystem::exists(::qyolo::testing::shared_dir() / (relpath)))                \
      GTEST_SKIP() << "shared data absent: " << (::qyolo::testing::shared_dir() / (relpath)) \
                   << " (set QYOLO_SHARED)";                                                 \
  } while (0)

// Skips a test whose INT8 accuracy bound was set for 8-bit weights where this CPU's oneDNN
// computes with 7-bit ones (no VNNI: it halves s8 weights, cpu::int8_conv_weight_adjust; the
// integer tests model that exactly through cpu::int8_conv_effective_weight instead).
#define QYOLO_REQUIRE_8BIT_INT8_WEIGHTS()                                                          \
  do {                                                                                             \
    if (::qyolo::cpu::int8_conv_weight_adjust() != 1.f)                                            \
      GTEST_SKIP() << "this CPU's oneDNN halves int8 weights (no VNNI: 7-bit weights, "           \
                      "docs/cpu-int8.md); this INT8 accuracy bound is set for 8-bit weights";      \
  } while (0)
