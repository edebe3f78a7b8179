// Small synthetic detectors with the output layouts of real heads (YOLOv5 raw levels, YOLOv8 DFL
// levels, YOLOX flat rows, RetinaNet cls/box pairs, a decoded YOLOv8 head), built with OnnxBuilder
// from ops every backend runs (Conv, Sigmoid, Mul, Add, Reshape, Concat, Split, Transpose). A
// pyramid of stride-2 2x2 convs gives features at strides 8..128; each output is a 1x1 conv of
// its level's features (weights from a fixed pseudo-random sequence), so the raw values vary with
// the image and lie in the ranges of real heads. Used by tests/test_heads.cpp and the GPU tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "onnx_builder.h"
#include "qyolo/image.h"
#include "qyolo/tensor.h"

namespace qyolo::testing {

class HeadModelBuilder {
 public:
  // h, w: -1 for dynamic dims; the batch is always dynamic.
  HeadModelBuilder(int64_t h, int64_t w, uint32_t seed = 1) : h_(h), w_(w), seed_(seed) {
    b_.input("images", {-1, 3, h, w});
  }

  // The features at `stride` (a power of two >= 2): [N, 3, H/stride, W/stride].
  std::string features(int stride) {
    if (stride == 1) return "images";
    auto it = feats_.find(stride);
    if (it != feats_.end()) return it->second;
    const std::string in = features(stride / 2);
    const std::string name = "feat" + std::to_string(stride);
    // Mostly a 2x2 average of the same channel, plus a little mixing and a bias.
    std::vector<float> wts(3 * 3 * 2 * 2);
    for (int o = 0; o < 3; ++o)
      for (int i = 0; i < 3; ++i)
        for (int k = 0; k < 4; ++k)
          wts[static_cast<size_t>((o * 3 + i) * 4 + k)] = (o == i ? 0.25f : 0.f) + 0.08f * rnd();
    std::vector<float> bias(3);
    for (float& v : bias) v = 0.05f * rnd();
    b_.initializer(name + "_w", {3, 3, 2, 2}, wts);
    b_.initializer(name + "_b", {3}, bias);
    auto* c = b_.node("Conv", {in, name + "_w", name + "_b"}, {name}, "/down" + std::to_string(stride));
    OnnxBuilder::attr_ints(c, "kernel_shape", {2, 2});
    OnnxBuilder::attr_ints(c, "strides", {2, 2});
    feats_[stride] = name;
    return name;
  }

  // A 1x1 conv of the level's features to `channels` channels: weights in [-scale, scale], biases
  // `bias[c]` + a little noise (bias may be shorter than channels: the rest get noise only).
  std::string head_conv(int stride, int64_t channels, float scale, const std::vector<float>& bias = {},
                        const std::string& out = "") {
    const std::string name = out.empty() ? "head" + std::to_string(counter_++) : out;
    std::vector<float> wts(static_cast<size_t>(channels) * 3);
    for (float& v : wts) v = scale * rnd();
    std::vector<float> bs(static_cast<size_t>(channels));
    for (size_t c = 0; c < bs.size(); ++c) bs[c] = (c < bias.size() ? bias[c] : 0.f) + 0.1f * scale * rnd();
    b_.initializer(name + "_w", {channels, 3, 1, 1}, wts);
    b_.initializer(name + "_b", {channels}, bs);
    b_.node("Conv", {features(stride), name + "_w", name + "_b"}, {name}, "/" + name + "/Conv");
    return name;
  }

