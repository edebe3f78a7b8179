// A synthetic YOLO11 detector with the graph of an ultralytics 8.3 `yolo export format=onnx` of
// yolo11n.pt (static batch 1, BatchNorm folded into the convs, no onnxslim), seeded random weights.
// Written from ultralytics/cfg/models/11/yolo11.yaml and nn/modules/{conv,block,head}.py:
//   Conv = Conv2d + SiLU exported as Sigmoid * Mul;  C3k2 (C2f.forward_split: cv1, Split, Bottleneck
//   or C3k inner blocks with residual Adds, Concat, cv2);  SPPF (three MaxPool 5x5, Concat);
//   C2PSA with the PSA Attention (qkv 1x1 conv, Reshape to (B, heads, 2*key_dim + head_dim, N), Split
//   q/k/v, Transpose, MatMul, Mul by key_dim^-0.5, Softmax over the last axis, Transpose, MatMul,
//   Reshape, the depthwise 3x3 `pe` conv on v, Add, `proj` 1x1 conv) and the FFN convs, residual Adds;
//   the neck (Resize nearest x2, Concat);  Detect (cv2 box convs, cv3 DWConv class convs, Reshape to
//   [1, no, -1], Concat, Split box/cls, DFL: Reshape, Transpose, Softmax, 1x1 conv with arange
//   weights, Reshape; dist2bbox with constant anchor points: Split (chunk), Sub, Add, Add, Div, Sub,
//   Concat, Mul by the constant strides; Sigmoid on the classes; Concat) -> output0 [1, 4+nc, A];
//   ultralytics metadata_props (task, stride, imgsz, names, ...).
// The opset changes what torch.onnx writes, as it does for a real export: opset 12 Split takes the
// `split` attribute and the DFL Softmax over axis 1 becomes Transpose / Softmax(last axis) /
// Transpose (torch's opset-9 softmax symbolic); opset 13+ Split takes a sizes input and Softmax
// axis 1 directly; opset 18+ writes the dist2bbox chunk as Split(num_outputs=2).
// Weights: uniform from a fixed LCG sequence, each conv scaled so that its output has a set RMS on
// a test pattern (as a folded BatchNorm keeps a trained net's scales; see conv()), computed here
// by plain loops, independent of qyolo.
// Used by tests/test_yolo11.cpp and tests/gpu/test_cuda_yolo11.cpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "onnx_builder.h"
#include "qyolo/tensor.h"

namespace qyolo::testing {

struct Yolo11Options {
  int opset = 17;
  int64_t imgsz = 256;  // square, a multiple of 32
  int nc = 4;
  double width = 0.25;  // yolo11n: depth 0.50, width 0.25, max_channels 1024
  uint32_t seed = 11;
  // `yolo export dynamic=True`: batch, height and width dynamic; every Reshape target computed from
  // Shape / Gather / Unsqueeze / Concat, and Detect's anchor points and strides in the graph
  // (make_anchors: Range, Add, meshgrid as Reshape + Expand, stack, ConstantOfShape, Transpose).
  bool dynamic = false;
};

class Yolo11Builder {
 public:
  struct T {  // a tensor, its [1, c, h, w] and, while measuring, its values (else empty)
    std::string name;
    int64_t c, h, w;
    std::vector<float> v;
  };

  // Without `scales`, the builder measures: it computes every tensor on a test pattern and sets each
  // conv's weight scale from its actual output (scales() returns them). With them, it writes the
  // same weights scaled by them (the same pseudo-random sequence either way).
  explicit Yolo11Builder(const Yolo11Options& o, const std::map<std::string, float>* scales = nullptr)
      : o_(o), measuring_(scales == nullptr), b_(o.opset), seed_(o.seed) {
    if (scales) scales_ = *scales;
    if (o.opset >= 19) b_.model().set_ir_version(9);
    b_.model().set_producer_name("pytorch");
    b_.model().set_producer_version("2.5.1");
  }

  // ultralytics make_divisible(min(c, max_channels) * width, 8)
  int64_t ch(int64_t c) const {
    const double x = static_cast<double>(std::min<int64_t>(c, 1024)) * o_.width;
    return static_cast<int64_t>(std::ceil(x / 8.0)) * 8;
  }

  std::string build() {
    const int64_t S = o_.imgsz;
    if (o_.dynamic)
      b_.input("images", {-1, 3, -1, -1});
    else
      b_.input("images", {1, 3, S, S});
    T x{"images", 3, S, S, measuring_ ? test_pattern(S) : std::vector<float>{}};
    x = conv(x, ch(64), 3, 2, "/model.0");
    x = conv(x, ch(128), 3, 2, "/model.1");
    x = c3k2(x, ch(256), false, 0.25, "/model.2");
    x = conv(x, ch(256), 3, 2, "/model.3");
    const T p3 = x = c3k2(x, ch(512), false, 0.25, "/model.4");
    x = conv(x, ch(512), 3, 2, "/model.5");
    const T p4 = x = c3k2(x, ch(512), true, 0.5, "/model.6");
    x = conv(x, ch(1024), 3, 2, "/model.7");
    x = c3k2(x, ch(1024), true, 0.5, "/model.8");
    x = sppf(x, ch(1024), "/model.9");
    const T p5 = x = c2psa(x, "/model.10");
    x = concat({upsample(x, "/model.11"), p4}, 1, "/model.12/Concat");
    const T h13 = x = c3k2(x, ch(512), false, 0.5, "/model.13");
    x = concat({upsample(x, "/model.14"), p3}, 1, "/model.15/Concat");
    const T o16 = x = c3k2(x, ch(256), false, 0.5, "/model.16");
    x = concat({conv(x, ch(256), 3, 2, "/model.17"), h13}, 1, "/model.18/Concat");
    const T o19 = x = c3k2(x, ch(512), false, 0.5, "/model.19");
    x = concat({conv(x, ch(512), 3, 2, "/model.20"), p5}, 1, "/model.21/Concat");
    const T o22 = c3k2(x, ch(1024), true, 0.5, "/model.22");
    detect({o16, o19, o22}, "/model.23");
    metadata();
    return b_.bytes();
  }

