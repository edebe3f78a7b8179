// TensorRT calibration cache and PPQ json reading / writing.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "calib/calib_cache.h"
#include "test_support.h"

namespace qyolo {
namespace {

namespace fs = std::filesystem;

float bits_to_float(uint32_t bits) {  // independent of float_from_bits
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

class CalibCache : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("qyolo_calib_cache_" + std::to_string(::getpid()) + "_" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  static std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  fs::path dir_;
};

TEST_F(CalibCache, WriteReadRoundTripIsBitExact) {
  CalibrationTable t;
  t.header_version = "8601";
  t.algorithm = "EntropyCalibration2";
  t.scales = {{"images", 1.0f / 127.0f},
              {"/model.0/conv/Conv_output_0", 0.0693147f},
              {"(Unnamed Layer* 12) [Constant]_output", 1.2e-38f},  // near FLT_MIN, still normal
              {"odd: name", 1234.5678f},
              {"zero", 1e-8f}};
  const fs::path p = dir_ / "model.cache";
  ASSERT_TRUE(write_calibration_cache(p, t).is_ok());
  // No temporary left behind, only the cache itself.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator{}), 1);

  const std::string text = slurp(p);
  EXPECT_EQ(text.substr(0, text.find('\n')), "TRT-8601-EntropyCalibration2");
  char line[64];
  std::snprintf(line, sizeof(line), "images: %08x\n", bits_of(1.0f / 127.0f));
  EXPECT_NE(text.find(line), std::string::npos) << text;
  // Deterministic order: sorted by name.
  EXPECT_LT(text.find("(Unnamed"), text.find("/model.0"));
  EXPECT_LT(text.find("odd: name"), text.find("zero: "));

  const auto back = read_calibration_cache(p);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->header_version, "8601");
  EXPECT_EQ(back->algorithm, "EntropyCalibration2");
  ASSERT_EQ(back->scales.size(), t.scales.size());
  for (const auto& [name, scale] : t.scales) {
    ASSERT_EQ(back->scales.count(name), 1u) << name;
    EXPECT_EQ(bits_of(back->scales.at(name)), bits_of(scale)) << name;
  }
  // Writing again over an existing file replaces it.
  t.scales.erase("zero");
  ASSERT_TRUE(write_calibration_cache(p, t).is_ok());
  EXPECT_EQ(read_calibration_cache(p)->scales.size(), t.scales.size());
}

TEST_F(CalibCache, ReadsHandWrittenTensorRtCache) {
  const fs::path p = write("trt.cache",
                           "TRT-8601-EntropyCalibration2\r\n"
                           "images: 3c010a14\r\n"
                           "/model.0/conv/Conv_output_0: 3d8e4a2b  \n"
                           "\n"
                           "(Unnamed Layer* 3) [Activation]_output: 3F800000\n"
                           "weird: name: 3C8B4396\n"
                           "tiny: 800000\n");
  const auto t = read_calibration_cache(p);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->header_version, "8601");
  EXPECT_EQ(t->algorithm, "EntropyCalibration2");
  ASSERT_EQ(t->scales.size(), 5u);
  EXPECT_EQ(bits_of(t->scales.at("images")), 0x3c010a14u);
  EXPECT_EQ(t->scales.at("images"), bits_to_float(0x3c010a14));
  EXPECT_NEAR(t->scales.at("images"), 0.0078760f, 1e-6f);  // ~ 1/127: a [-1, 1] input
  EXPECT_EQ(t->scales.at("/model.0/conv/Conv_output_0"), bits_to_float(0x3d8e4a2b));
  EXPECT_EQ(t->scales.at("(Unnamed Layer* 3) [Activation]_output"), 1.0f);
  EXPECT_EQ(t->scales.at("weird: name"), bits_to_float(0x3c8b4396));  // split on the last ": "
  EXPECT_EQ(bits_of(t->scales.at("tiny")), 0x800000u);  // FLT_MIN: 0, -0 and denormals are refused
}

TEST_F(CalibCache, ReadsTensorRt10Header) {
  const auto t = read_calibration_cache(write("trt10.cache", "TRT-100300-MinMaxCalibration\nx: 3e000000\n"));
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->header_version, "100300");
  EXPECT_EQ(t->algorithm, "MinMaxCalibration");
  EXPECT_EQ(t->scales.at("x"), 0.125f);
}

