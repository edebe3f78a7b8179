#include "image/image.h"

#include <png.h>
#include <turbojpeg.h>

#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <system_error>
#include "ir/file_io.h"

namespace qyolo {
namespace {

// Refuse absurd header dimensions before allocating (a corrupt header must not cause bad_alloc).
constexpr int64_t kMaxPixels = int64_t{1} << 28;

enum class Format { kJpeg, kPng, kUnknown };

Format sniff(const uint8_t* p, size_t n) {
  static const uint8_t kPngSig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return Format::kJpeg;
  if (n >= 8 && std::memcmp(p, kPngSig, 8) == 0) return Format::kPng;
  return Format::kUnknown;
}

std::string hex_prefix(const uint8_t* p, size_t n) {
  std::string out;
  char buf[4];
  for (size_t i = 0; i < n && i < 8; ++i) {
    std::snprintf(buf, sizeof(buf), i ? " %02x" : "%02x", p[i]);
    out += buf;
  }
  return out.empty() ? "none" : out;
}

Status unknown_format(const std::string& name, const uint8_t* p, size_t n) {
  return unsupported("image '" + name + "': not a JPEG or PNG (first bytes " + hex_prefix(p, n) + ")");
}

Result<std::vector<uint8_t>> read_whole_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return not_found("image '" + path + "': no such file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return io_error("image '" + path + "': cannot open for reading");
  const std::streamoff size = in.tellg();
  if (size <= 0) return corrupt("image '" + path + "': empty file");
  std::vector<uint8_t> data(static_cast<size_t>(size));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(data.data()), size);
  if (in.gcount() != size) return io_error("image '" + path + "': short read");
  return data;
}

Status check_dims(const std::string& name, int64_t w, int64_t h) {
  if (w <= 0 || h <= 0 || w * h > kMaxPixels)
    return unsupported("image '" + name + "': dimensions " + std::to_string(w) + "x" + std::to_string(h) +
                       " out of range");
  return Status::ok();
}


// ---- JPEG ---------------------------------------------------------------------------------------

struct TjDeleter {
  void operator()(void* h) const { tjDestroy(h); }
};
using TjHandle = std::unique_ptr<void, TjDeleter>;

Result<Image> decode_jpeg(const uint8_t* data, size_t size, const std::string& name) {
  TjHandle tj(tjInitDecompress());
  if (!tj) return internal_error("image '" + name + "': tjInitDecompress failed: " + tjGetErrorStr2(nullptr));
  int w = 0, h = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(tj.get(), data, static_cast<unsigned long>(size), &w, &h, &subsamp, &colorspace) !=
      0)
    return corrupt("image '" + name + "': bad JPEG header: " + tjGetErrorStr2(tj.get()));
  QYOLO_RETURN_IF_ERROR(check_dims(name, w, h));

  // TurboJPEG cannot convert CMYK/YCCK to RGB, so take CMYK and convert like OpenCV does.
  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  std::vector<uint8_t> buf(static_cast<size_t>(w) * h * (cmyk ? 4 : 3));
  // Flags 0 plus ACCURATEDCT: islow IDCT and fancy upsampling, the libjpeg defaults cv2.imread uses.
  // EXIF orientation is deliberately ignored (cv2.imread would rotate).
  const int rc = tjDecompress2(tj.get(), data, static_cast<unsigned long>(size), buf.data(), w, 0, h,
                               cmyk ? TJPF_CMYK : TJPF_RGB, TJFLAG_ACCURATEDCT);
  if (rc != 0) {
    const std::string msg = tjGetErrorStr2(tj.get());
    // Like cv2.imread, decode through recoverable warnings (e.g. extraneous bytes before a marker),
    // but a truncated file is an error: libjpeg would silently pad it with gray.
    const bool warning = tjGetErrorCode(tj.get()) == TJERR_WARNING;
    if (!warning || msg.find("Premature end") != std::string::npos)
      return corrupt("image '" + name + "': JPEG decode failed: " + msg);
  }
  Image img;
  img.width = w;
  img.height = h;
  if (!cmyk) {
    img.rgb = std::move(buf);
    return img;
  }
  img.rgb.resize(static_cast<size_t>(w) * h * 3);
  const size_t n = static_cast<size_t>(w) * h;
  for (size_t i = 0; i < n; ++i) {
    // Adobe JPEGs store inverted CMYK; this is OpenCV's icvCvt_CMYK2BGR arithmetic.
    const int c = buf[i * 4], m = buf[i * 4 + 1], y = buf[i * 4 + 2], k = buf[i * 4 + 3];
    img.rgb[i * 3 + 0] = static_cast<uint8_t>(k - ((255 - c) * k >> 8));
    img.rgb[i * 3 + 1] = static_cast<uint8_t>(k - ((255 - m) * k >> 8));
    img.rgb[i * 3 + 2] = static_cast<uint8_t>(k - ((255 - y) * k >> 8));
  }
  return img;
}

