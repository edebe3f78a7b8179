// ir/file_io.h: every file qyolo writes (engines, caches, npy, images, results, Q/DQ models) goes
// through write_file_atomically — whole or not at all, with errors that name the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "ir/file_io.h"
#include "test_support.h"

using namespace qyolo;
namespace fs = std::filesystem;

namespace {

size_t entries(const std::string& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

TEST(FileIo, PartsAreWrittenInOrderAndReplaceTheFile) {
  qyolo::testing::ScratchDir dir("qyolo_file_io_");
  const std::string p = dir.path("out.bin");
  { std::ofstream(p) << "old contents, longer than the new ones"; }
  const std::string binary("a\0b", 3);
  ASSERT_TRUE(write_file_atomically(p, {"head:", binary, "", ":tail"}, "test file").is_ok());
  EXPECT_EQ(qyolo::testing::read_file_bytes(p), std::string("head:a\0b:tail", 13));
  EXPECT_EQ(entries(dir.path("")), 1u);  // no temporary left behind
}

TEST(FileIo, FailuresNameTheFileAndLeaveNothingBehind) {
  qyolo::testing::ScratchDir dir("qyolo_file_io_fail_");
  // No such directory: the temporary cannot be opened.
  const std::string missing = dir.path("no_such_dir/x.bin");
  Status st = write_file_atomically(missing, "bytes", "engine file");
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kIo);
  EXPECT_NE(st.message().find("engine file '" + missing + "'"), std::string::npos) << st.message();
  // The destination is a non-empty directory: the rename fails, the directory keeps its file and
  // the temporary is removed.
  const std::string target = dir.path("target");
  fs::create_directories(target);
  { std::ofstream(target + "/keep") << "kept"; }
  st = write_file_atomically(target, "bytes", "results file");
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("cannot rename"), std::string::npos) << st.message();
  EXPECT_EQ(qyolo::testing::read_file_bytes(target + "/keep"), "kept");
  EXPECT_EQ(entries(dir.path("")), 1u) << "the temporary file was left behind";
}

}  // namespace
