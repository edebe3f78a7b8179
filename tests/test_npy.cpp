// Tests for src/ir/npy: NumPy .npy read/write.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ir/npy.h"
#include "test_support.h"

namespace qyolo {
namespace {

namespace fs = std::filesystem;

class NpyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qyolo_npy_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
            "_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static void spit(const std::string& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  // A version 1.0 file with the given header dict and payload, padded like NumPy.
  static std::string v1_file(const std::string& dict, const std::string& payload) {
    std::string h = dict;
    while ((10 + h.size() + 1) % 64 != 0) h += ' ';
    h += '\n';
    std::string f = "\x93NUMPY";
    f += '\x01';
    f += '\x00';
    f += static_cast<char>(h.size() & 0xff);
    f += static_cast<char>(h.size() >> 8);
    return f + h + payload;
  }

  fs::path dir_;
};

TEST_F(NpyTest, ReadsBusInputReference) {
  QYOLO_REQUIRE_SHARED("reference/bus_input.npy");
  const std::string p = (testing::shared_dir() / "reference/bus_input.npy").string();
  Result<Tensor> t = read_npy(p);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->dtype(), DataType::kFloat32);
  EXPECT_EQ(t->shape(), (Shape{1, 3, 640, 640}));

  // Independent check of where the data starts: the raw file bytes after the 128-byte header
  // (10-byte prefix + header length 0x76 = 118, stored little-endian at offset 8).
  const std::string raw = slurp(p);
  ASSERT_EQ(raw.size(), 128u + 4u * 3 * 640 * 640);
  ASSERT_EQ(static_cast<uint8_t>(raw[8]) | (static_cast<uint8_t>(raw[9]) << 8), 118);
  for (size_t i : {size_t{0}, size_t{12345}, size_t{3 * 640 * 640 - 1}}) {
    float v;
    std::memcpy(&v, raw.data() + 128 + 4 * i, 4);
    EXPECT_EQ(t->data<float>()[i], v) << "element " << i;
  }
  // The letterbox pads columns 0..79 with 114/255.
  EXPECT_FLOAT_EQ(t->data<float>()[0], 114.f / 255.f);
}

TEST_F(NpyTest, RoundTripsEveryDtypeAndShape) {
  const std::vector<DataType> dtypes = {DataType::kFloat32, DataType::kFloat16, DataType::kInt8,
                                        DataType::kUInt8,   DataType::kInt32,   DataType::kInt64,
                                        DataType::kBool};
  const std::vector<Shape> shapes = {{}, {5}, {2, 3}, {1, 3, 4, 5}, {0, 3}};
  for (DataType dt : dtypes) {
    for (const Shape& s : shapes) {
      Tensor t(dt, s);
      auto* bytes = static_cast<uint8_t*>(t.raw());
      for (size_t i = 0; i < t.nbytes(); ++i)
        bytes[i] =
            dt == DataType::kBool ? static_cast<uint8_t>(i % 3 == 0) : static_cast<uint8_t>(i * 37 + 11);
      const std::string p = path(std::string(dtype_name(dt)) + "_" + shape_str(s) + ".npy");
      ASSERT_TRUE(write_npy(p, t).is_ok());
      EXPECT_FALSE(fs::exists(p + ".tmp"));
      // NumPy aligns the data to 64 bytes.
      EXPECT_EQ((fs::file_size(p) - t.nbytes()) % 64, 0u);
      Result<Tensor> back = read_npy(p);
      ASSERT_TRUE(back.is_ok()) << back.status().to_string();
      EXPECT_EQ(back->dtype(), dt) << p;
      EXPECT_EQ(back->shape(), s) << p;
      ASSERT_EQ(back->nbytes(), t.nbytes());
      if (t.nbytes()) {
        EXPECT_EQ(std::memcmp(back->raw(), t.raw(), t.nbytes()), 0) << p;
      }
    }
  }
}

TEST_F(NpyTest, WritesTheHeaderNumpyWrites) {
  // What numpy.save writes for np.zeros((2, 3), '<i4'): the dict, 20 spaces of growth room for
  // the first axis, padding to 64 bytes, '\n'.
  Tensor a(DataType::kInt32, {2, 3});
  ASSERT_TRUE(write_npy(path("a.npy"), a).is_ok());
  const std::string fa = slurp(path("a.npy"));
  ASSERT_EQ(fa.size(), 128u + 24u);
  EXPECT_EQ(fa.substr(0, 10), std::string("\x93NUMPY\x01\x00\x76\x00", 10));
  EXPECT_EQ(fa.substr(10, 59), "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }");
  EXPECT_EQ(fa.substr(69, 58), std::string(58, ' '));
  EXPECT_EQ(fa[127], '\n');
  Tensor b(DataType::kUInt8, {7});
  ASSERT_TRUE(write_npy(path("b.npy"), b).is_ok());
  EXPECT_EQ(slurp(path("b.npy")).substr(10, 57), "{'descr': '|u1', 'fortran_order': False, 'shape': (7,), }");
}