 private:
  static constexpr double kActStd = 3.0;
  float rnd() {  // uniform in [-1, 1)
    seed_ = seed_ * 1664525u + 1013904223u;
    return static_cast<float>(seed_ >> 8) / static_cast<float>(1u << 23) - 1.0f;
  }
  void attr_int(onnx::NodeProto* n, const std::string& key, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  void attr_str(onnx::NodeProto* n, const std::string& key, const std::string& v) {
    auto* a = n->add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }
  void int64s(const std::string& name, const std::vector<int64_t>& v) { b_.int64_initializer(name, v); }
  // A node named `name` with one output `name`_output_0 (torch.onnx's naming).
  std::string op(const std::string& type, const std::vector<std::string>& in, const std::string& name,
                 onnx::NodeProto** node = nullptr) {
    const std::string out = name + "_output_0";
    auto* n = b_.node(type, in, {out}, name);
    if (node) *node = n;
    return out;
  }

  // Conv2d with the BatchNorm folded in (bias), then SiLU unless act is false. As the folded
  // BatchNorm of a trained net does, the conv's output has a set scale whatever its input's: uniform
  // weights, scaled so that the pre-activation's RMS on the test pattern is `std`; biases within
  // +-0.2. (Fixed fan-in scaling instead drifts ~1.2x per conv; 60 convs deep the head's logits
  // reach the hundreds: one-hot DFL and attention softmaxes, saturated scores.)
  T conv(const T& x, int64_t c2, int64_t k, int64_t s, const std::string& p, bool act = true, int64_t g = 1,
         double std = 0) {
    if (std == 0) std = act ? kActStd : 1.0;
    const std::string base = p + "/conv/Conv";
    const int64_t fan_in = x.c / g * k * k;
    const float unit = std::sqrt(3.0f / static_cast<float>(fan_in));
    std::vector<float> w(static_cast<size_t>(c2 * fan_in)), bias(static_cast<size_t>(c2));
    for (float& v : w) v = unit * rnd();
    for (float& v : bias) v = 0.2f * rnd();
    const int64_t h = (x.h + 2 * (k / 2) - k) / s + 1, w2 = (x.w + 2 * (k / 2) - k) / s + 1;
    T out{"", c2, h, w2, {}};
    const float scale = weight_scale(base, x, w, c2, k, s, g, std, out);
    for (float& v : w) v *= scale;
    b_.initializer(p + ".conv.weight", {c2, x.c / g, k, k}, w);
    b_.initializer(p + ".conv.bias", {c2}, bias);
    onnx::NodeProto* n = nullptr;
    out.name = op("Conv", {x.name, p + ".conv.weight", p + ".conv.bias"}, base, &n);
    OnnxBuilder::attr_ints(n, "dilations", {1, 1});
    attr_int(n, "group", g);
    OnnxBuilder::attr_ints(n, "kernel_shape", {k, k});
    OnnxBuilder::attr_ints(n, "pads", {k / 2, k / 2, k / 2, k / 2});
    OnnxBuilder::attr_ints(n, "strides", {s, s});
    add_bias(out, bias);
    if (act) {
      const std::string sig = op("Sigmoid", {out.name}, p + "/act/Sigmoid");
      out.name = op("Mul", {out.name, sig}, p + "/act/Mul");
      for (float& v : out.v) v = v / (1.0f + std::exp(-v));
    }
    return out;
  }
  // A plain nn.Conv2d 1x1 with bias (Detect's last convs): outputs bias_base + ~N(0, std^2).
  T conv2d(const T& x, int64_t c2, const std::string& p, const std::vector<float>& bias_base, double std) {
    const float unit = std::sqrt(3.0f / static_cast<float>(x.c));
    std::vector<float> w(static_cast<size_t>(c2 * x.c)), bias(static_cast<size_t>(c2));
    for (float& v : w) v = unit * rnd();
    for (size_t i = 0; i < bias.size(); ++i)
      bias[i] = (i < bias_base.size() ? bias_base[i] : 0.f) + 0.2f * rnd();
    T out{"", c2, x.h, x.w, {}};
    const float scale = weight_scale(p + "/Conv", x, w, c2, 1, 1, 1, std, out);
    for (float& v : w) v *= scale;
    b_.initializer(p + ".weight", {c2, x.c, 1, 1}, w);
    b_.initializer(p + ".bias", {c2}, bias);
    onnx::NodeProto* n = nullptr;
    out.name = op("Conv", {x.name, p + ".weight", p + ".bias"}, p + "/Conv", &n);
    OnnxBuilder::attr_ints(n, "dilations", {1, 1});
    attr_int(n, "group", 1);
    OnnxBuilder::attr_ints(n, "kernel_shape", {1, 1});
    OnnxBuilder::attr_ints(n, "pads", {0, 0, 0, 0});
    OnnxBuilder::attr_ints(n, "strides", {1, 1});
    add_bias(out, bias);
    return out;
  }
  // Measuring: computes x * w (no bias) into out.v, then the scale giving it RMS `std`, kept by
  // name, and scales out.v by it. Else the scale kept for `name`.
  float weight_scale(const std::string& name, const T& x, const std::vector<float>& w, int64_t c2, int64_t k,
                     int64_t s, int64_t g, double std, T& out) {
    if (!measuring_) {
      auto it = scales_.find(name);
      return it == scales_.end() ? 1.0f : it->second;
    }
    const int64_t cg = x.c / g, og = c2 / g, pad = k / 2;
    out.v.assign(static_cast<size_t>(c2 * out.h * out.w), 0.f);
    for (int64_t oc = 0; oc < c2; ++oc) {
      float* o = out.v.data() + oc * out.h * out.w;
      for (int64_t ic = 0; ic < cg; ++ic) {
        const float* in = x.v.data() + ((oc / og) * cg + ic) * x.h * x.w;
        for (int64_t ky = 0; ky < k; ++ky)
          for (int64_t kx = 0; kx < k; ++kx) {
            const float wv = w[static_cast<size_t>(((oc * cg + ic) * k + ky) * k + kx)];
            for (int64_t oy = 0; oy < out.h; ++oy) {
              const int64_t iy = oy * s + ky - pad;
              if (iy < 0 || iy >= x.h) continue;
              for (int64_t ox = 0; ox < out.w; ++ox) {
                const int64_t ix = ox * s + kx - pad;
                if (ix >= 0 && ix < x.w) o[oy * out.w + ox] += wv * in[iy * x.w + ix];
              }
            }
          }
      }
    }
    double m2 = 0;
    for (float v : out.v) m2 += static_cast<double>(v) * v;
    m2 /= static_cast<double>(out.v.size());
    const float scale = m2 > 0 ? static_cast<float>(std / std::sqrt(m2)) : 1.0f;
    for (float& v : out.v) v *= scale;
    scales_[name] = scale;
    return scale;
  }
  static void add_bias(T& t, const std::vector<float>& bias) {
    if (t.v.empty()) return;
    const int64_t hw = t.h * t.w;
    for (int64_t c = 0; c < t.c; ++c)
      for (int64_t i = 0; i < hw; ++i) t.v[static_cast<size_t>(c * hw + i)] += bias[static_cast<size_t>(c)];
  }
  // The letterboxed test image the scales are measured on: ramps and a checkerboard, grey bands.
  static std::vector<float> test_pattern(int64_t S) {
    std::vector<float> v(static_cast<size_t>(3 * S * S));
    for (int64_t y = 0; y < S; ++y)
      for (int64_t x = 0; x < S; ++x) {
        const bool band = y < S / 6 || y >= S - S / 6;
        const float f[3] = {static_cast<float>(x) / static_cast<float>(S),
                            ((x / 12) + (y / 20)) % 2 ? 0.86f : 0.12f,
                            static_cast<float>((y * 3) % S) / static_cast<float>(S)};
        for (int c = 0; c < 3; ++c) v[static_cast<size_t>((c * S + y) * S + x)] = band ? 114.f / 255 : f[c];
      }
    return v;
  }
  static std::vector<float> channels(const T& t, int64_t c0, int64_t n) {
    if (t.v.empty()) return {};
    const auto hw = t.h * t.w;
    return std::vector<float>(t.v.begin() + c0 * hw, t.v.begin() + (c0 + n) * hw);
  }
  T add(const T& a, const T& b, const std::string& name) {
    T out{op("Add", {a.name, b.name}, name), a.c, a.h, a.w, a.v};
    for (size_t i = 0; i < out.v.size(); ++i) out.v[i] += b.v[i];
    return out;
  }
  T concat(const std::vector<T>& xs, int64_t axis, const std::string& name) {
    std::vector<std::string> in;
    int64_t c = 0;
    std::vector<float> v;
    for (const T& t : xs) in.push_back(t.name), c += t.c, v.insert(v.end(), t.v.begin(), t.v.end());
    onnx::NodeProto* n = nullptr;
    const std::string y = op("Concat", in, name, &n);
    attr_int(n, "axis", axis);
    if (axis != 1) return {y, xs[0].c, xs[0].h, xs[0].w, {}};
    return {y, c, xs[0].h, xs[0].w, std::move(v)};
  }
  // Split along `axis` into `sizes`; `chunk`: written as torch writes tensor.chunk (opset 18+:
  // num_outputs, equal parts).
  std::vector<std::string> split(const std::string& x, int64_t axis, const std::vector<int64_t>& sizes,
                                 const std::string& name, bool chunk = false) {
    std::vector<std::string> outs;
    for (size_t i = 0; i < sizes.size(); ++i) outs.push_back(name + "_output_" + std::to_string(i));
    std::vector<std::string> in = {x};
    const bool num_outputs = chunk && o_.opset >= 18;
    if (o_.opset >= 13 && !num_outputs) {
      int64s(name + "_split", sizes);
      in.push_back(name + "_split");
    }
    auto* n = b_.node("Split", in, outs, name);
    attr_int(n, "axis", axis);
    if (o_.opset < 13) OnnxBuilder::attr_ints(n, "split", sizes);
    if (num_outputs) attr_int(n, "num_outputs", static_cast<int64_t>(sizes.size()));
    return outs;
  }
  std::string reshape(const std::string& x, const std::vector<int64_t>& shape, const std::string& name) {
    int64s(name + "_shape", shape);
    return op("Reshape", {x, name + "_shape"}, name);
  }
  // A Reshape whose target is computed in the graph, as torch.onnx traces x.view(a, b, ...) with
  // dynamic axes: each part is a constant or a scalar int64 tensor (Unsqueeze'd), then Concat.
  struct Dim {
    int64_t value = 0;
    std::string tensor;  // a 0-d int64 tensor, else the constant value
  };
  std::string reshape_dyn(const std::string& x, const std::vector<Dim>& dims, const std::string& name) {
    std::vector<std::string> parts;
    for (size_t i = 0; i < dims.size(); ++i) {
      const std::string pn = name + "/part" + std::to_string(i);
      if (dims[i].tensor.empty()) {
        int64s(pn, {dims[i].value});
        parts.push_back(pn);
      } else {
        parts.push_back(unsqueeze(dims[i].tensor, 0, pn));
      }
    }
    onnx::NodeProto* n = nullptr;
    const std::string shape = op("Concat", parts, name + "/Concat", &n);
    attr_int(n, "axis", 0);
    return op("Reshape", {x, shape}, name);
  }
  std::string unsqueeze(const std::string& x, int64_t axis, const std::string& name) {
    onnx::NodeProto* n = nullptr;
    if (o_.opset >= 13) {
      int64s(name + "_axes", {axis});
      return op("Unsqueeze", {x, name + "_axes"}, name);
    }
    const std::string y = op("Unsqueeze", {x}, name, &n);
    OnnxBuilder::attr_ints(n, "axes", {axis});
    return y;
  }
  // x.shape[i] as a 0-d int64 tensor: Shape, Gather with a scalar index.
  std::string dim_of(const std::string& x, int64_t i, const std::string& name) {
    const std::string shape = op("Shape", {x}, name + "/Shape");
    auto* t = b_.model().mutable_graph()->add_initializer();
    t->set_name(name + "/index");
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_int64_data(i);
    onnx::NodeProto* n = nullptr;
    const std::string y = op("Gather", {shape, t->name()}, name + "/Gather", &n);
    attr_int(n, "axis", 0);
    return y;
  }
  void scalar(const std::string& name, float v) {
    auto* t = b_.model().mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_float_data(v);
  }
  std::string transpose(const std::string& x, const std::vector<int64_t>& perm, const std::string& name) {
    onnx::NodeProto* n = nullptr;
    const std::string y = op("Transpose", {x}, name, &n);
    OnnxBuilder::attr_ints(n, "perm", perm);
    return y;
  }
  // torch.softmax(x, dim) as torch.onnx writes it: opset 13+ one Softmax; before, Softmax had
  // flatten-to-2D semantics, so a dim that is not the last is swapped with the last around it.
  std::string softmax(const std::string& x, int64_t rank, int64_t dim, const std::string& name) {
    if (o_.opset >= 13 || dim == rank - 1 || dim == -1) {
      onnx::NodeProto* n = nullptr;
      const std::string y = op("Softmax", {x}, name, &n);
      attr_int(n, "axis", o_.opset >= 13 ? dim : (dim < 0 ? rank + dim : dim));
      return y;
    }
    std::vector<int64_t> perm(static_cast<size_t>(rank));
    for (int64_t i = 0; i < rank; ++i) perm[static_cast<size_t>(i)] = i;
    std::swap(perm[static_cast<size_t>(dim)], perm.back());
    const std::string t = transpose(x, perm, name + "/Transpose");
    onnx::NodeProto* n = nullptr;
    const std::string s = op("Softmax", {t}, name, &n);
    attr_int(n, "axis", rank - 1);
    return transpose(s, perm, name + "/Transpose_1");
  }

  // ultralytics Bottleneck(c1, c2, shortcut, k=(k1, k2), e): x + cv2(cv1(x)) when c1 == c2.
  T bottleneck(const T& x, int64_t c2, int64_t k1, int64_t k2, double e, const std::string& p) {
    const T y = conv(conv(x, static_cast<int64_t>(static_cast<double>(c2) * e), k1, 1, p + "/cv1"), c2, k2, 1,
                     p + "/cv2");
    return x.c == c2 ? add(x, y, p + "/Add") : y;
  }
  // C3k(c, c, n=2, shortcut): cv3(cat(m(cv1(x)), cv2(x))), m: two 3x3/3x3 Bottlenecks (e=1).
  T c3k(const T& x, int64_t c2, const std::string& p) {
    const int64_t c_ = c2 / 2;
    T m = conv(x, c_, 1, 1, p + "/cv1");
    for (int i = 0; i < 2; ++i) m = bottleneck(m, c_, 3, 3, 1.0, p + "/m/m." + std::to_string(i));
    const T b = conv(x, c_, 1, 1, p + "/cv2");
    return conv(concat({m, b}, 1, p + "/Concat"), c2, 1, 1, p + "/cv3");
  }
  // C3k2(c1, c2, n=1, c3k, e): C2f.forward_split with a C3k or a Bottleneck(k=(3,3), e=0.5) block.
  T c3k2(const T& x, int64_t c2, bool use_c3k, double e, const std::string& p) {
    const int64_t c = static_cast<int64_t>(static_cast<double>(c2) * e);
    const T y = conv(x, 2 * c, 1, 1, p + "/cv1");
    const auto parts = split(y.name, 1, {c, c}, p + "/Split");
    const T a{parts[0], c, y.h, y.w, channels(y, 0, c)}, b{parts[1], c, y.h, y.w, channels(y, c, c)};
    const T m = use_c3k ? c3k(b, c, p + "/m.0") : bottleneck(b, c, 3, 3, 0.5, p + "/m.0");
    return conv(concat({a, b, m}, 1, p + "/Concat"), c2, 1, 1, p + "/cv2");
  }
  T sppf(const T& x, int64_t c2, const std::string& p) {
    const T y = conv(x, x.c / 2, 1, 1, p + "/cv1");
    std::vector<T> ys = {y};
    for (int i = 0; i < 3; ++i) {
      onnx::NodeProto* n = nullptr;
      const std::string name = p + "/m/MaxPool" + (i ? "_" + std::to_string(i) : "");
      const std::string out = op("MaxPool", {ys.back().name}, name, &n);
      attr_int(n, "ceil_mode", 0);
      OnnxBuilder::attr_ints(n, "dilations", {1, 1});
      OnnxBuilder::attr_ints(n, "kernel_shape", {5, 5});
      OnnxBuilder::attr_ints(n, "pads", {2, 2, 2, 2});
      OnnxBuilder::attr_ints(n, "strides", {1, 1});
      ys.push_back({out, y.c, y.h, y.w, max_pool5(ys.back())});
    }
    return conv(concat(ys, 1, p + "/Concat"), c2, 1, 1, p + "/cv2");
  }
  // Attention(dim, num_heads, attn_ratio=0.5).forward as traced at a static shape.
  T attention(const T& x, int64_t heads, const std::string& p) {
    const int64_t head_dim = x.c / heads, key_dim = head_dim / 2, N = x.h * x.w;
    // q and k of RMS 3: the scaled scores spread over a few units, the softmax favours some keys
    const T qkv = conv(x, x.c + 2 * key_dim * heads, 1, 1, p + "/qkv", false, 1, 3.0);
    // B, C, H, W = x.shape; N = H * W (traced as Shape / Gather / Mul with dynamic axes)
    std::string B, H, W, NN;
    if (o_.dynamic) {
      B = dim_of(x.name, 0, p + "/B"), H = dim_of(x.name, 2, p + "/H"), W = dim_of(x.name, 3, p + "/W");
      NN = op("Mul", {H, W}, p + "/Mul_N");
    }
    const std::string r =
        o_.dynamic ? reshape_dyn(qkv.name, {{0, B}, {heads, ""}, {2 * key_dim + head_dim, ""}, {0, NN}},
                                 p + "/Reshape")
                   : reshape(qkv.name, {1, heads, 2 * key_dim + head_dim, N}, p + "/Reshape");
    const auto qkv3 = split(r, 2, {key_dim, key_dim, head_dim}, p + "/Split");
    const std::string qt = transpose(qkv3[0], {0, 1, 3, 2}, p + "/Transpose");
    const std::string s = op("MatMul", {qt, qkv3[1]}, p + "/MatMul");
    auto* scale = b_.model().mutable_graph()->add_initializer();
    scale->set_name(p + "/Constant_output_0");
    scale->set_data_type(onnx::TensorProto::FLOAT);
    scale->add_float_data(1.0f / std::sqrt(static_cast<float>(key_dim)));
    const std::string scaled = op("Mul", {s, scale->name()}, p + "/Mul");
    const std::string attn = softmax(scaled, 4, -1, p + "/Softmax");
    const std::string at = transpose(attn, {0, 1, 3, 2}, p + "/Transpose_1");
    const std::string ctx = op("MatMul", {qkv3[2], at}, p + "/MatMul_1");
    auto bchw = [&](const std::string& t, const std::string& name) {
      return o_.dynamic ? reshape_dyn(t, {{0, B}, {x.c, ""}, {0, H}, {0, W}}, name)
                        : reshape(t, {1, x.c, x.h, x.w}, name);
    };
    T ctx4{bchw(ctx, p + "/Reshape_1"), x.c, x.h, x.w, {}};
    T v4{bchw(qkv3[2], p + "/Reshape_2"), x.c, x.h, x.w, {}};
    if (!qkv.v.empty()) attend(qkv, heads, key_dim, head_dim, ctx4.v, v4.v);
    const T pe = conv(v4, x.c, 3, 1, p + "/pe", false, x.c);
    return conv(add(ctx4, pe, p + "/Add"), x.c, 1, 1, p + "/proj", false);
  }
  // C2PSA(c1, c1, n=1, e=0.5): cv2(cat(a, PSABlock(b))), PSABlock with num_heads = c // 64.
  T c2psa(const T& x, const std::string& p) {
    const int64_t c = x.c / 2;
    const T y = conv(x, 2 * c, 1, 1, p + "/cv1");
    const auto parts = split(y.name, 1, {c, c}, p + "/Split");
    const T a{parts[0], c, y.h, y.w, channels(y, 0, c)};
    T b{parts[1], c, y.h, y.w, channels(y, c, c)};
    const std::string m = p + "/m/m.0";
    b = add(b, attention(b, std::max<int64_t>(1, c / 64), m + "/attn"), m + "/Add");
    const T f = conv(conv(b, 2 * c, 1, 1, m + "/ffn/ffn.0"), c, 1, 1, m + "/ffn/ffn.1", false);
    b = add(b, f, m + "/Add_1");
    return conv(concat({a, b}, 1, p + "/Concat"), x.c, 1, 1, p + "/cv2");
  }
  T upsample(const T& x, const std::string& p) {
    const std::string name = p + "/Resize";
    auto* sc = b_.model().mutable_graph()->add_initializer();
    sc->set_name(name + "_scales");
    sc->set_data_type(onnx::TensorProto::FLOAT);
    sc->add_dims(4);
    for (float v : {1.f, 1.f, 2.f, 2.f}) sc->add_float_data(v);
    std::string roi;  // opset 13+: no roi (an empty input name); 11-12: an empty tensor
    if (o_.opset < 13) {
      roi = name + "_roi";
      auto* t = b_.model().mutable_graph()->add_initializer();
      t->set_name(roi);
      t->set_data_type(onnx::TensorProto::FLOAT);
      t->add_dims(0);
    }
    onnx::NodeProto* n = nullptr;
    const std::string y = op("Resize", {x.name, roi, sc->name()}, name, &n);
    attr_str(n, "coordinate_transformation_mode", "asymmetric");
    attr_str(n, "mode", "nearest");
    attr_str(n, "nearest_mode", "floor");
    std::vector<float> v;
    if (!x.v.empty()) {
      v.resize(static_cast<size_t>(x.c * 4 * x.h * x.w));
      for (int64_t c = 0; c < x.c; ++c)
        for (int64_t yy = 0; yy < 2 * x.h; ++yy)
          for (int64_t xx = 0; xx < 2 * x.w; ++xx)
            v[static_cast<size_t>((c * 2 * x.h + yy) * 2 * x.w + xx)] =
                x.v[static_cast<size_t>((c * x.h + yy / 2) * x.w + xx / 2)];
    }
    return {y, x.c, 2 * x.h, 2 * x.w, std::move(v)};
  }

  void detect(const std::vector<T>& xs, const std::string& p) {
    const int nc = o_.nc, reg_max = 16;
    const int64_t no = nc + 4 * reg_max;
    const int64_t c2 = std::max<int64_t>({16, xs[0].c / 4, 4 * reg_max});
    const int64_t c3 = std::max<int64_t>(xs[0].c, std::min(nc, 100));
    std::vector<std::string> flat;
    int64_t A = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const std::string li = std::to_string(i);
      const std::string b2 = p + "/cv2." + li + "/cv2." + li, b3 = p + "/cv3." + li + "/cv3." + li;
      // Box bins: mildly favouring short distances, as trained heads on small objects do.
      std::vector<float> box_bias(static_cast<size_t>(4 * reg_max));
      for (size_t j = 0; j < box_bias.size(); ++j) box_bias[j] = -0.25f * static_cast<float>(j % reg_max);
      T box = conv(conv(xs[i], c2, 3, 1, b2 + ".0"), c2, 3, 1, b2 + ".1");
      box = conv2d(box, 4 * reg_max, b2 + ".2", box_bias, 1.5);
      // cv3: (DWConv(x, x, 3), Conv(x, c3, 1)), (DWConv(c3, c3, 3), Conv(c3, c3, 1)), Conv2d(c3, nc, 1)
      const std::string q = "/cv3." + li + ".";
      T cls = conv(xs[i], xs[i].c, 3, 1, b3 + ".0" + q + "0.0", true, xs[i].c);
      cls = conv(cls, c3, 1, 1, b3 + ".0" + q + "0.1");
      cls = conv(cls, c3, 3, 1, b3 + ".1" + q + "1.0", true, c3);
      cls = conv(cls, c3, 1, 1, b3 + ".1" + q + "1.1");
      // Class logits N(-4, 1.5^2): a few percent of the points score above 0.25.
      cls = conv2d(cls, nc, b3 + ".2", std::vector<float>(static_cast<size_t>(nc), -4.0f), 1.5);
      const T cat = concat({box, cls}, 1, p + (i ? "/Concat_" + li : "/Concat"));
      const std::string rn = p + (i ? "/Reshape_" + li : "/Reshape");
      flat.push_back(
          o_.dynamic ? reshape_dyn(cat.name, {{0, dim_of(xs[0].name, 0, rn + "/B")}, {no, ""}, {-1, ""}}, rn)
                     : reshape(cat.name, {1, no, -1}, rn));
      A += cat.h * cat.w;
    }
    const T x_cat = concat({{flat[0], no, 1, 1, {}}, {flat[1], no, 1, 1, {}}, {flat[2], no, 1, 1, {}}}, 2,
                           p + "/Concat_3");
    const auto bc = split(x_cat.name, 1, {4 * reg_max, nc}, p + "/Split");
    // DFL: conv(x.view(b, 4, 16, a).transpose(2, 1).softmax(1)).view(b, 4, a)
    const std::string d = p + "/dfl";
    // b, _, a = x.shape
    const std::string Bd = o_.dynamic ? dim_of(bc[0], 0, d + "/b") : "";
    const std::string Ad = o_.dynamic ? dim_of(bc[0], 2, d + "/a") : "";
    std::string v = o_.dynamic
                        ? reshape_dyn(bc[0], {{0, Bd}, {4, ""}, {reg_max, ""}, {0, Ad}}, d + "/Reshape")
                        : reshape(bc[0], {1, 4, reg_max, A}, d + "/Reshape");
    v = transpose(v, {0, 2, 1, 3}, d + "/Transpose");
    v = softmax(v, 4, 1, d + "/Softmax");
    std::vector<float> arange(static_cast<size_t>(reg_max));
    for (int j = 0; j < reg_max; ++j) arange[static_cast<size_t>(j)] = static_cast<float>(j);
    b_.initializer(p + ".dfl.conv.weight", {1, reg_max, 1, 1}, arange);
    onnx::NodeProto* n = nullptr;
    v = op("Conv", {v, p + ".dfl.conv.weight"}, d + "/conv/Conv", &n);
    OnnxBuilder::attr_ints(n, "dilations", {1, 1});
    attr_int(n, "group", 1);
    OnnxBuilder::attr_ints(n, "kernel_shape", {1, 1});
    OnnxBuilder::attr_ints(n, "pads", {0, 0, 0, 0});
    OnnxBuilder::attr_ints(n, "strides", {1, 1});
    v = o_.dynamic ? reshape_dyn(v, {{0, Bd}, {4, ""}, {0, Ad}}, d + "/Reshape_1")
                   : reshape(v, {1, 4, A}, d + "/Reshape_1");
    // dist2bbox(dfl(box), anchors.unsqueeze(0), xywh=True, dim=1) * strides; make_anchors(offset 0.5).
    std::vector<float> anchors(static_cast<size_t>(2 * A)), strides(static_cast<size_t>(A));
    int64_t k = 0;
    for (const T& t : xs) {
      const float s = static_cast<float>(o_.imgsz / t.h);
      for (int64_t y = 0; y < t.h; ++y)
        for (int64_t x = 0; x < t.w; ++x, ++k) {
          anchors[static_cast<size_t>(k)] = static_cast<float>(x) + 0.5f;
          anchors[static_cast<size_t>(A + k)] = static_cast<float>(y) + 0.5f;
          strides[static_cast<size_t>(k)] = s;
        }
    }
    if (o_.dynamic)
      make_anchors(xs, p);
    else
      b_.initializer(p + "/Constant_output_0", {1, 2, A}, anchors);
    if (!o_.dynamic) b_.initializer(p + "/Constant_1_output_0", {1, A}, strides);
    b_.initializer(p + "/Constant_2_output_0", {}, {2.0f});
    const auto lr = split(v, 1, {2, 2}, p + "/Split_1", /*chunk=*/true);
    const std::string x1y1 = op("Sub", {p + "/Constant_output_0", lr[0]}, p + "/Sub");
    const std::string x2y2 = op("Add", {p + "/Constant_output_0", lr[1]}, p + "/Add");
    const std::string sum = op("Add", {x1y1, x2y2}, p + "/Add_1");
    const std::string cxy = op("Div", {sum, p + "/Constant_2_output_0"}, p + "/Div");
    const std::string wh = op("Sub", {x2y2, x1y1}, p + "/Sub_1");
    const T box = concat({{cxy, 2, 1, A, {}}, {wh, 2, 1, A, {}}}, 1, p + "/Concat_4");
    const std::string dbox = op("Mul", {box.name, p + "/Constant_1_output_0"}, p + "/Mul");
    const std::string sig = op("Sigmoid", {bc[1]}, p + "/Sigmoid");
    auto* cat = b_.node("Concat", {dbox, sig}, {"output0"}, p + "/Concat_5");
    attr_int(cat, "axis", 1);
    if (o_.dynamic)
      b_.output("output0", {-1, 4 + nc, -1});
    else
      b_.output("output0", {1, 4 + nc, A});
  }

