#include "image/letterbox.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace qyolo {
namespace {

// OpenCV's INTER_RESIZE_COEF_BITS: interpolation weights are 11-bit fixed point.
constexpr int kCoefBits = 11;
constexpr int kCoefScale = 1 << kCoefBits;

// saturate_cast<short>(float): round half to even (lrintf in the default rounding mode).
int16_t weight(float w) {
  const long v = std::lrint(w * static_cast<float>(kCoefScale));
  return static_cast<int16_t>(std::clamp<long>(v, INT16_MIN, INT16_MAX));
}

// Source index and 2 weights for one output coordinate, as OpenCV's resize table setup computes
// them: half-pixel centres in double, then float fraction, floor, edge clamp only on x.
struct Tap {
  int index;
  int16_t w0, w1;
};

Tap make_tap(int d, double scale) {
  float f = static_cast<float>((d + 0.5) * scale - 0.5);
  int s = static_cast<int>(std::floor(f));
  f -= static_cast<float>(s);
  return {s, weight(1.f - f), weight(f)};
}

// INTER_LINEAR with scale exactly 2 in both axes is INTER_AREA's fast path in OpenCV: the
// rounded mean of each 2x2 block.
void downscale2x(const Image& src, Image& dst) {
  for (int y = 0; y < dst.height; ++y) {
    const uint8_t* r0 = src.pixel(0, 2 * y);
    const uint8_t* r1 = src.pixel(0, 2 * y + 1);
    uint8_t* out = dst.pixel(0, y);
    for (int x = 0; x < dst.width; ++x) {
      for (int c = 0; c < 3; ++c) {
        const int a = 6 * x + c;
        out[3 * x + c] = static_cast<uint8_t>((r0[a] + r0[a + 3] + r1[a] + r1[a + 3] + 2) >> 2);
      }
    }
  }
}

void resize_generic(const Image& src, Image& dst) {
  const int sw = src.width, sh = src.height, dw = dst.width, dh = dst.height;
  const double scale_x = 1.0 / (static_cast<double>(dw) / sw);
  const double scale_y = 1.0 / (static_cast<double>(dh) / sh);

  // Horizontal taps per output pixel. Past either edge OpenCV pins the source index and uses
  // weights (1, 0).
  std::vector<Tap> xt(static_cast<size_t>(dw));
  for (int dx = 0; dx < dw; ++dx) {
    Tap t = make_tap(dx, scale_x);
    if (t.index < 0) t = {0, weight(1.f), weight(0.f)};
    if (t.index >= sw - 1) t = {sw - 1, weight(1.f), weight(0.f)};
    xt[static_cast<size_t>(dx)] = t;
  }

  // Horizontal pass of one source row into 32-bit sums scaled by 2^11.
  const size_t row_len = static_cast<size_t>(dw) * 3;
  auto hpass = [&](int sy, int32_t* out) {
    const uint8_t* s = src.pixel(0, sy);
    for (int dx = 0; dx < dw; ++dx) {
      const Tap& t = xt[static_cast<size_t>(dx)];
      const uint8_t* p = s + 3 * t.index;
      for (int c = 0; c < 3; ++c) {
        int32_t v = p[c] * t.w0;
        if (t.w1 != 0) v += p[c + 3] * t.w1;
        out[3 * dx + c] = v;
      }
    }
  };

  // Two cached horizontal rows; source rows are visited in non-decreasing order.
  std::vector<int32_t> buf(row_len * 2);
  int cached[2] = {-1, -1};
  auto hrow = [&](int sy) -> const int32_t* {
    for (int i = 0; i < 2; ++i)
      if (cached[i] == sy) return buf.data() + row_len * i;
    const int slot = (cached[0] < cached[1]) ? 0 : 1;  // evict the older (lower) row
    hpass(sy, buf.data() + row_len * slot);
    cached[slot] = sy;
    return buf.data() + row_len * slot;
  };

  // OpenCV's x86 build vectorises the vertical pass in blocks of 8 outputs with 16-bit
  // arithmetic ((S >> 4) * b >> 16, then +2 >> 2); the remaining row tail uses the exact
  // (S0*b0 + S1*b1 + 2^21) >> 22. Reproducing both keeps us bit-exact with cv2.resize.
  const size_t simd_len = row_len - row_len % 8;
  for (int dy = 0; dy < dh; ++dy) {
    const Tap t = make_tap(dy, scale_y);  // y weights are not reset at the edges, only the rows
    const int y0 = std::clamp(t.index, 0, sh - 1), y1 = std::clamp(t.index + 1, 0, sh - 1);
    // Both rows are fetched before either could be evicted (y0 <= y1).
    const int32_t* s0 = hrow(y0);
    const int32_t* s1 = hrow(y1);
    uint8_t* out = dst.pixel(0, dy);
    const int32_t b0 = t.w0, b1 = t.w1;
    size_t x = 0;
    for (; x < simd_len; ++x) {
      const int32_t a = ((s0[x] >> 4) * b0) >> 16;
      const int32_t b = ((s1[x] >> 4) * b1) >> 16;
      out[x] = static_cast<uint8_t>(std::clamp((a + b + 2) >> 2, 0, 255));
    }
    for (; x < row_len; ++x) {
      const int64_t v = int64_t{s0[x]} * b0 + int64_t{s1[x]} * b1;
      out[x] = static_cast<uint8_t>(std::clamp<int64_t>((v + (1 << 21)) >> 22, 0, 255));
    }
  }
}

struct Geometry {
  double r;
  int new_w, new_h, top, left;
};

Geometry letterbox_geometry(int sw, int sh, int dst_w, int dst_h) {
  Geometry g;
  g.r = std::min(static_cast<double>(dst_h) / sh, static_cast<double>(dst_w) / sw);
  // Python's round() is round-half-to-even, which nearbyint gives in the default mode. A resize
  // to zero pixels is impossible (cv2 would raise), so keep at least one.
  g.new_w = std::clamp(static_cast<int>(std::nearbyint(sw * g.r)), 1, dst_w);
  g.new_h = std::clamp(static_cast<int>(std::nearbyint(sh * g.r)), 1, dst_h);
  const double dw = (dst_w - g.new_w) / 2.0, dh = (dst_h - g.new_h) / 2.0;
  // round(d - 0.1) / round(d + 0.1): an odd total puts the extra pixel at the bottom/right.
  g.top = static_cast<int>(std::nearbyint(dh - 0.1));
  g.left = static_cast<int>(std::nearbyint(dw - 0.1));
  return g;
}

}  // namespace