  std::string unary(const std::string& op, const std::string& x) {
    const std::string y = x + "_" + op;
    b_.node(op, {x}, {y});
    return y;
  }
  std::string binary(const std::string& op, const std::string& x, const std::string& c) {
    const std::string y = x + "_" + op + std::to_string(counter_++);
    b_.node(op, {x, c}, {y});
    return y;
  }
  void constant(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& v) {
    b_.initializer(name, dims, v);
  }
  void int64s(const std::string& name, const std::vector<int64_t>& v) { b_.int64_initializer(name, v); }
  // [N, C, H, W] -> [N, C, H*W]
  std::string flatten_cells(const std::string& x, int64_t channels) {
    const std::string shape = x + "_flat_shape";
    int64s(shape, {0, channels, -1});
    const std::string y = x + "_flat";
    b_.node("Reshape", {x, shape}, {y});
    return y;
  }
  std::string concat(const std::vector<std::string>& xs, int64_t axis, const std::string& out = "") {
    const std::string y = out.empty() ? "cat" + std::to_string(counter_++) : out;
    auto* n = b_.node("Concat", xs, {y});
    auto* a = n->add_attribute();
    a->set_name("axis");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(axis);
    return y;
  }
  std::vector<std::string> split(const std::string& x, int64_t axis, const std::vector<int64_t>& sizes) {
    std::vector<std::string> outs;
    for (size_t i = 0; i < sizes.size(); ++i) outs.push_back(x + "_part" + std::to_string(i));
    const std::string s = x + "_split_sizes";
    int64s(s, sizes);
    auto* n = b_.node("Split", {x, s}, outs);
    auto* a = n->add_attribute();
    a->set_name("axis");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(axis);
    return outs;
  }
  std::string transpose(const std::string& x, const std::vector<int64_t>& perm, const std::string& out = "") {
    const std::string y = out.empty() ? x + "_t" : out;
    auto* n = b_.node("Transpose", {x}, {y});
    OnnxBuilder::attr_ints(n, "perm", perm);
    return y;
  }
  // QuantizeLinear -> DequantizeLinear of x (int8, per-tensor `scale`, zero point 0) into `out`.
  std::string qdq(const std::string& x, float scale, const std::string& out) {
    b_.initializer(out + "_scale", {}, {scale});
    auto* zp = b_.model().mutable_graph()->add_initializer();
    zp->set_name(out + "_zero_point");
    zp->set_data_type(onnx::TensorProto::INT8);
    zp->add_int32_data(0);
    b_.node("QuantizeLinear", {x, out + "_scale", out + "_zero_point"}, {out + "_quantized"});
    b_.node("DequantizeLinear", {out + "_quantized", out + "_scale", out + "_zero_point"}, {out});
    return out;
  }
  std::string identity(const std::string& x, const std::string& out) {
    b_.node("Identity", {x}, {out});
    return out;
  }
  void output(const std::string& name) { b_.output(name); }
  void metadata(const std::string& key, const std::string& value) {
    auto* m = b_.model().add_metadata_props();
    m->set_key(key);
    m->set_value(value);
  }
  std::string bytes() const { return b_.bytes(); }

 private:
  float rnd() {  // uniform in [-1, 1)
    seed_ = seed_ * 1664525u + 1013904223u;
    return static_cast<float>(seed_ >> 8) / static_cast<float>(1u << 23) - 1.0f;
  }
  OnnxBuilder b_{13};
  int64_t h_, w_;
  uint32_t seed_;
  int counter_ = 0;
  std::map<int, std::string> feats_;
};

// YOLOv8 raw head: per level one output [N, 64+nc, H, W] (split=false) or a box output
// [N, 64, H, W] and a class output [N, nc, H, W] (split=true), class logits.
inline std::string yolov8_raw_model(int64_t h, int64_t w, int nc, bool split, uint32_t seed = 7) {
  HeadModelBuilder m(h, w, seed);
  for (int s : {8, 16, 32}) {
    const std::string lv = std::to_string(s);
    std::vector<float> cls_bias(static_cast<size_t>(nc), -1.5f);
    if (split) {
      m.output(m.identity(m.head_conv(s, 64, 3.0f), "box" + lv));
      m.output(m.identity(m.head_conv(s, nc, 4.0f, cls_bias), "cls" + lv));
    } else {
      std::vector<float> bias(64, 0.f);
      bias.insert(bias.end(), cls_bias.begin(), cls_bias.end());
      m.output(m.identity(m.head_conv(s, 64 + nc, 3.0f, bias), "p" + lv));
    }
  }
  m.metadata("task", "detect");
  m.metadata("stride", "32");
  return m.bytes();
}

// YOLOv5 raw head (no Detect decode): per level [N, 3*(5+nc), H, W] logits.
inline std::string yolov5_raw_model(int64_t h, int64_t w, int nc, uint32_t seed = 11) {
  HeadModelBuilder m(h, w, seed);
  for (int s : {8, 16, 32}) {
    std::vector<float> bias;
    for (int a = 0; a < 3; ++a) {
      for (int c = 0; c < 4; ++c) bias.push_back(0.f);
      bias.push_back(-1.0f);  // objectness
      for (int c = 0; c < nc; ++c) bias.push_back(0.5f);
    }
    m.output(m.identity(m.head_conv(s, 3 * (5 + nc), 3.0f, bias), "p" + std::to_string(s)));
  }
  return m.bytes();
}

// YOLOX as its official ONNX export: [N, P, 5+nc], raw box offsets / log sizes, objectness and
// class scores through a sigmoid (sigmoid_scores=false: logits everywhere).
inline std::string yolox_model(int64_t h, int64_t w, int nc, bool sigmoid_scores = true, uint32_t seed = 13) {
  HeadModelBuilder m(h, w, seed);
  std::vector<std::string> levels;
  for (int s : {8, 16, 32}) {
    std::vector<float> bias = {0.f, 0.f, 0.5f, 0.5f, -1.0f};
    for (int c = 0; c < nc; ++c) bias.push_back(0.f);
    std::string x = m.head_conv(s, 5 + nc, 1.5f, bias);
    if (sigmoid_scores) {
      auto parts = m.split(x, 1, {4, 1 + nc});
      x = m.concat({parts[0], m.unary("Sigmoid", parts[1])}, 1);
    }
    levels.push_back(m.flatten_cells(x, 5 + nc));
  }
  m.output(m.transpose(m.concat(levels, 2), {0, 2, 1}, "output"));
  return m.bytes();
}

// RetinaNet-style: five levels (strides 8..128), A anchors, a class-logit output [N, A*nc, H, W]
// and a box-delta output [N, A*4, H, W] per level (10 outputs: cls8, box8, cls16, ...).
inline std::string retinanet_model(int64_t h, int64_t w, int nc, int anchors, uint32_t seed = 17) {
  HeadModelBuilder m(h, w, seed);
  for (int s : {8, 16, 32, 64, 128}) {
    const std::string lv = std::to_string(s);
    std::vector<float> cls_bias(static_cast<size_t>(anchors * nc), -1.0f);
    m.output(m.identity(m.head_conv(s, anchors * nc, 4.0f, cls_bias), "cls" + lv));
    m.output(m.identity(m.head_conv(s, anchors * 4, 0.5f), "box" + lv));
  }
  m.metadata("stride", "128");
  return m.bytes();
}

// The JSON head description of retinanet_model(): deltas boxes, class logits, anchors
// (4s(a+1), 3s) per level.
inline std::string retina_head_json(int nc, int anchors) {
  std::string j =
      R"({"box": "deltas", "scores": "logits", "num_classes": )" + std::to_string(nc) + R"(, "anchors": [)";
  std::string outs;
  for (int s : {8, 16, 32, 64, 128}) {
    j += std::string(s == 8 ? "" : ", ") + "[";
    for (int a = 0; a < anchors; ++a)
      j += std::string(a ? ", " : "") + "[" + std::to_string(4 * s * (a + 1)) + ", " + std::to_string(3 * s) +
           "]";
    j += "]";
    const std::string lv = std::to_string(s);
    outs += std::string(s == 8 ? "" : ", ") + R"({"name": "cls)" + lv +
            R"(", "parts": ["cls"]}, {"name": "box)" + lv + R"(", "parts": ["box"]})";
  }
  return j + "], \"outputs\": [" + outs + "]}";
}