  // ultralytics make_anchors(feats, strides, 0.5) traced with dynamic axes, then
  // anchors.transpose(0, 1).unsqueeze(0) and strides.transpose(0, 1), into the names the static
  // export's constants have.
  void make_anchors(const std::vector<T>& xs, const std::string& p) {
    const std::string m = p + "/anchors";
    scalar(m + "/zero", 0.f);
    scalar(m + "/one", 1.f);
    scalar(m + "/offset", 0.5f);
    std::vector<std::string> points, strides;
    for (size_t i = 0; i < xs.size(); ++i) {
      const std::string l = m + "/l" + std::to_string(i);
      const std::string h = dim_of(xs[i].name, 2, l + "/h"), w = dim_of(xs[i].name, 3, l + "/w");
      auto arange = [&](const std::string& end, const std::string& name) {  // arange(end) + 0.5
        onnx::NodeProto* n = nullptr;
        const std::string e = op("Cast", {end}, name + "/Cast", &n);
        attr_int(n, "to", onnx::TensorProto::FLOAT);
        const std::string r = op("Range", {m + "/zero", e, m + "/one"}, name + "/Range");
        return op("Add", {r, m + "/offset"}, name + "/Add");
      };
      const std::string sx = arange(w, l + "/sx"), sy = arange(h, l + "/sy");
      // meshgrid(sy, sx, indexing="ij"): sy as a column, sx as a row, both expanded to [h, w]
      const std::string col = reshape(sy, {-1, 1}, l + "/meshgrid/Reshape");
      const std::string row = reshape(sx, {1, -1}, l + "/meshgrid/Reshape_1");
      onnx::NodeProto* n = nullptr;
      const std::string hw =
          op("Concat", {unsqueeze(h, 0, l + "/meshgrid/h"), unsqueeze(w, 0, l + "/meshgrid/w")},
             l + "/meshgrid/Concat", &n);
      attr_int(n, "axis", 0);
      const std::string gy = op("Expand", {col, hw}, l + "/meshgrid/Expand");
      const std::string gx = op("Expand", {row, hw}, l + "/meshgrid/Expand_1");
      // torch.stack((sx, sy), -1).view(-1, 2)
      const std::string st =
          op("Concat", {unsqueeze(gx, 2, l + "/stack/x"), unsqueeze(gy, 2, l + "/stack/y")},
             l + "/stack/Concat", &n);
      attr_int(n, "axis", -1);
      points.push_back(reshape(st, {-1, 2}, l + "/Reshape"));
      // torch.full((h * w, 1), stride)
      const std::string count = op("Mul", {h, w}, l + "/Mul");
      int64s(l + "/full/one", {1});
      const std::string fs =
          op("Concat", {unsqueeze(count, 0, l + "/full/n"), l + "/full/one"}, l + "/full/Concat", &n);
      attr_int(n, "axis", 0);
      const std::string full = op("ConstantOfShape", {fs}, l + "/full/ConstantOfShape", &n);
      auto* a = n->add_attribute();
      a->set_name("value");
      a->set_type(onnx::AttributeProto::TENSOR);
      a->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
      a->mutable_t()->add_dims(1);
      a->mutable_t()->add_float_data(static_cast<float>(o_.imgsz / xs[i].h));
      strides.push_back(full);
    }
    onnx::NodeProto* n = nullptr;
    const std::string ap = op("Concat", points, m + "/Concat", &n);
    attr_int(n, "axis", 0);
    const std::string sp = op("Concat", strides, m + "/Concat_1", &n);
    attr_int(n, "axis", 0);
    const std::string at = transpose(ap, {1, 0}, m + "/Transpose");
    b_.node("Unsqueeze",
            o_.opset >= 13 ? std::vector<std::string>{at, m + "/axes0"} : std::vector<std::string>{at},
            {p + "/Constant_output_0"}, m + "/Unsqueeze");
    if (o_.opset >= 13)
      int64s(m + "/axes0", {0});
    else
      OnnxBuilder::attr_ints(b_.model().mutable_graph()->mutable_node(b_.model().graph().node_size() - 1),
                             "axes", {0});
    b_.node("Transpose", {sp}, {p + "/Constant_1_output_0"}, m + "/Transpose_1");
    OnnxBuilder::attr_ints(b_.model().mutable_graph()->mutable_node(b_.model().graph().node_size() - 1),
                           "perm", {1, 0});
  }

