// qyolo — 8-bit RGB images: JPEG (libjpeg-turbo) and PNG (libpng) decode/encode.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "qyolo/status.h"

namespace qyolo {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // height x width x 3, interleaved R, G, B, rows packed

  Image() = default;
  Image(int w, int h, uint8_t fill = 0) : width(w), height(h), rgb(static_cast<size_t>(w) * h * 3, fill) {}
  bool empty() const { return width <= 0 || height <= 0; }
  uint8_t* pixel(int x, int y) { return rgb.data() + (static_cast<size_t>(y) * width + x) * 3; }
  const uint8_t* pixel(int x, int y) const { return rgb.data() + (static_cast<size_t>(y) * width + x) * 3; }
};

// Decodes a JPEG or PNG file (chosen by magic bytes, not by extension) to RGB.
// JPEG: accurate integer IDCT and fancy chroma upsampling, i.e. the libjpeg defaults that
// cv2.imread uses. PNG: gray/palette expanded, alpha and tRNS dropped, 16-bit cut to 8 (as
// cv2.imread(IMREAD_COLOR) does). EXIF orientation is NOT applied (cv2.imread does apply it).
// Errors: kNotFound (missing), kCorrupt (empty, truncated, undecodable), kUnsupported (other format).
Result<Image> load_image(const std::string& path);

// Same decoders on an in-memory file; `name` only labels error messages.
Result<Image> decode_image(const uint8_t* data, size_t size, const std::string& name);

// {width, height} from the file header only (JPEG SOF segment or PNG IHDR), without decoding.
Result<std::pair<int, int>> read_image_size(const std::string& path);

// Encoders. Both write to `path + ".tmp"` and rename, so `path` is never left half-written.
Status save_jpeg(const std::string& path, const Image& image, int quality = 90);
Status save_png(const std::string& path, const Image& image);

}  // namespace qyolo
