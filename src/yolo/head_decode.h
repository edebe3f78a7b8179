// qyolo — the per-point head decode, one source for the CPU (src/yolo/head.cpp) and the GPU
// (src/backends/cuda/postprocess.cu): plain data (HeadDecodeParams, made from a BoundHead by
// make_decode_params) and one __host__ __device__ function that decodes one point.
//
// Formulas follow the reference implementations, in their float operation order:
//   YOLOv5  ultralytics models/yolo.py Detect: xy = (sig*2 + (cell - 0.5)) * stride, wh = (sig*2)^2 * anchor
//   YOLOX   yolox/models/yolo_head.py decode_outputs: xy = (t + cell) * stride, wh = exp(t) * stride
//   DFL     ultralytics nn/modules/block.py DFL + utils/tal.py dist2bbox(xywh=True), cell centre + 0.5
//   deltas  torchvision BoxCoder.decode_single (weights, dw/dh clamped at log(1000/16)), anchors
//           centred at (cell + offset) * stride
#pragma once

#include <math.h>

#include <cstdint>

#if defined(__CUDACC__)
#define QYOLO_HD __host__ __device__ __forceinline__
#else
#define QYOLO_HD inline
#endif

namespace qyolo {

constexpr int kHeadMaxLevels = 16;
constexpr int kHeadMaxAnchors = 16;
constexpr int kHeadMaxRegMax = 64;

struct HeadDecodePart {
  int output = -1;  // -1: absent
  int logits = 0;
  int64_t base = 0, batch_stride = 0, anchor_stride = 0, y_stride = 0, x_stride = 0, channel_stride = 0;
};

struct HeadDecodeLevel {
  float stride = 1.f;
  int64_t h = 1, w = 1, a = 1, first_point = 0;
  int num_anchors = 0;  // 0: anchor-free
  float anchors[2 * kHeadMaxAnchors] = {};
  HeadDecodePart box, obj, cls;
};

// Encodings, as BoxEncoding (head.h) numbers them.
enum : int { kHeadXywh = 0, kHeadXyxy = 1, kHeadYoloV5 = 2, kHeadYoloX = 3, kHeadDfl = 4, kHeadDeltas = 5 };

struct HeadDecodeParams {
  int encoding = kHeadXywh;
  int objectness = 0;  // 1: rows [N, P, 5+nc]; 0: columns [N, 4+nc, P]
  int nc = 0;
  int reg_max = 16;
  float grid_offset = 0.f;
  float delta_weights[4] = {1.f, 1.f, 1.f, 1.f};
  int64_t batch = 0, points = 0;
  int num_levels = 0;
  HeadDecodeLevel levels[kHeadMaxLevels];
};

QYOLO_HD float head_sigmoid(float v) {
  return 1.0f / (1.0f + expf(-v));
}

// An activated value (logits -> sigmoid); `bad` counts probabilities outside [0, 1] (NaN included).
QYOLO_HD float head_score(const HeadDecodePart& p, float v, int& bad) {
  if (p.logits) return head_sigmoid(v);
  if (!(v >= -1e-3f && v <= 1.0f + 1e-3f)) ++bad;
  return v;
}

// Decodes point `point` of image `n` into the decoded tensor `out` (layout by params.objectness).
// Returns the number of score values that should be probabilities but are not.
QYOLO_HD int head_decode_point(const HeadDecodeParams& hp, const float* const* outputs, int64_t n,
                               int64_t point, float* out) {
  int l = 0;
  while (l + 1 < hp.num_levels && point >= hp.levels[l + 1].first_point) ++l;
  const HeadDecodeLevel& lv = hp.levels[l];
  const int64_t local = point - lv.first_point;
  const int64_t cells = lv.h * lv.w;
  const int64_t a = local / cells, cell = local % cells, y = cell / lv.w, x = cell % lv.w;
  const int channels = 4 + hp.objectness + hp.nc;
  float* row = out + n * hp.points * channels;
  const int64_t step = hp.objectness ? 1 : hp.points;  // between channels of one point
  row += hp.objectness ? point * channels : point;
  int bad = 0;

  const float* bx = outputs[lv.box.output];
  auto box_at = [&](int64_t c) {
    return bx[lv.box.base + n * lv.box.batch_stride + a * lv.box.anchor_stride + y * lv.box.y_stride +
              x * lv.box.x_stride + c * lv.box.channel_stride];
  };
  float cx = 0.f, cy = 0.f, w = 0.f, h = 0.f;
  switch (hp.encoding) {
    case kHeadXywh:
      cx = box_at(0), cy = box_at(1), w = box_at(2), h = box_at(3);
      break;
    case kHeadXyxy: {
      const float x1 = box_at(0), y1 = box_at(1), x2 = box_at(2), y2 = box_at(3);
      cx = (x1 + x2) / 2.0f, cy = (y1 + y2) / 2.0f, w = x2 - x1, h = y2 - y1;
      break;
    }
    case kHeadYoloV5: {
      float s[4];
      for (int k = 0; k < 4; ++k) s[k] = lv.box.logits ? head_sigmoid(box_at(k)) : box_at(k);
      const float gx = static_cast<float>(x) - 0.5f, gy = static_cast<float>(y) - 0.5f;
      cx = (s[0] * 2.0f + gx) * lv.stride;
      cy = (s[1] * 2.0f + gy) * lv.stride;
      const float tw = s[2] * 2.0f, th = s[3] * 2.0f;
      w = tw * tw * lv.anchors[2 * a];
      h = th * th * lv.anchors[2 * a + 1];
      break;
    }
    case kHeadYoloX:
      cx = (box_at(0) + (static_cast<float>(x) + hp.grid_offset)) * lv.stride;
      cy = (box_at(1) + (static_cast<float>(y) + hp.grid_offset)) * lv.stride;
      w = expf(box_at(2)) * lv.stride;
      h = expf(box_at(3)) * lv.stride;
      break;
    case kHeadDfl: {
      float d[4];
      for (int k = 0; k < 4; ++k) {
        float m = box_at(k * hp.reg_max);
        for (int i = 1; i < hp.reg_max; ++i) m = fmaxf(m, box_at(k * hp.reg_max + i));
        float e[kHeadMaxRegMax];
        float sum = 0.f;
        for (int i = 0; i < hp.reg_max; ++i) {
          e[i] = expf(box_at(k * hp.reg_max + i) - m);
          sum += e[i];
        }
        float acc = 0.f;
        for (int i = 0; i < hp.reg_max; ++i) acc += static_cast<float>(i) * (e[i] / sum);
        d[k] = acc;
      }
      const float ax = static_cast<float>(x) + hp.grid_offset, ay = static_cast<float>(y) + hp.grid_offset;
      const float x1 = ax - d[0], y1 = ay - d[1], x2 = ax + d[2], y2 = ay + d[3];
      cx = (x1 + x2) / 2.0f * lv.stride;
      cy = (y1 + y2) / 2.0f * lv.stride;
      w = (x2 - x1) * lv.stride;
      h = (y2 - y1) * lv.stride;
      break;
    }
    case kHeadDeltas: {
      constexpr float kClip = 4.135166556742356f;  // log(1000 / 16)
      const float aw = lv.anchors[2 * a], ah = lv.anchors[2 * a + 1];
      const float acx = (static_cast<float>(x) + hp.grid_offset) * lv.stride;
      const float acy = (static_cast<float>(y) + hp.grid_offset) * lv.stride;
      const float dx = box_at(0) / hp.delta_weights[0], dy = box_at(1) / hp.delta_weights[1];
      const float dw = fminf(box_at(2) / hp.delta_weights[2], kClip),
                  dh = fminf(box_at(3) / hp.delta_weights[3], kClip);
      cx = dx * aw + acx;
      cy = dy * ah + acy;
      w = expf(dw) * aw;
      h = expf(dh) * ah;
      break;
    }
    default:
      break;
  }
  row[0] = cx;
  row[step] = cy;
  row[2 * step] = w;
  row[3 * step] = h;
  int c_out = 4;
  if (hp.objectness) {
    const HeadDecodePart& p = lv.obj;
    const float v = outputs[p.output][p.base + n * p.batch_stride + a * p.anchor_stride + y * p.y_stride +
                                      x * p.x_stride];
    row[c_out * step] = head_score(p, v, bad);
    ++c_out;
  }
  const HeadDecodePart& p = lv.cls;
  const float* cl =
      outputs[p.output] + p.base + n * p.batch_stride + a * p.anchor_stride + y * p.y_stride + x * p.x_stride;
  for (int c = 0; c < hp.nc; ++c) row[(c_out + c) * step] = head_score(p, cl[c * p.channel_stride], bad);
  return bad;
}

}  // namespace qyolo