TEST_F(NpyTest, RewritesBusInputByteForByte) {
  QYOLO_REQUIRE_SHARED("reference/bus_input.npy");
  const std::string p = (testing::shared_dir() / "reference/bus_input.npy").string();
  Result<Tensor> t = read_npy(p);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  ASSERT_TRUE(write_npy(path("bus.npy"), *t).is_ok());
  EXPECT_TRUE(slurp(path("bus.npy")) == slurp(p)) << "write_npy output differs from the numpy-written file";
}

TEST_F(NpyTest, ReadsHandWrittenVersion1And2Files) {
  // int64 [-1, 2, 40000000000] as format 1.0.
  std::string payload(24, '\0');
  const int64_t vals[3] = {-1, 2, 40000000000};
  std::memcpy(payload.data(), vals, 24);
  spit(path("v1.npy"), v1_file("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", payload));
  Result<Tensor> t1 = read_npy(path("v1.npy"));
  ASSERT_TRUE(t1.is_ok()) << t1.status().to_string();
  EXPECT_EQ(t1->shape(), (Shape{3}));
  EXPECT_EQ(t1->to_int64_vector(), (std::vector<int64_t>{-1, 2, 40000000000}));

  // bool [[True, False]] as format 2.0 (4-byte header length), keys in another order.
  std::string h = "{'shape': (1, 2), 'fortran_order': False, 'descr': '|b1'}";
  while ((12 + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  std::string f = std::string("\x93NUMPY\x02\x00", 8);
  f += static_cast<char>(h.size());
  f += std::string(3, '\0');
  spit(path("v2.npy"), f + h + std::string("\x01\x00", 2));
  Result<Tensor> t2 = read_npy(path("v2.npy"));
  ASSERT_TRUE(t2.is_ok()) << t2.status().to_string();
  EXPECT_EQ(t2->dtype(), DataType::kBool);
  EXPECT_EQ(t2->shape(), (Shape{1, 2}));
  EXPECT_EQ(t2->to_int64_vector(), (std::vector<int64_t>{1, 0}));
}

TEST_F(NpyTest, TruncatedDataIsCorrupt) {
  Tensor t(DataType::kFloat32, {4, 4});
  ASSERT_TRUE(write_npy(path("t.npy"), t).is_ok());
  const std::string full = slurp(path("t.npy"));
  spit(path("t.npy"), full.substr(0, full.size() - 3));
  Result<Tensor> r = read_npy(path("t.npy"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("t.npy"), std::string::npos) << r.status().message();

  // Cut inside the header.
  spit(path("h.npy"), full.substr(0, 30));
  Result<Tensor> rh = read_npy(path("h.npy"));
  ASSERT_FALSE(rh.is_ok());
  EXPECT_EQ(rh.status().code(), StatusCode::kCorrupt);
}

TEST_F(NpyTest, ClearErrors) {
  Result<Tensor> missing = read_npy(path("nope.npy"));
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.npy"), std::string::npos);

  spit(path("magic.npy"), "PK\x03\x04 this is a zip");
  Result<Tensor> magic = read_npy(path("magic.npy"));
  ASSERT_FALSE(magic.is_ok());
  EXPECT_EQ(magic.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(magic.status().message().find("50 4b 03 04"), std::string::npos) << magic.status().message();

  const std::string four(16, '\0');
  spit(path("fortran.npy"), v1_file("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", four));
  Result<Tensor> fortran = read_npy(path("fortran.npy"));
  ASSERT_FALSE(fortran.is_ok());
  EXPECT_EQ(fortran.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(fortran.status().message().find("fortran"), std::string::npos);

  for (const char* descr : {"<c8", ">f4", "<f8", "<U3"}) {
    spit(path("dtype.npy"),
         v1_file(std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (2,), }",
                 std::string(16, '\0')));
    Result<Tensor> r = read_npy(path("dtype.npy"));
    ASSERT_FALSE(r.is_ok()) << descr;
    EXPECT_EQ(r.status().code(), StatusCode::kUnsupported) << descr;
    EXPECT_NE(r.status().message().find(descr), std::string::npos) << r.status().message();
  }

  spit(path("garbled.npy"), v1_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", four));
  Result<Tensor> garbled = read_npy(path("garbled.npy"));
  ASSERT_FALSE(garbled.is_ok());
  EXPECT_EQ(garbled.status().code(), StatusCode::kCorrupt);

  // A shape far larger than the file must be rejected before any allocation.
  spit(path("huge.npy"),
       v1_file("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100000), }", four));
  Result<Tensor> huge = read_npy(path("huge.npy"));
  ASSERT_FALSE(huge.is_ok());
  EXPECT_EQ(huge.status().code(), StatusCode::kCorrupt);

  EXPECT_FALSE(write_npy((dir_ / "no_such_dir" / "x.npy").string(), Tensor(DataType::kFloat32, {1})).is_ok());
}

}  // namespace
}  // namespace qyolo
