// qyolo public API — 8-bit RGB images and the letterbox geometry that maps boxes back.
#pragma once

#include <cstdint>
#include <string>
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

// Where the letterboxed network input came from: boxes map back with (v - pad) / scale.
struct LetterboxInfo {
  float scale = 1.f;  // resize ratio r = min(dst_h / src_h, dst_w / src_w)
  float pad_x = 0.f;  // left padding in pixels (where the resized image starts)
  float pad_y = 0.f;  // top padding in pixels
  int src_w = 0, src_h = 0;
  int dst_w = 0, dst_h = 0;
};

// Decodes a JPEG or PNG file (chosen by magic bytes, not by extension) to RGB.
// JPEG: accurate integer IDCT and fancy chroma upsampling, i.e. the libjpeg defaults that
// cv2.imread uses. PNG: gray/palette expanded, alpha and tRNS dropped, 16-bit cut to 8 (as
// cv2.imread(IMREAD_COLOR) does). EXIF orientation is NOT applied (cv2.imread does apply it).
// Errors: kNotFound (missing), kCorrupt (empty, truncated, undecodable), kUnsupported (other format).
Result<Image> load_image(const std::string& path);

// Encoders. Both write to `path + ".tmp"` and rename, so `path` is never left half-written.
Status save_jpeg(const std::string& path, const Image& image, int quality = 90);
Status save_png(const std::string& path, const Image& image);

}  // namespace qyolo