TEST_F(CalibCache, MalformedLineNamesLineNumber) {
  struct Case {
    std::string text, needle;
  };
  const Case cases[] = {
      {"TRT-8601-EntropyCalibration2\nimages: 3c010a14\nmissing_separator 3d000000\n", ":3:"},
      {"TRT-8601-EntropyCalibration2\nimages: 3c01zz14\n", ":2:"},
      {"TRT-8601-EntropyCalibration2\nimages: 3c010a1400\n", ":2:"},  // 10 digits
      {"TRT-8601-EntropyCalibration2\na: 3c010a14\n\nb: \n", ":4:"},
      {"TRT-8601-EntropyCalibration2\na: 7fc00000\n", ":2:"},               // NaN scale
      {"TRT-8601-EntropyCalibration2\na: bf800000\n", ":2:"},               // negative scale
      {"TRT-8601-EntropyCalibration2\na: 3c010a14\na: 3c010a14\n", ":3:"},  // duplicate
      {"EntropyCalibration2\nimages: 3c010a14\n", ":1:"},
      {"TRT-abc-EntropyCalibration2\n", ":1:"},
  };
  for (const Case& c : cases) {
    const fs::path p = write("bad.cache", c.text);
    const auto t = read_calibration_cache(p);
    ASSERT_FALSE(t.is_ok()) << c.text;
    EXPECT_EQ(t.status().code(), StatusCode::kCorrupt) << c.text;
    EXPECT_NE(t.status().message().find(p.string() + c.needle), std::string::npos)
        << t.status().message() << "\nfor:\n"
        << c.text;
  }
  EXPECT_EQ(read_calibration_cache(write("empty.cache", "")).status().code(), StatusCode::kCorrupt);
}

TEST_F(CalibCache, MissingFileIsNotFound) {
  const fs::path p = dir_ / "nope.cache";
  for (const auto& r : {read_calibration_cache(p), read_ppq_json(p), read_calibration_file(p)}) {
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
    EXPECT_NE(r.status().message().find(p.string()), std::string::npos);
  }
}

TEST_F(CalibCache, WriteRejectsBadTables) {
  CalibrationTable t{"8601", "EntropyCalibration2", {{"a", std::numeric_limits<float>::infinity()}}};
  const auto s = write_calibration_cache(dir_ / "x.cache", t);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'a'"), std::string::npos);
  EXPECT_FALSE(write_calibration_cache(dir_ / "x.cache", {"8601", "", {{"a", 1.0f}}}).is_ok());
  EXPECT_FALSE(
      write_calibration_cache(dir_ / "x.cache", {"8601", "MinMaxCalibration", {{"a\nb", 1.0f}}}).is_ok());
  EXPECT_FALSE(fs::exists(dir_ / "x.cache"));
  // An unwritable destination is an i/o error, not a crash.
  EXPECT_EQ(write_calibration_cache(dir_ / "no_such_dir" / "x.cache", {"", "MinMaxCalibration", {}}).code(),
            StatusCode::kIo);
}

TEST_F(CalibCache, PpqJsonBothValueForms) {
  const fs::path p = write("ppq.json", R"({
    "act_quant_info": {
      "images": 1.0,
      "/model.0/conv/Conv_output_0": 6.35,
      "/model.2/Concat_output_0": [-3.5, 2.0],
      "/model.24/Sigmoid_output_0": [0.0, 1.27]
    },
    "other": {"ignored": true}
  })");
  const auto t = read_ppq_json(p);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->algorithm, "PPQ");
  ASSERT_EQ(t->scales.size(), 4u);
  EXPECT_EQ(t->scales.at("images"), static_cast<float>(1.0 / 127.0));
  EXPECT_EQ(t->scales.at("/model.0/conv/Conv_output_0"), static_cast<float>(6.35 / 127.0));
  EXPECT_EQ(t->scales.at("/model.2/Concat_output_0"), static_cast<float>(3.5 / 127.0));
  EXPECT_EQ(t->scales.at("/model.24/Sigmoid_output_0"), static_cast<float>(1.27 / 127.0));
  // read_calibration_file dispatches on content, not extension.
  const auto dispatched = read_calibration_file(p);
  ASSERT_TRUE(dispatched.is_ok());
  EXPECT_EQ(dispatched->scales, t->scales);
}

TEST_F(CalibCache, PpqJsonErrors) {
  const auto bad_value = read_ppq_json(write("a.json", R"({"act_quant_info": {"x": "big"}})"));
  ASSERT_FALSE(bad_value.is_ok());
  EXPECT_NE(bad_value.status().message().find("'x'"), std::string::npos);
  const auto bad_list = read_ppq_json(write("b.json", R"({"act_quant_info": {"y": [1, 2, 3]}})"));
  ASSERT_FALSE(bad_list.is_ok());
  EXPECT_NE(bad_list.status().message().find("'y'"), std::string::npos);
  EXPECT_EQ(read_ppq_json(write("c.json", R"({"scales": {}})")).status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(read_ppq_json(write("d.json", "{not json")).status().code(), StatusCode::kCorrupt);
}

TEST_F(CalibCache, ReadCalibrationFileDispatchesTensorRtText) {
  const auto trt = read_calibration_file(write("c.txt", "TRT-8601-MinMaxCalibration\nimages: 3c010a14\n"));
  ASSERT_TRUE(trt.is_ok()) << trt.status().to_string();
  EXPECT_EQ(trt->algorithm, "MinMaxCalibration");
  EXPECT_EQ(trt->scales.at("images"), bits_to_float(0x3c010a14));
  const auto json = read_calibration_file(write("c.bin", "\n  {\"act_quant_info\": {\"images\": 2.54}}"));
  ASSERT_TRUE(json.is_ok()) << json.status().to_string();
  EXPECT_EQ(json->scales.at("images"), static_cast<float>(2.54 / 127.0));
}

}  // namespace
}  // namespace qyolo
