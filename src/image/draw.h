// qyolo — minimal drawing for detection previews: box outlines and text labels with a built-in
// 5x7 bitmap font (no font files, no OpenCV).
#pragma once

#include <cstdint>
#include <string>

#include "image/image.h"

namespace qyolo {

struct RGB {
  uint8_t r = 0, g = 0, b = 0;
  friend bool operator==(const RGB&, const RGB&) = default;
};

// Ultralytics' 20-colour detection palette, cycled by class id.
RGB class_color(int class_id);

// Outline of the box [x1, x2] x [y1, y2] (coordinates rounded to pixels), `thickness` pixels
// wide, drawn inside the box so it never covers pixels outside it; clipped to the image.
void draw_box(Image& image, float x1, float y1, float x2, float y2, RGB color, int thickness);

// Glyph magnification for `image`: 1 up to ~640 px (w + h < 1280), 2 at 640x640, 3 at 1280x720.
int label_scale(const Image& image);

// Text on a filled background. A label is (6 * len + 1) * s wide and 9 * s tall, s = label_scale.
// (x, y) is the label's bottom-left corner, so passing a box's top-left puts the label on top of
// the box; when that would leave the image the label is drawn below y instead. Text is white or
// black, whichever contrasts with `bg`; characters outside printable ASCII are drawn as '?'.
// (x, y) are rounded like draw_box's; NaN, inf and huge values are clipped, never an overflow.
void draw_label(Image& image, float x, float y, const std::string& text, RGB bg);

}  // namespace qyolo