  void metadata() {
    auto meta = [&](const std::string& k, const std::string& v) {
      auto* m = b_.model().add_metadata_props();
      m->set_key(k);
      m->set_value(v);
    };
    std::string names = "{";
    for (int c = 0; c < o_.nc; ++c)
      names += (c ? ", " : "") + std::to_string(c) + ": 'class" + std::to_string(c) + "'";
    const std::string sz = std::to_string(o_.imgsz);
    meta("description", "Ultralytics YOLO11n model (synthetic: seeded random weights)");
    meta("author", "Ultralytics");
    meta("date", "2026-12-07T00:00:00");
    meta("version", "8.3.40");
    meta("license", "AGPL-3.0 License (https://ultralytics.com/license)");
    meta("docs", "https://docs.ultralytics.com");
    meta("stride", "32");
    meta("task", "detect");
    meta("batch", "1");
    meta("imgsz", "[" + sz + ", " + sz + "]");
    meta("names", names + "}");
    meta("args", "{'batch': 1, 'half': False, 'dynamic': " + std::string(o_.dynamic ? "True" : "False") +
                     ", 'simplify': False, 'opset': " + std::to_string(o_.opset) + ", 'nms': False}");
  }

  static std::vector<float> max_pool5(const T& x) {
    if (x.v.empty()) return {};
    std::vector<float> v(x.v.size());
    for (int64_t c = 0; c < x.c; ++c)
      for (int64_t y = 0; y < x.h; ++y)
        for (int64_t xx = 0; xx < x.w; ++xx) {
          float m = -std::numeric_limits<float>::infinity();
          for (int64_t dy = -2; dy <= 2; ++dy)
            for (int64_t dx = -2; dx <= 2; ++dx)
              if (y + dy >= 0 && y + dy < x.h && xx + dx >= 0 && xx + dx < x.w)
                m = std::max(m, x.v[static_cast<size_t>((c * x.h + y + dy) * x.w + xx + dx)]);
          v[static_cast<size_t>((c * x.h + y) * x.w + xx)] = m;
        }
    return v;
  }
  // Attention.forward on qkv [heads * (2 kd + hd), N]: ctx = (v @ softmax(q^T k * kd^-0.5)^T) and v,
  // both as [heads * hd, N].
  static void attend(const T& qkv, int64_t heads, int64_t kd, int64_t hd, std::vector<float>& ctx,
                     std::vector<float>& v) {
    const int64_t N = qkv.h * qkv.w, rows = 2 * kd + hd;
    ctx.assign(static_cast<size_t>(heads * hd * N), 0.f);
    v.resize(ctx.size());
    std::vector<float> attn(static_cast<size_t>(N * N));
    for (int64_t h = 0; h < heads; ++h) {
      auto at = [&](int64_t r, int64_t n) { return qkv.v[static_cast<size_t>((h * rows + r) * N + n)]; };
      for (int64_t i = 0; i < N; ++i) {
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < N; ++j) {
          float sdot = 0;
          for (int64_t d = 0; d < kd; ++d) sdot += at(d, i) * at(kd + d, j);
          attn[static_cast<size_t>(i * N + j)] = sdot / std::sqrt(static_cast<float>(kd));
          mx = std::max(mx, attn[static_cast<size_t>(i * N + j)]);
        }
        float sum = 0;
        for (int64_t j = 0; j < N; ++j)
          sum += attn[static_cast<size_t>(i * N + j)] = std::exp(attn[static_cast<size_t>(i * N + j)] - mx);
        for (int64_t j = 0; j < N; ++j) attn[static_cast<size_t>(i * N + j)] /= sum;
      }
      for (int64_t d = 0; d < hd; ++d)
        for (int64_t i = 0; i < N; ++i) {
          float acc = 0;
          for (int64_t j = 0; j < N; ++j) acc += at(2 * kd + d, j) * attn[static_cast<size_t>(i * N + j)];
          ctx[static_cast<size_t>((h * hd + d) * N + i)] = acc;
          v[static_cast<size_t>((h * hd + d) * N + i)] = at(2 * kd + d, i);
        }
    }
  }