// Reference decode of retinanet_model() at one point (torchvision BoxCoder.decode_single, weights 1,
// anchor centred on the cell corner): cx, cy, w, h and the class sigmoids.
inline std::vector<float> ref_retina(const Tensor& cls, const Tensor& box, int64_t n, int64_t a, int64_t y,
                                     int64_t x, float stride, float aw, float ah, int nc) {
  const int64_t H = cls.dim(2), W = cls.dim(3);
  auto v = [&](const Tensor& t, int64_t c) { return t.data<float>()[((n * t.dim(1) + c) * H + y) * W + x]; };
  const float x1 = static_cast<float>(x) * stride - aw / 2, x2 = static_cast<float>(x) * stride + aw / 2;
  const float y1 = static_cast<float>(y) * stride - ah / 2, y2 = static_cast<float>(y) * stride + ah / 2;
  const float widths = x2 - x1, heights = y2 - y1, ctr_x = x1 + 0.5f * widths, ctr_y = y1 + 0.5f * heights;
  const float clip = std::log(1000.0f / 16);
  const float dx = v(box, a * 4 + 0), dy = v(box, a * 4 + 1);
  const float dw = std::min(v(box, a * 4 + 2), clip), dh = std::min(v(box, a * 4 + 3), clip);
  std::vector<float> r = {dx * widths + ctr_x, dy * heights + ctr_y, std::exp(dw) * widths,
                          std::exp(dh) * heights};
  for (int c = 0; c < nc; ++c) r.push_back(1.0f / (1.0f + std::exp(-v(cls, a * nc + c))));
  return r;
}

// Test image k (300 + 40k by 200 + 30k): a horizontal ramp, a checkerboard of k-dependent cell
// width and a vertical ramp, so every level of a multi-scale head sees varying features.
inline Image multiscale_test_image(int k) {
  Image img(300 + 40 * k, 200 + 30 * k, 0);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      uint8_t* p = img.pixel(x, y);
      p[0] = static_cast<uint8_t>((x * 255) / img.width);
      p[1] = static_cast<uint8_t>(((x / (16 + 8 * k)) + (y / 24)) % 2 ? 220 : 30);
      p[2] = static_cast<uint8_t>((y * 3 + k * 50) & 255);
    }
  return img;
}

