// Fuzz target: JPEG/PNG decoding + letterbox (issue 17), as `qyolo detect` preprocesses an image.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "image/image.h"
#include "image/letterbox.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto im = qyolo::decode_image(data, size, "fuzz.img");
  if (!im) return 0;
  if (im->rgb.size() != static_cast<size_t>(im->width) * static_cast<size_t>(im->height) * 3) std::abort();
  qyolo::LetterboxInfo info;
  const qyolo::Image boxed = qyolo::letterbox(*im, 64, 96, &info);
  if (boxed.width != 96 || boxed.height != 64) std::abort();
  std::vector<float> chw(3 * 32 * 32);
  info = qyolo::letterbox_to_nchw(*im, 32, 32, chw.data());
  float box[4] = {0.f, 0.f, 32.f, 32.f};
  qyolo::scale_boxes_to_original(info, box, 1);
  return 0;
}