 public:
  const std::map<std::string, float>& scales() const { return scales_; }

 private:
  Yolo11Options o_;
  bool measuring_;
  std::map<std::string, float> scales_;
  OnnxBuilder b_;
  uint32_t seed_;
};

// The model: the weight scales are measured once per (imgsz, nc, width, seed) on the test pattern
// (they do not depend on the opset), then the graph is written with them.
inline std::string yolo11_model(const Yolo11Options& o = {}) {
  static std::mutex mu;
  static std::map<std::string, std::map<std::string, float>> cache;
  const std::string key = std::to_string(o.imgsz) + "/" + std::to_string(o.nc) + "/" +
                          std::to_string(o.width) + "/" + std::to_string(o.seed);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it == cache.end()) {
    Yolo11Builder measure(o);
    measure.build();
    it = cache.emplace(key, measure.scales()).first;
  }
  return Yolo11Builder(o, &it->second).build();
}

// Rows [r0, r1) of a [1, C, A] output (YOLOv8/11: rows 0-3 the box, 4.. the class scores).
inline std::vector<float> rows(const Tensor& t, int64_t r0, int64_t r1) {
  const float* p = t.data<float>();
  return std::vector<float>(p + r0 * t.dim(2), p + r1 * t.dim(2));
}

// 10 log10(sum ref^2 / sum (got - ref)^2), in dB (300 where they are equal).
inline double snr_db(const std::vector<float>& got, const std::vector<float>& ref) {
  double s = 0, n = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    s += static_cast<double>(ref[i]) * ref[i];
    n += (static_cast<double>(got[i]) - ref[i]) * (static_cast<double>(got[i]) - ref[i]);
  }
  return n == 0 ? 300.0 : 10 * std::log10(s / n);
}

}  // namespace qyolo::testing