// The decoded tensor [N, 4+nc, P] of retinanet_model()'s outputs (cls8, box8, ..., box128), from
// ref_retina at every point; anchors as retina_head_json. Each level's H/W is its output's.
inline Tensor ref_retina_decoded(const std::vector<Tensor>& outs, int nc, int anchors) {
  int64_t P = 0;
  for (size_t l = 0; l < 5; ++l) P += anchors * outs[2 * l].dim(2) * outs[2 * l].dim(3);
  const int64_t N = outs[0].dim(0);
  Tensor d(DataType::kFloat32, {N, 4 + nc, P});
  for (int64_t n = 0; n < N; ++n) {
    int64_t p = 0;
    for (size_t l = 0; l < 5; ++l) {
      const float s = static_cast<float>(8 << l);
      for (int64_t y = 0; y < outs[2 * l].dim(2); ++y)
        for (int64_t x = 0; x < outs[2 * l].dim(3); ++x)
          for (int64_t a = 0; a < anchors; ++a, ++p) {
            auto r = ref_retina(outs[2 * l], outs[2 * l + 1], n, a, y, x, s,
                                4 * s * static_cast<float>(a + 1), 3 * s, nc);
            for (int c = 0; c < 4 + nc; ++c)
              d.data<float>()[(n * (4 + nc) + c) * P + p] = r[static_cast<size_t>(c)];
          }
    }
  }
  return d;
}

// A decoded YOLOv8 head (ultralytics export layout [N, 4+nc, P]) for a static h x w input:
// per level cx, cy = (cell + 0.5) * stride + a small offset, w, h in (0, 4 * stride), sigmoid
// class scores; ultralytics metadata (task, names, stride, imgsz).
// output_step > 0: output0 passes through an int8 QuantizeLinear -> DequantizeLinear with that step
// (as the last QLinearConcat of an ONNX Runtime-quantized YOLOv8 writes it); level_step > 0: so does
// each level before the concat (as ONNX Runtime's QDQ quantizer writes YOLOv5's Detect head).
inline std::string yolov8_decoded_model(int64_t h, int64_t w, int nc, const std::string& task = "detect",
                                        uint32_t seed = 19, float output_step = 0, float level_step = 0) {
  HeadModelBuilder m(h, w, seed);
  std::vector<std::string> levels;
  const int64_t ch = 4 + nc;
  for (int s : {8, 16, 32}) {
    const int64_t gh = h / s, gw = w / s;
    std::string x = m.unary("Sigmoid", m.head_conv(s, ch, 3.0f));
    std::vector<float> scale(static_cast<size_t>(ch), 1.f);
    scale[0] = scale[1] = static_cast<float>(s);  // offset within +-stride/2 of the cell centre
    scale[2] = scale[3] = 4.f * static_cast<float>(s);
    const std::string sc = "scale" + std::to_string(s);
    m.constant(sc, {1, ch, 1, 1}, scale);
    x = m.binary("Mul", x, sc);
    std::vector<float> grid(static_cast<size_t>(ch * gh * gw), 0.f);
    for (int64_t y = 0; y < gh; ++y)
      for (int64_t xx = 0; xx < gw; ++xx) {
        grid[static_cast<size_t>(0 * gh * gw + y * gw + xx)] = static_cast<float>(xx) * s;
        grid[static_cast<size_t>(1 * gh * gw + y * gw + xx)] = static_cast<float>(y) * s;
      }
    const std::string gr = "grid" + std::to_string(s);
    m.constant(gr, {1, ch, gh, gw}, grid);
    std::string level = m.flatten_cells(m.binary("Add", x, gr), ch);
    if (level_step > 0) level = m.qdq(level, level_step, "level" + std::to_string(s));
    levels.push_back(level);
  }
  if (output_step > 0)
    m.output(m.qdq(m.concat(levels, 2), output_step, "output0"));
  else
    m.output(m.concat(levels, 2, "output0"));
  std::string names = "{";
  for (int c = 0; c < nc; ++c)
    names += (c ? ", " : "") + std::to_string(c) + ": 'class" + std::to_string(c) + "'";
  m.metadata("names", names + "}");
  m.metadata("task", task);
  m.metadata("stride", "32");
  m.metadata("imgsz", "[" + std::to_string(h) + ", " + std::to_string(w) + "]");
  return m.bytes();
}

}  // namespace qyolo::testing
