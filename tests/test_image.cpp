// Tests for src/image: decode/encode, letterbox (vs the ultralytics/OpenCV reference) and drawing.
#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "image/draw.h"
#include "image/image.h"
#include "image/letterbox.h"
#include "ir/npy.h"
#include "test_support.h"

namespace qyolo {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("qyolo_img_" + std::string(info->test_suite_name()) + "_" +
                                        info->name() + "_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  ~TempDir() { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
};

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::string& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

Image random_image(int w, int h, uint32_t seed) {
  std::mt19937 rng(seed);
  Image im(w, h);
  for (auto& v : im.rgb) v = static_cast<uint8_t>(rng() & 0xff);
  return im;
}

Image solid(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  Image im(w, h);
  for (int i = 0; i < w * h; ++i) {
    im.rgb[3 * i] = r;
    im.rgb[3 * i + 1] = g;
    im.rgb[3 * i + 2] = b;
  }
  return im;
}

// Encodes with libpng's simplified API so the fixtures do not depend on our own encoder.
std::string png_bytes(uint32_t format, int w, int h, const void* pixels, const void* colormap = nullptr,
                      int colormap_entries = 0) {
  png_image pi;
  std::memset(&pi, 0, sizeof(pi));
  pi.version = PNG_IMAGE_VERSION;
  pi.width = static_cast<png_uint_32>(w);
  pi.height = static_cast<png_uint_32>(h);
  pi.format = format;
  pi.colormap_entries = static_cast<png_uint_32>(colormap_entries);
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&pi, nullptr, &size, 0, pixels, 0, colormap)) return {};
  std::string out(size, '\0');
  if (!png_image_write_to_memory(&pi, out.data(), &size, 0, pixels, 0, colormap)) return {};
  out.resize(size);
  return out;
}

// ---- decode / encode ----------------------------------------------------------------------------

TEST(ImageIo, DecodesBusJpeg) {
  QYOLO_REQUIRE_SHARED("data/samples/bus.jpg");
  const std::string p = (testing::shared_dir() / "data/samples/bus.jpg").string();
  Result<Image> im = load_image(p);
  ASSERT_TRUE(im.is_ok()) << im.status().to_string();
  EXPECT_EQ(im->width, 810);
  EXPECT_EQ(im->height, 1080);
  EXPECT_EQ(im->rgb.size(), 810u * 1080u * 3u);
  Result<std::pair<int, int>> size = read_image_size(p);
  ASSERT_TRUE(size.is_ok()) << size.status().to_string();
  EXPECT_EQ(*size, std::make_pair(810, 1080));
}

TEST(ImageIo, PngRoundTripIsExactAndAtomic) {
  TempDir tmp;
  const Image src = random_image(37, 23, 1);
  const std::string p = tmp.path("r.png");
  spit(p, "previous contents");
  ASSERT_TRUE(save_png(p, src).is_ok());
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  Result<Image> back = load_image(p);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->width, 37);
  EXPECT_EQ(back->height, 23);
  EXPECT_EQ(back->rgb, src.rgb);
  Result<std::pair<int, int>> size = read_image_size(p);
  ASSERT_TRUE(size.is_ok());
  EXPECT_EQ(*size, std::make_pair(37, 23));
}

TEST(ImageIo, JpegRoundTripIsClose) {
  TempDir tmp;
  Image src(64, 48);
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64; ++x) {
      uint8_t* p = src.pixel(x, y);
      p[0] = static_cast<uint8_t>(x * 4);
      p[1] = static_cast<uint8_t>(y * 5);
      p[2] = static_cast<uint8_t>(128 + (x - y));
    }
  const std::string p = tmp.path("g.jpg");
  ASSERT_TRUE(save_jpeg(p, src, 95).is_ok());
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  Result<Image> back = load_image(p);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  ASSERT_EQ(back->width, 64);
  ASSERT_EQ(back->height, 48);
  double sum = 0;
  int worst = 0;
  for (size_t i = 0; i < src.rgb.size(); ++i) {
    const int d = std::abs(static_cast<int>(src.rgb[i]) - back->rgb[i]);
    sum += d;
    worst = std::max(worst, d);
  }
  EXPECT_LT(sum / static_cast<double>(src.rgb.size()), 2.0);
  EXPECT_LE(worst, 16);
  EXPECT_FALSE(save_jpeg(tmp.path("q.jpg"), src, 0).is_ok());
}