// ---- PNG ----------------------------------------------------------------------------------------

struct PngSource {
  const uint8_t* data;
  size_t size;
  size_t pos;
  char error[256];
};

void png_read_cb(png_structp png, png_bytep out, size_t n) {
  auto* src = static_cast<PngSource*>(png_get_io_ptr(png));
  if (n > src->size - src->pos) png_error(png, "unexpected end of file (truncated PNG)");
  std::memcpy(out, src->data + src->pos, n);
  src->pos += n;
}

[[noreturn]] void png_error_cb(png_structp png, png_const_charp msg) {
  auto* src = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(src->error, sizeof(src->error), "%s", msg);
  png_longjmp(png, 1);
}

// Warnings (e.g. "iCCP: known incorrect sRGB profile") do not stop cv2.imread either.
void png_warning_cb(png_structp, png_const_charp) {}

// libpng reports errors by longjmp. Everything this function changes after setjmp lives in the
// caller (reached through pointers), and no local here has a destructor, so the jump is safe.
bool png_decode_into(PngSource* src, Image* img, std::vector<png_bytep>* rows) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, src, png_error_cb, png_warning_cb);
  if (png == nullptr) {
    std::snprintf(src->error, sizeof(src->error), "png_create_read_struct failed");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    std::snprintf(src->error, sizeof(src->error), "png_create_info_struct failed");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, src, png_read_cb);
  png_read_info(png, info);
  const png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  const int color_type = png_get_color_type(png, info), bit_depth = png_get_bit_depth(png, info);
  if (static_cast<int64_t>(w) * h > kMaxPixels) png_error(png, "image dimensions out of range");

  // The transforms cv2.imread(IMREAD_COLOR) asks for: 8-bit, alpha dropped (not composited),
  // gray and palette expanded to RGB. No gamma correction.
  if (bit_depth == 16) png_set_strip_16(png);
  png_set_strip_alpha(png);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if ((color_type & PNG_COLOR_MASK_COLOR) == 0) {
    if (bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    png_set_gray_to_rgb(png);
  }
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8 ||
      png_get_rowbytes(png, info) != static_cast<size_t>(w) * 3)
    png_error(png, "unexpected layout after conversion to 8-bit RGB");

  img->width = static_cast<int>(w);
  img->height = static_cast<int>(h);
  img->rgb.resize(static_cast<size_t>(w) * h * 3);
  rows->resize(h);
  for (png_uint_32 y = 0; y < h; ++y) (*rows)[y] = img->rgb.data() + static_cast<size_t>(y) * w * 3;
  png_read_image(png, rows->data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

Result<Image> decode_png(const uint8_t* data, size_t size, const std::string& name) {
  PngSource src{data, size, 0, {}};
  Image img;
  std::vector<png_bytep> rows;
  if (!png_decode_into(&src, &img, &rows))
    return corrupt("image '" + name + "': PNG decode failed: " + src.error);
  return img;
}

// ---- header-only size ---------------------------------------------------------------------------

// Walks the JPEG marker segments up to the first SOFn (skipping APPn/EXIF etc. by their lengths).
Result<std::pair<int, int>> jpeg_size(std::ifstream& in, const std::string& path) {
  auto fail = [&](const std::string& why) { return corrupt("image '" + path + "': JPEG header: " + why); };
  in.seekg(2);
  while (true) {
    int c = in.get();
    if (c == EOF) return fail("no SOF segment before end of file");
    if (c != 0xff) return fail("expected a marker, got byte " + std::to_string(c));
    int marker = in.get();
    while (marker == 0xff) marker = in.get();  // fill bytes
    if (marker == EOF) return fail("truncated marker");
    if (marker == 0xd9 || marker == 0xda) return fail("no SOF segment before SOS/EOI");
    if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue;  // no length field
    unsigned char len_bytes[2];
    if (!in.read(reinterpret_cast<char*>(len_bytes), 2)) return fail("truncated segment length");
    const int len = (len_bytes[0] << 8) | len_bytes[1];
    if (len < 2) return fail("segment length " + std::to_string(len));
    const bool sof = marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
    if (sof) {
      unsigned char b[5];
      if (len < 7 || !in.read(reinterpret_cast<char*>(b), 5)) return fail("truncated SOF segment");
      const int h = (b[1] << 8) | b[2], w = (b[3] << 8) | b[4];
      if (w == 0 || h == 0)
        return unsupported("image '" + path + "': JPEG SOF gives size " + std::to_string(w) + "x" +
                           std::to_string(h));
      return std::make_pair(w, h);
    }
    in.seekg(len - 2, std::ios::cur);
    if (!in) return fail("truncated segment");
  }
}

}  // namespace

