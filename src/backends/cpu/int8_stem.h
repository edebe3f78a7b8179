// The image stem of YOLOv5-like models on AVX512-VNNI: a 6x6 stride-2 conv, padding 2, on 3
// float NCHW channels, computed as a 3x3 stride-1 conv on the 12 channels of the 2x2
// space-to-depth image (slot (2 dy + dx) * 3 + c of a block holds pixel (2 y + dy, 2 x + dx),
// channel c; the CUDA backend rearranges the stem the same way). oneDNN pads the 3 channels to
// 4 per VNNI step: 36 steps per output pixel, a quarter of them products with zero; here 27.
//
// Same integers as the oneDNN path: the image is quantised by the same function, the int32
// accumulator is exact either way, and each output row's float pre-activation is oneDNN's
// (float(acc) + bias[c]) * scale[c] (bias in accumulator units, per-channel output scale), handed
// to the caller's epilogue while it is in the cache (tested bit for bit against oneDNN's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "backends/cpu/int8_epilogue.h"

namespace qyolo::cpu {

class Int8Stem {
 public:
  // This CPU has AVX512-VNNI and the conv is such a stem: 3 input channels, a multiple of 16
  // output channels, kernel 6x6, stride 2, padding 2 on every side, no dilation, one group, an
  // even image.
  static bool supported(int64_t cin, int64_t cout, int64_t kh, int64_t kw, int64_t stride_h, int64_t stride_w,
                        const int64_t pads[4], int64_t dilation_h, int64_t dilation_w, int64_t group,
                        int64_t h, int64_t w);
  // w_q [cout][3][6][6]: the per-channel int8 weights; bias (accumulator units) and scale per
  // output channel, as oneDNN receives them. h, w: the image.
  void prepare(const int8_t* w_q, int64_t cout, const float* bias, const float* scale, int64_t h, int64_t w);
  size_t workspace_bytes() const;
  // One image x [3][h][w], quantised with input_scale; row(oy, v) receives output row oy's float
  // pre-activation v [w / 2][cout] (channels-last), on the thread that computed it.
  void run(const float* x, float input_scale, const Int8Epilogue& e, std::byte* workspace,
           const std::function<void(int64_t, const float*)>& row) const;

 private:
  int64_t cout_ = 0, h_ = 0, w_ = 0, threads_ = 1;
  std::vector<int8_t> weights_;        // [cout / 16][9 taps][3 groups][16 channels][4 slots]
  std::vector<int32_t> compensation_;  // 128 * sum of a channel's weights (the inputs go in as u8 + 128)
  std::vector<float> bias_, scale_;
};

}  // namespace qyolo::cpu
