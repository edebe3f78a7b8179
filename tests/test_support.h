// Shared helpers for tests: where ../shared is, skipping when it is absent.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace qyolo::testing {

// QYOLO_SHARED, else ../shared next to the source tree.
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("QYOLO_SHARED"); env && *env) return env;
  return std::filesystem::path(QYOLO_SOURCE_DIR) / ".." / "shared";
}

inline std::filesystem::path onnx_testdata_dir() {
  return "/usr/share/libonnx-testdata/data";
}

}  // namespace qyolo::testing

// Skips the test with a clear message when a shared file is absent.
#define QYOLO_REQUIRE_SHARED(relpath)                                                      \
  do {                                                                                     \
    if (!std::filesystem::exists(::qyolo::testing::shared_dir() / (relpath)))              \
      GTEST_SKIP() << "shared data absent: " << (::qyolo::testing::shared_dir() / (relpath)) \
                   << " (set QYOLO_SHARED)";                                               \
  } while (0)