Image resize_linear(const Image& src, int dst_w, int dst_h) {
  if (src.empty() || dst_w <= 0 || dst_h <= 0) return Image();
  Image dst(dst_w, dst_h);
  if (dst_w == src.width && dst_h == src.height) {
    dst.rgb = src.rgb;
    return dst;
  }
  const double scale_x = 1.0 / (static_cast<double>(dst_w) / src.width);
  const double scale_y = 1.0 / (static_cast<double>(dst_h) / src.height);
  if (std::abs(scale_x - 2.0) < DBL_EPSILON && std::abs(scale_y - 2.0) < DBL_EPSILON) {
    downscale2x(src, dst);
  } else {
    resize_generic(src, dst);
  }
  return dst;
}

Image letterbox(const Image& src, int dst_h, int dst_w, LetterboxInfo* info) {
  LetterboxInfo li;
  li.src_w = src.width;
  li.src_h = src.height;
  li.dst_w = dst_w;
  li.dst_h = dst_h;
  if (dst_w <= 0 || dst_h <= 0) {
    if (info) *info = li;
    return Image();
  }
  Image out(dst_w, dst_h, kLetterboxPad);
  if (src.empty()) {
    if (info) *info = li;
    return out;
  }
  const Geometry g = letterbox_geometry(src.width, src.height, dst_w, dst_h);
  li.scale = static_cast<float>(g.r);
  li.pad_x = static_cast<float>(g.left);
  li.pad_y = static_cast<float>(g.top);
  if (info) *info = li;

  Image resized;
  const Image* body = &src;
  if (g.new_w != src.width || g.new_h != src.height) {
    resized = resize_linear(src, g.new_w, g.new_h);
    body = &resized;
  }
  const size_t row_bytes = static_cast<size_t>(g.new_w) * 3;
  for (int y = 0; y < g.new_h; ++y) std::memcpy(out.pixel(g.left, g.top + y), body->pixel(0, y), row_bytes);
  return out;
}

LetterboxInfo letterbox_to_nchw(const Image& src, int dst_h, int dst_w, float* out_chw) {
  LetterboxInfo info;
  const Image lb = letterbox(src, dst_h, dst_w, &info);
  if (lb.empty()) return info;
  // x / 255.f, the same float32 division as YOLOv5's `im.float() / 255`.
  float lut[256];
  for (int i = 0; i < 256; ++i) lut[i] = static_cast<float>(i) / 255.0f;
  const size_t plane = static_cast<size_t>(dst_h) * dst_w;
  float* r = out_chw;
  float* g = out_chw + plane;
  float* b = out_chw + 2 * plane;
  const uint8_t* p = lb.rgb.data();
  for (size_t i = 0; i < plane; ++i) {
    r[i] = lut[p[3 * i]];
    g[i] = lut[p[3 * i + 1]];
    b[i] = lut[p[3 * i + 2]];
  }
  return info;
}

void scale_boxes_to_original(const LetterboxInfo& info, float* xyxy, size_t n_boxes) {
  const float gain = info.scale > 0.f ? info.scale : 1.f;
  const float w = static_cast<float>(info.src_w), h = static_cast<float>(info.src_h);
  for (size_t i = 0; i < n_boxes; ++i) {
    float* b = xyxy + 4 * i;
    b[0] = std::clamp((b[0] - info.pad_x) / gain, 0.f, w);
    b[1] = std::clamp((b[1] - info.pad_y) / gain, 0.f, h);
    b[2] = std::clamp((b[2] - info.pad_x) / gain, 0.f, w);
    b[3] = std::clamp((b[3] - info.pad_y) / gain, 0.f, h);
  }
}

}  // namespace qyolo
