// qyolo — YOLOv5 letterbox preprocessing, bit-compatible with ultralytics' letterbox() on top of
// cv2.resize(INTER_LINEAR), and the inverse box mapping.
#pragma once

#include <cstddef>

#include "image/image.h"

namespace qyolo {



// The pad value ultralytics uses (114, 114, 114).
inline constexpr uint8_t kLetterboxPad = 114;

// cv2.resize(src, (dst_w, dst_h), interpolation=cv2.INTER_LINEAR) for 8-bit RGB, reproducing
// OpenCV's fixed-point arithmetic (including its exact-2x-downscale shortcut to INTER_AREA).
Image resize_linear(const Image& src, int dst_w, int dst_h);

// ultralytics letterbox(im, (dst_h, dst_w), color=(114,114,114), auto=False, scaleup=True).
// An empty source gives an all-pad image with scale 1; non-positive dst sizes give an empty image.
Image letterbox(const Image& src, int dst_h, int dst_w, LetterboxInfo* info);

// Same, written as float NCHW planes R, G, B scaled by 1/255 into out_chw[3 * dst_h * dst_w]
// (the caller owns the memory, so a batch tensor can be filled image by image).
LetterboxInfo letterbox_to_nchw(const Image& src, int dst_h, int dst_w, float* out_chw);

// Maps n_boxes boxes (x1, y1, x2, y2 in letterboxed pixels, in place) back to the source image:
// subtract the padding, divide by the scale, clip to [0, src_w] x [0, src_h] (ultralytics
// scale_boxes + clip_boxes).
void scale_boxes_to_original(const LetterboxInfo& info, float* xyxy, size_t n_boxes);

}  // namespace qyolo