TEST(ImageIo, FormatChosenByMagicNotExtension) {
  TempDir tmp;
  const Image src = random_image(5, 4, 2);
  ASSERT_TRUE(save_png(tmp.path("really_png.jpg"), src).is_ok());
  Result<Image> back = load_image(tmp.path("really_png.jpg"));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->rgb, src.rgb);
  ASSERT_TRUE(save_jpeg(tmp.path("really_jpeg.png"), solid(8, 8, 10, 20, 30), 90).is_ok());
  EXPECT_TRUE(load_image(tmp.path("really_jpeg.png")).is_ok());
}

TEST(ImageIo, PngGrayPaletteAlphaAnd16BitBecomeRgb) {
  TempDir tmp;
  // PNG colour type lives in IHDR at byte 25: 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA.
  auto color_type = [](const std::string& png) { return static_cast<int>(static_cast<uint8_t>(png[25])); };

  const uint8_t gray[6] = {0, 50, 100, 150, 200, 255};
  std::string g = png_bytes(PNG_FORMAT_GRAY, 3, 2, gray);
  ASSERT_FALSE(g.empty());
  EXPECT_EQ(color_type(g), 0);
  spit(tmp.path("gray.png"), g);
  Result<Image> gi = load_image(tmp.path("gray.png"));
  ASSERT_TRUE(gi.is_ok()) << gi.status().to_string();
  for (int i = 0; i < 6; ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(gi->rgb[3 * i + c], gray[i]) << i;

  // Alpha is dropped, not composited (cv2.imread IMREAD_COLOR behaviour).
  const uint8_t rgba[8] = {10, 20, 30, 0, 40, 50, 60, 128};
  std::string a = png_bytes(PNG_FORMAT_RGBA, 2, 1, rgba);
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(color_type(a), 6);
  spit(tmp.path("rgba.png"), a);
  Result<Image> ai = load_image(tmp.path("rgba.png"));
  ASSERT_TRUE(ai.is_ok()) << ai.status().to_string();
  EXPECT_EQ(ai->rgb, (std::vector<uint8_t>{10, 20, 30, 40, 50, 60}));

  const uint8_t cmap[9] = {255, 0, 0, 0, 255, 0, 7, 8, 9};
  const uint8_t idx[4] = {2, 0, 1, 2};
  std::string pal = png_bytes(PNG_FORMAT_RGB_COLORMAP, 2, 2, idx, cmap, 3);
  ASSERT_FALSE(pal.empty());
  EXPECT_EQ(color_type(pal), 3);
  spit(tmp.path("pal.png"), pal);
  Result<Image> pi = load_image(tmp.path("pal.png"));
  ASSERT_TRUE(pi.is_ok()) << pi.status().to_string();
  EXPECT_EQ(pi->rgb, (std::vector<uint8_t>{7, 8, 9, 255, 0, 0, 0, 255, 0, 7, 8, 9}));

  // 16-bit samples keep their high byte.
  const uint16_t g16[2] = {0x1234, 0xfedc};
  std::string s16 = png_bytes(PNG_FORMAT_LINEAR_Y, 2, 1, g16);
  ASSERT_FALSE(s16.empty());
  EXPECT_EQ(static_cast<int>(static_cast<uint8_t>(s16[24])), 16);  // bit depth
  spit(tmp.path("g16.png"), s16);
  Result<Image> i16 = load_image(tmp.path("g16.png"));
  ASSERT_TRUE(i16.is_ok()) << i16.status().to_string();
  EXPECT_EQ(i16->rgb, (std::vector<uint8_t>{0x12, 0x12, 0x12, 0xfe, 0xfe, 0xfe}));
}

TEST(ImageIo, SizeFromHeaderSkipsLargeAppSegments) {
  TempDir tmp;
  ASSERT_TRUE(save_jpeg(tmp.path("s.jpg"), solid(33, 17, 1, 2, 3), 90).is_ok());
  std::string jpeg = slurp(tmp.path("s.jpg"));
  // Two maximal APP1 segments (like a big EXIF blob plus XMP) between SOI and the frame header.
  std::string app = std::string("\xff\xe1\xff\xff", 4) + std::string(65533, 'x');
  jpeg = jpeg.substr(0, 2) + app + app + jpeg.substr(2);
  spit(tmp.path("big_app.jpg"), jpeg);
  Result<std::pair<int, int>> size = read_image_size(tmp.path("big_app.jpg"));
  ASSERT_TRUE(size.is_ok()) << size.status().to_string();
  EXPECT_EQ(*size, std::make_pair(33, 17));
  Result<Image> im = load_image(tmp.path("big_app.jpg"));
  ASSERT_TRUE(im.is_ok()) << im.status().to_string();
  EXPECT_EQ(im->width, 33);
}

TEST(ImageIo, ClearErrors) {
  TempDir tmp;
  Result<Image> missing = load_image(tmp.path("missing.jpg"));
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("missing.jpg"), std::string::npos);
  EXPECT_EQ(read_image_size(tmp.path("missing.jpg")).status().code(), StatusCode::kNotFound);

  spit(tmp.path("empty.jpg"), "");
  Result<Image> empty = load_image(tmp.path("empty.jpg"));
  ASSERT_FALSE(empty.is_ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(empty.status().message().find("empty"), std::string::npos);

  spit(tmp.path("x.jpg"), std::string("\x00\x01GIF89a", 8));
  Result<Image> other = load_image(tmp.path("x.jpg"));
  ASSERT_FALSE(other.is_ok());
  EXPECT_EQ(other.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(other.status().message().find("x.jpg': not a JPEG or PNG (first bytes 00 01 47"),
            std::string::npos)
      << other.status().message();
  EXPECT_EQ(read_image_size(tmp.path("x.jpg")).status().code(), StatusCode::kUnsupported);

  spit(tmp.path("hdr.jpg"), std::string("\xff\xd8\xff\xe0\x00\x04zz\xff\x12garbage", 17));
  Result<Image> hdr = load_image(tmp.path("hdr.jpg"));
  ASSERT_FALSE(hdr.is_ok());
  EXPECT_EQ(hdr.status().code(), StatusCode::kCorrupt);

  // Truncated PNG: libpng's error reaches the message.
  ASSERT_TRUE(save_png(tmp.path("t.png"), random_image(40, 40, 3)).is_ok());
  const std::string png = slurp(tmp.path("t.png"));
  spit(tmp.path("t.png"), png.substr(0, png.size() / 2));
  Result<Image> tpng = load_image(tmp.path("t.png"));
  ASSERT_FALSE(tpng.is_ok());
  EXPECT_EQ(tpng.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(tpng.status().message().find("t.png"), std::string::npos);

  EXPECT_EQ(save_png((tmp.dir() / "no_dir" / "a.png").string(), solid(2, 2, 0, 0, 0)).code(),
            StatusCode::kIo);
  EXPECT_FALSE(fs::exists(tmp.dir() / "no_dir"));
  Image broken(4, 4);
  broken.rgb.resize(5);
  EXPECT_EQ(save_png(tmp.path("broken.png"), broken).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(tmp.path("broken.png")));
}

TEST(ImageIo, TruncatedJpegIsAnError) {
  QYOLO_REQUIRE_SHARED("data/samples/bus.jpg");
  TempDir tmp;
  const std::string bytes = slurp((testing::shared_dir() / "data/samples/bus.jpg").string());
  spit(tmp.path("half.jpg"), bytes.substr(0, bytes.size() / 2));
  Result<Image> r = load_image(tmp.path("half.jpg"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  // The libjpeg message is part of the error.
  EXPECT_NE(r.status().message().find("Premature end of JPEG file"), std::string::npos)
      << r.status().message();
  // The header is intact, so the size is still readable.
  Result<std::pair<int, int>> size = read_image_size(tmp.path("half.jpg"));
  ASSERT_TRUE(size.is_ok());
  EXPECT_EQ(*size, std::make_pair(810, 1080));
}

// ---- resize / letterbox -------------------------------------------------------------------------

// Plain double-precision bilinear with half-pixel centres and edge clamping: what cv2.resize
// INTER_LINEAR approximates with 11-bit fixed point.
uint8_t bilinear_ref(const Image& s, int dw, int dh, int dx, int dy, int c) {
  auto coord = [](int d, int src, int dst, int* i0, int* i1, double* f) {
    double x = (d + 0.5) * src / dst - 0.5;
    x = std::clamp(x, 0.0, static_cast<double>(src - 1));
    *i0 = static_cast<int>(std::floor(x));
    *i1 = std::min(*i0 + 1, src - 1);
    *f = x - *i0;
  };
  int x0, x1, y0, y1;
  double fx, fy;
  coord(dx, s.width, dw, &x0, &x1, &fx);
  coord(dy, s.height, dh, &y0, &y1, &fy);
  const double top = s.pixel(x0, y0)[c] * (1 - fx) + s.pixel(x1, y0)[c] * fx;
  const double bot = s.pixel(x0, y1)[c] * (1 - fx) + s.pixel(x1, y1)[c] * fx;
  return static_cast<uint8_t>(std::lround(top * (1 - fy) + bot * fy));
}

TEST(LetterboxResize, HandComputedUpscale) {
  // Row (0,200,40) (100,0,40) to width 4: samples at x = -0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
  Image src(2, 1);
  src.rgb = {0, 200, 40, 100, 0, 40};
  const Image out = resize_linear(src, 4, 1);
  EXPECT_EQ(out.rgb, (std::vector<uint8_t>{0, 200, 40, 25, 150, 40, 75, 50, 40, 100, 0, 40}));
}

TEST(LetterboxResize, Exact2xDownscaleIsRoundedBlockMean) {
  const Image src = random_image(10, 6, 7);
  const Image out = resize_linear(src, 5, 3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x)
      for (int c = 0; c < 3; ++c) {
        const int sum = src.pixel(2 * x, 2 * y)[c] + src.pixel(2 * x + 1, 2 * y)[c] +
                        src.pixel(2 * x, 2 * y + 1)[c] + src.pixel(2 * x + 1, 2 * y + 1)[c];
        EXPECT_EQ(out.pixel(x, y)[c], (sum + 2) / 4) << x << "," << y << "," << c;
      }
}

TEST(LetterboxResize, WithinOneOfFloatBilinear) {
  struct Case {
    int sw, sh, dw, dh;
  };
  for (const Case& k : {Case{37, 23, 64, 41}, Case{100, 77, 33, 29}, Case{81, 108, 48, 64}, Case{5, 8, 2, 4},
                        Case{1, 1, 3, 2}, Case{3, 1, 7, 1}, Case{13, 13, 13, 20}}) {
    const Image src = random_image(k.sw, k.sh, static_cast<uint32_t>(k.sw * 1000 + k.dw));
    const Image out = resize_linear(src, k.dw, k.dh);
    ASSERT_EQ(out.width, k.dw);
    ASSERT_EQ(out.height, k.dh);
    int worst = 0;
    for (int y = 0; y < k.dh; ++y)
      for (int x = 0; x < k.dw; ++x)
        for (int c = 0; c < 3; ++c)
          worst = std::max(worst, std::abs(out.pixel(x, y)[c] - bilinear_ref(src, k.dw, k.dh, x, y, c)));
    EXPECT_LE(worst, 1) << k.sw << "x" << k.sh << " -> " << k.dw << "x" << k.dh;
  }
}

// Rows [y0, y1) of a letterboxed image are pad (114) across the full width.
void expect_pad_rows(const Image& im, int y0, int y1) {
  for (int y = y0; y < y1; ++y)
    for (int x = 0; x < im.width; ++x)
      for (int c = 0; c < 3; ++c) ASSERT_EQ(im.pixel(x, y)[c], 114) << "x=" << x << " y=" << y;
}

TEST(Letterbox, TinyHandComputedCases) {
  // 4 wide x 2 tall into 4x4: r = min(4/2, 4/4) = 1, no resize, dh = 1 -> one pad row each side.
  Image a = random_image(4, 2, 9);
  LetterboxInfo ia;
  Image la = letterbox(a, 4, 4, &ia);
  ASSERT_EQ(la.width, 4);
  ASSERT_EQ(la.height, 4);
  EXPECT_FLOAT_EQ(ia.scale, 1.f);
  EXPECT_FLOAT_EQ(ia.pad_x, 0.f);
  EXPECT_FLOAT_EQ(ia.pad_y, 1.f);
  EXPECT_EQ(ia.src_w, 4);
  EXPECT_EQ(ia.src_h, 2);
  expect_pad_rows(la, 0, 1);
  expect_pad_rows(la, 3, 4);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) EXPECT_EQ(la.pixel(x, y + 1)[c], a.pixel(x, y)[c]);

  // Same through the float NCHW writer: plane c, row y, column x at c*16 + y*4 + x.
  std::vector<float> chw(3 * 16, -1.f);
  LetterboxInfo ic = letterbox_to_nchw(a, 4, 4, chw.data());
  EXPECT_FLOAT_EQ(ic.pad_y, 1.f);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 4; ++x) {
        const float want = (y == 0 || y == 3) ? 114.f / 255.f : a.pixel(x, y - 1)[c] / 255.f;
        EXPECT_EQ(chw[c * 16 + y * 4 + x], want) << c << "," << y << "," << x;
      }

  // 2 wide x 4 tall: one pad column each side.
  Image b = solid(2, 4, 1, 2, 3);
  LetterboxInfo ib;
  Image lb = letterbox(b, 4, 4, &ib);
  EXPECT_FLOAT_EQ(ib.pad_x, 1.f);
  EXPECT_FLOAT_EQ(ib.pad_y, 0.f);
  for (int y = 0; y < 4; ++y) {
    EXPECT_EQ(lb.pixel(0, y)[0], 114);
    EXPECT_EQ(lb.pixel(1, y)[0], 1);
    EXPECT_EQ(lb.pixel(2, y)[2], 3);
    EXPECT_EQ(lb.pixel(3, y)[1], 114);
  }
}

TEST(Letterbox, OddPaddingPutsTheExtraPixelBottomRight) {
  // 4x3 into 4x4: dh = 0.5 -> top round(0.4) = 0, bottom round(0.6) = 1.
  LetterboxInfo i1;
  Image l1 = letterbox(solid(4, 3, 200, 200, 200), 4, 4, &i1);
  EXPECT_FLOAT_EQ(i1.pad_y, 0.f);
  EXPECT_EQ(l1.pixel(0, 0)[0], 200);
  EXPECT_EQ(l1.pixel(3, 2)[0], 200);
  expect_pad_rows(l1, 3, 4);

  // 3x4 into 4x4: left 0, right 1.
  LetterboxInfo i2;
  Image l2 = letterbox(solid(3, 4, 200, 200, 200), 4, 4, &i2);
  EXPECT_FLOAT_EQ(i2.pad_x, 0.f);
  for (int y = 0; y < 4; ++y) {
    EXPECT_EQ(l2.pixel(2, y)[0], 200);
    EXPECT_EQ(l2.pixel(3, y)[0], 114);
  }

  // 10x6 into 8x8: r = 0.8, new 8x5 (4.8 -> 5), dh = 1.5 -> top 1, bottom 2.
  LetterboxInfo i3;
  Image l3 = letterbox(solid(10, 6, 200, 100, 50), 8, 8, &i3);
  EXPECT_FLOAT_EQ(i3.scale, 0.8f);
  EXPECT_FLOAT_EQ(i3.pad_y, 1.f);
  expect_pad_rows(l3, 0, 1);
  for (int y = 1; y < 6; ++y) EXPECT_EQ(l3.pixel(4, y)[1], 100) << y;
  expect_pad_rows(l3, 6, 8);

  // 8x5 into 4x4: r = 0.5, 5 * 0.5 = 2.5 rounds half to even -> 2 rows, dh = 1 (round-half-up
  // would give 3 rows and no top pad).
  LetterboxInfo i4;
  Image l4 = letterbox(solid(8, 5, 200, 200, 200), 4, 4, &i4);
  EXPECT_FLOAT_EQ(i4.pad_y, 1.f);
  expect_pad_rows(l4, 0, 1);
  EXPECT_EQ(l4.pixel(0, 1)[0], 200);
  EXPECT_EQ(l4.pixel(0, 2)[0], 200);
  expect_pad_rows(l4, 3, 4);

  // Upscale 2x1 into 8x8: r = 4, 8x4 content, 2 pad rows each side.
  LetterboxInfo i5;
  Image l5 = letterbox(solid(2, 1, 9, 9, 9), 8, 8, &i5);
  EXPECT_FLOAT_EQ(i5.scale, 4.f);
  EXPECT_FLOAT_EQ(i5.pad_y, 2.f);
  expect_pad_rows(l5, 0, 2);
  EXPECT_EQ(l5.pixel(7, 5)[2], 9);
  expect_pad_rows(l5, 6, 8);
}

TEST(Letterbox, BusMatchesUltralyticsReference) {
  QYOLO_REQUIRE_SHARED("data/samples/bus.jpg");
  QYOLO_REQUIRE_SHARED("reference/bus_input.npy");
  Result<Image> im = load_image((testing::shared_dir() / "data/samples/bus.jpg").string());
  ASSERT_TRUE(im.is_ok()) << im.status().to_string();
  Result<Tensor> ref = read_npy((testing::shared_dir() / "reference/bus_input.npy").string());
  ASSERT_TRUE(ref.is_ok()) << ref.status().to_string();
  ASSERT_EQ(ref->shape(), (Shape{1, 3, 640, 640}));

  std::vector<float> out(3 * 640 * 640);
  const LetterboxInfo info = letterbox_to_nchw(*im, 640, 640, out.data());
  // 810x1080 -> r = 640/1080, 480x640 content, 80 pad columns each side.
  EXPECT_FLOAT_EQ(info.scale, static_cast<float>(640.0 / 1080.0));
  EXPECT_FLOAT_EQ(info.pad_x, 80.f);
  EXPECT_FLOAT_EQ(info.pad_y, 0.f);

  const float* r = ref->data<float>();
  double max_diff = 0, sum_diff = 0;
  size_t n_image = 0, n_exact = 0;
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 640; ++y)
      for (int x = 0; x < 640; ++x) {
        const size_t i = (static_cast<size_t>(c) * 640 + y) * 640 + x;
        if (x < 80 || x >= 560) {
          ASSERT_EQ(r[i], 114.f / 255.f) << "reference pad at c=" << c << " y=" << y << " x=" << x;
          ASSERT_EQ(out[i], 114.f / 255.f) << "pad at c=" << c << " y=" << y << " x=" << x;
          continue;
        }
        const double d = std::fabs(static_cast<double>(out[i]) - r[i]);
        max_diff = std::max(max_diff, d);
        sum_diff += d;
        n_exact += d == 0;
        ++n_image;
      }
  const double mean_diff = sum_diff / static_cast<double>(n_image);
  std::cout << "[letterbox vs bus_input.npy] max abs diff " << max_diff << " (" << max_diff * 255
            << "/255), mean " << mean_diff << ", exact " << n_exact << "/" << n_image << "\n";
  ::testing::Test::RecordProperty("max_abs_diff_x255", std::to_string(max_diff * 255));
  ::testing::Test::RecordProperty("mean_abs_diff", std::to_string(mean_diff));
  EXPECT_LE(max_diff, 2.0 / 255 + 1e-7);
  EXPECT_LT(mean_diff, 0.002);
  // Emulating OpenCV's SIMD rounding makes the match exact; plain (v + 2^21) >> 22 everywhere
  // would leave ~12% of the values 1/255 off.
  EXPECT_GE(static_cast<double>(n_exact) / static_cast<double>(n_image), 0.99);

  // The uint8 letterbox is the same image.
  LetterboxInfo info8;
  const Image lb = letterbox(*im, 640, 640, &info8);
  EXPECT_FLOAT_EQ(info8.pad_x, info.pad_x);
  for (int y = 0; y < 640; y += 7)
    for (int x = 0; x < 640; x += 5)
      for (int c = 0; c < 3; ++c)
        ASSERT_EQ(lb.pixel(x, y)[c] / 255.f, out[(static_cast<size_t>(c) * 640 + y) * 640 + x]);
}

TEST(Letterbox, ScaleBoxesToOriginal) {
  // Bus geometry: scale 640/1080, pad_x 80.
  LetterboxInfo info;
  info.scale = static_cast<float>(640.0 / 1080.0);
  info.pad_x = 80.f;
  info.pad_y = 0.f;
  info.src_w = 810;
  info.src_h = 1080;
  info.dst_w = info.dst_h = 640;
  std::vector<float> boxes = {80.f,  0.f,   560.f, 640.f,   // the whole content area
                              200.f, 320.f, 320.f, 480.f,   // (120, 320, 240, 480) / r
                              -10.f, -5.f,  600.f, 700.f};  // clipped to the image
  scale_boxes_to_original(info, boxes.data(), 3);
  const float k = 1080.f / 640.f;
  const std::vector<float> want = {0.f,     0.f,     810.f, 1080.f, 120 * k, 320 * k,
                                   240 * k, 480 * k, 0.f,   0.f,    810.f,   1080.f};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(boxes[i], want[i], 1e-3f) << i;
}

// ---- drawing ------------------------------------------------------------------------------------

TEST(ImageDraw, BoxOutlineInsideTheBox) {
  Image im(100, 80);
  const RGB red{255, 0, 0};
  draw_box(im, 20.f, 10.f, 60.f, 50.f, red, 3);
  auto is_red = [&](int x, int y) {
    const uint8_t* p = im.pixel(x, y);
    return p[0] == 255 && p[1] == 0 && p[2] == 0;
  };
  auto is_black = [&](int x, int y) {
    const uint8_t* p = im.pixel(x, y);
    return p[0] == 0 && p[1] == 0 && p[2] == 0;
  };
  // Left band x in [20, 22], right band [58, 60], top y in [10, 12], bottom [48, 50].
  EXPECT_TRUE(is_red(20, 10));
  EXPECT_TRUE(is_red(22, 30));
  EXPECT_TRUE(is_black(23, 30));
  EXPECT_TRUE(is_black(19, 30));
  EXPECT_TRUE(is_red(58, 30));
  EXPECT_TRUE(is_red(60, 30));
  EXPECT_TRUE(is_black(57, 30));
  EXPECT_TRUE(is_black(61, 30));
  EXPECT_TRUE(is_red(40, 12));
  EXPECT_TRUE(is_black(40, 13));
  EXPECT_TRUE(is_red(40, 48));
  EXPECT_TRUE(is_black(40, 47));
  EXPECT_TRUE(is_black(40, 51));
  EXPECT_TRUE(is_black(40, 9));
  // 41x41 outer square minus 35x35 inner square.
  int n_red = 0;
  for (int y = 0; y < 80; ++y)
    for (int x = 0; x < 100; ++x) n_red += is_red(x, y);
  EXPECT_EQ(n_red, 41 * 41 - 35 * 35);
}

TEST(ImageDraw, BoxIsClippedToTheImage) {
  Image im(10, 10);
  draw_box(im, -5.f, -5.f, 4.f, 30.f, RGB{0, 255, 0}, 1);
  // Only the right edge (x = 4, all rows) is inside the image.
  int n = 0;
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 10; ++x) n += im.pixel(x, y)[1] == 255;
  EXPECT_EQ(n, 10);
  EXPECT_EQ(im.pixel(4, 7)[1], 255);
  draw_box(im, std::nanf(""), 0.f, 1e30f, -1e30f, RGB{1, 1, 1}, 2);  // must not crash
}

TEST(ImageDraw, LabelGeometryAndGlyphs) {
  Image im(640, 640);  // label_scale 2: 'A' label is (6 + 1) * 2 = 14 wide, 18 tall
  ASSERT_EQ(label_scale(im), 2);
  const RGB bg{20, 40, 160};
  draw_label(im, 10, 100, "A", bg);
  auto px = [&](int x, int y) { return RGB{im.pixel(x, y)[0], im.pixel(x, y)[1], im.pixel(x, y)[2]}; };
  const RGB white{255, 255, 255}, black{0, 0, 0};
  EXPECT_EQ(px(10, 82), bg);     // top-left of the background
  EXPECT_EQ(px(23, 99), bg);     // bottom-right
  EXPECT_EQ(px(24, 99), black);  // just outside
  EXPECT_EQ(px(10, 81), black);
  EXPECT_EQ(px(10, 100), black);
  // 'A' row 0 is .###. : glyph origin (12, 84), 2x2 cells.
  EXPECT_EQ(px(12, 84), bg);
  EXPECT_EQ(px(14, 84), white);
  EXPECT_EQ(px(19, 85), white);
  EXPECT_EQ(px(20, 84), bg);
  // Row 3 is ##### (the bar): y = 84 + 3 * 2.
  for (int x = 12; x < 22; ++x) EXPECT_EQ(px(x, 90), white) << x;

  // No room above y: drawn below it. Light background: black text.
  Image top(640, 640);
  draw_label(top, 0, 3, "I", RGB{255, 255, 0});
  EXPECT_EQ(RGB({top.pixel(0, 3)[0], top.pixel(0, 3)[1], top.pixel(0, 3)[2]}), (RGB{255, 255, 0}));
  EXPECT_EQ(top.pixel(0, 2)[0], 0);
  // 'I' row 0 is .###. -> black text pixel at (2 + 1 * 2, 3 + 2).
  EXPECT_EQ(RGB({top.pixel(4, 5)[0], top.pixel(4, 5)[1], top.pixel(4, 5)[2]}), black);
  // Readable on a 1280x720 frame: 3x glyphs, 27 px tall.
  EXPECT_EQ(label_scale(Image(1280, 720)), 3);
  // Out-of-range label positions are clipped silently.
  draw_label(top, 630, 639, "clipped label", bg);
}

TEST(ImageDraw, ClassColorsFollowTheUltralyticsPalette) {
  EXPECT_EQ(class_color(0), (RGB{0xFF, 0x38, 0x38}));
  EXPECT_EQ(class_color(1), (RGB{0xFF, 0x9D, 0x97}));
  EXPECT_EQ(class_color(19), (RGB{0xFF, 0x37, 0xC7}));
  EXPECT_EQ(class_color(20), class_color(0));
  EXPECT_EQ(class_color(79), class_color(19));
  EXPECT_EQ(class_color(-1), class_color(19));
}

}  // namespace
}  // namespace qyolo