Result<Image> decode_image(const uint8_t* data, size_t size, const std::string& name) {
  if (size == 0) return corrupt("image '" + name + "': empty file");
  switch (sniff(data, size)) {
    case Format::kJpeg:
      return decode_jpeg(data, size, name);
    case Format::kPng:
      return decode_png(data, size, name);
    case Format::kUnknown:
      break;
  }
  return unknown_format(name, data, size);
}

Result<Image> load_image(const std::string& path) {
  QYOLO_ASSIGN_OR_RETURN(std::vector<uint8_t> data, read_whole_file(path));
  return decode_image(data.data(), data.size(), path);
}

Result<std::pair<int, int>> read_image_size(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return not_found("image '" + path + "': no such file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error("image '" + path + "': cannot open for reading");
  uint8_t head[24] = {};
  in.read(reinterpret_cast<char*>(head), sizeof(head));
  const size_t got = static_cast<size_t>(in.gcount());
  if (got == 0) return corrupt("image '" + path + "': empty file");
  in.clear();
  switch (sniff(head, got)) {
    case Format::kJpeg:
      return jpeg_size(in, path);
    case Format::kPng: {
      // Signature (8), IHDR length (4), "IHDR" (4), width (4), height (4), all big-endian.
      if (got < 24 || std::memcmp(head + 12, "IHDR", 4) != 0)
        return corrupt("image '" + path + "': PNG without a leading IHDR chunk");
      auto be32 = [](const uint8_t* p) {
        return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
      };
      const uint32_t w = be32(head + 16), h = be32(head + 20);
      if (w == 0 || h == 0 || w > 0x7fffffffu || h > 0x7fffffffu)
        return corrupt("image '" + path + "': PNG IHDR size " + std::to_string(w) + "x" + std::to_string(h));
      return std::make_pair(static_cast<int>(w), static_cast<int>(h));
    }
    case Format::kUnknown:
      break;
  }
  return unknown_format(path, head, got);
}

Status save_jpeg(const std::string& path, const Image& image, int quality) {
  if (image.empty() || image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3)
    return invalid_argument("save_jpeg '" + path + "': image " + std::to_string(image.width) + "x" +
                            std::to_string(image.height) + " with " + std::to_string(image.rgb.size()) +
                            " bytes is not a valid RGB image");
  if (quality < 1 || quality > 100)
    return invalid_argument("save_jpeg '" + path + "': quality " + std::to_string(quality) +
                            " not in [1, 100]");
  TjHandle tj(tjInitCompress());
  if (!tj)
    return internal_error("save_jpeg '" + path + "': tjInitCompress failed: " + tjGetErrorStr2(nullptr));
  unsigned char* jpeg = nullptr;
  unsigned long jpeg_size = 0;
  const int rc = tjCompress2(tj.get(), image.rgb.data(), image.width, 0, image.height, TJPF_RGB, &jpeg,
                             &jpeg_size, TJSAMP_420, quality, TJFLAG_ACCURATEDCT);
  if (rc != 0) {
    const std::string msg = tjGetErrorStr2(tj.get());
    tjFree(jpeg);
    return internal_error("save_jpeg '" + path + "': encode failed: " + msg);
  }
  const std::string_view bytes(reinterpret_cast<const char*>(jpeg), jpeg_size);
  Status st = write_file_atomically(path, bytes, "image");
  tjFree(jpeg);
  return st;
}

Status save_png(const std::string& path, const Image& image) {
  if (image.empty() || image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3)
    return invalid_argument("save_png '" + path + "': image " + std::to_string(image.width) + "x" +
                            std::to_string(image.height) + " with " + std::to_string(image.rgb.size()) +
                            " bytes is not a valid RGB image");
  // The simplified write API reports errors in png_image::message instead of longjmp.
  png_image pi;
  std::memset(&pi, 0, sizeof(pi));
  pi.version = PNG_IMAGE_VERSION;
  pi.width = static_cast<png_uint_32>(image.width);
  pi.height = static_cast<png_uint_32>(image.height);
  pi.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&pi, nullptr, &size, 0, image.rgb.data(), 0, nullptr)) {
    std::string msg = pi.message;
    png_image_free(&pi);
    return internal_error("save_png '" + path + "': encode failed: " + msg);
  }
  std::vector<uint8_t> buf(size);
  if (!png_image_write_to_memory(&pi, buf.data(), &size, 0, image.rgb.data(), 0, nullptr)) {
    std::string msg = pi.message;
    png_image_free(&pi);
    return internal_error("save_png '" + path + "': encode failed: " + msg);
  }
  png_image_free(&pi);
  return write_file_atomically(path, std::string_view(reinterpret_cast<const char*>(buf.data()), size),
                               "image");
}

}  // namespace qyolo
