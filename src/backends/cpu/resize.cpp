// Resize / Upsample on the CPU.
//  nearest: a gather through per-dim index tables (any dtype), e.g. YOLOv5's 2x upsampling.
//  linear/cubic (float32): separable passes, one per resized dim, with per-dim tap tables
//  (edge-clamped indices, coefficients; exclude_outside renormalises), ping-ponging between two
//  buffers allocated in prepare(). tf_crop_and_resize positions outside the input get
//  extrapolation_value.
#include "ir/ops/resize.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "backends/cpu/cpu_kernel.h"
#include "passes/passes.h"
#include "quant/int8_dataflow.h"

namespace qyolo {

namespace {

struct Taps {
  int64_t n = 1;                 // taps per output index
  std::vector<int64_t> index;    // out * n, clamped
  std::vector<float> coeff;      // out * n
  std::vector<uint8_t> outside;  // out: tf_crop_and_resize extrapolation
  bool identity = false;
};

std::array<double, 4> cubic_coeffs(double r, double a) {
  return {((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a, ((a + 2) * r - (a + 3)) * r * r + 1,
          ((a + 2) * (1 - r) - (a + 3)) * (1 - r) * (1 - r) + 1,
          ((a * ((1 - r) + 1) - 5 * a) * ((1 - r) + 1) + 8 * a) * ((1 - r) + 1) - 4 * a};
}

Taps make_taps(const ResizeAttrs& a, size_t d, int64_t in, int64_t out) {
  Taps t;
  t.n = a.mode == ResizeMode::kNearest ? 1 : a.mode == ResizeMode::kLinear ? 2 : 4;
  t.outside.assign(static_cast<size_t>(out), 0);
  t.identity = in == out;
  for (int64_t o = 0; o < out; ++o) {
    const double c = a.source_coord(d, o, in);
    if (a.coord == ResizeCoordMode::kTfCropAndResize && (c < 0 || c > static_cast<double>(in - 1)))
      t.outside[static_cast<size_t>(o)] = 1;
    if (a.mode == ResizeMode::kNearest) {
      const int64_t i = a.nearest_index(d, c, in);
      t.index.push_back(i);
      t.coeff.push_back(1.f);
      t.identity = t.identity && i == o;
      continue;
    }
    // The reference prefers the left neighbour: ratio in (0, 1].
    const double fl = std::floor(c);
    const double base = c == fl ? fl - 1 : fl;
    const double r = c - base;
    double w[4];
    int64_t first;
    if (a.mode == ResizeMode::kLinear) {
      w[0] = 1 - r;
      w[1] = r;
      first = static_cast<int64_t>(base);
    } else {
      auto cc = cubic_coeffs(r, a.cubic_coeff_a);
      for (int k = 0; k < 4; ++k) w[k] = cc[static_cast<size_t>(k)];
      first = static_cast<int64_t>(base) - 1;
    }
    if (a.exclude_outside) {
      double sum = 0;
      for (int64_t k = 0; k < t.n; ++k) {
        if (first + k < 0 || first + k >= in) w[k] = 0;
        sum += w[k];
      }
      if (sum != 0)
        for (int64_t k = 0; k < t.n; ++k) w[k] /= sum;
    }
    for (int64_t k = 0; k < t.n; ++k) {
      const int64_t i = std::min(std::max<int64_t>(first + k, 0), in - 1);
      t.index.push_back(i);
      t.coeff.push_back(static_cast<float>(w[k]));
      if (w[k] != 0 && (i != o || w[k] != 1.0)) t.identity = false;
    }
  }
  for (uint8_t f : t.outside)
    if (f) t.identity = false;
  return t;
}

template <typename T>
void nearest_gather(const std::vector<Taps>& taps, const Shape& in, const Shape& out, const T* x, T* y) {
  const size_t r = in.size();
  std::vector<int64_t> in_strides(r, 1);
  for (size_t d = r; d-- > 1;) in_strides[d - 1] = in_strides[d] * in[d];
  const int64_t inner = out[r - 1];
  const int64_t* last = taps[r - 1].index.data();
  // The innermost dim not resized (channels-last: the channels): rows are plain copies.
  bool last_identity = in[r - 1] == inner;
  for (int64_t j = 0; j < inner && last_identity; ++j) last_identity = last[j] == j;
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < r; ++d) rows *= out[d];
#pragma omp parallel for schedule(static) if (rows * inner > (1 << 15))
  for (int64_t row = 0; row < rows; ++row) {
    int64_t off = 0, rem = row;
    for (size_t d = r - 1; d-- > 0;) {
      off += taps[d].index[static_cast<size_t>(rem % out[d])] * in_strides[d];
      rem /= out[d];
    }
    const T* s = x + off;
    T* o = y + row * inner;
    if (last_identity)
      std::memcpy(o, s, static_cast<size_t>(inner) * sizeof(T));
    else
      for (int64_t j = 0; j < inner; ++j) o[j] = s[last[j]];
  }
}

// One separable pass along a dim: x [outer, in, inner] -> y [outer, out, inner].
void interp_pass(const Taps& t, int64_t outer, int64_t in, int64_t out, int64_t inner, const float* x,
                 float* y) {
  const int64_t n = t.n;
#pragma omp parallel for schedule(static) if (outer * out * inner > (1 << 14))
  for (int64_t l = 0; l < outer * out; ++l) {
    const int64_t o = l / out, j = l % out;
    const int64_t* idx = t.index.data() + j * n;
    const float* c = t.coeff.data() + j * n;
    float* ys = y + l * inner;
    const float* xs = x + o * in * inner;
    if (inner == 1) {
      float s = 0.f;
      for (int64_t k = 0; k < n; ++k) s += c[k] * xs[idx[k]];
      ys[0] = s;
      continue;
    }
    for (int64_t i = 0; i < inner; ++i) ys[i] = 0.f;
    for (int64_t k = 0; k < n; ++k) {
      if (c[k] == 0.f) continue;
      const float* row = xs + idx[k] * inner;
      const float ck = c[k];
      for (int64_t i = 0; i < inner; ++i) ys[i] += ck * row[i];
    }
  }
}

class CpuResize final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    const bool legacy = node.op_type == "Upsample" || node.inputs.size() == 2;
    auto floats = [&](size_t i) -> Result<std::optional<std::vector<float>>> {
      if (i >= inputs.size() || inputs[i] == nullptr) return std::optional<std::vector<float>>();
      if (!inputs[i]->value)
        return unsupported(node.describe() + ": input " + std::to_string(i) + " must be a constant");
      if (inputs[i]->value->numel() == 0) return std::optional<std::vector<float>>();
      return std::optional<std::vector<float>>(inputs[i]->value->to_float_vector());
    };
    std::optional<std::vector<float>> roi, scales;
    std::optional<std::vector<int64_t>> sizes;
    if (legacy) {
      QYOLO_ASSIGN_OR_RETURN(scales, floats(1));
    } else {
      QYOLO_ASSIGN_OR_RETURN(roi, floats(1));
      QYOLO_ASSIGN_OR_RETURN(scales, floats(2));
      if (inputs.size() > 3 && inputs[3] != nullptr) {
        if (!inputs[3]->value) return unsupported(node.describe() + ": sizes must be a constant");
        if (inputs[3]->value->numel() > 0) sizes = inputs[3]->value->to_int64_vector();
      }
    }
    in_shape_ = inputs[0]->shape;
    QYOLO_ASSIGN_OR_RETURN(attrs_, ResizeAttrs::parse(node, in_shape_, roi, scales, sizes));
    out_shape_ = attrs_.out_shape;
    dtype_ = inputs[0]->dtype;
    empty_ = shape_numel(out_shape_) == 0 || shape_numel(in_shape_) == 0;
    if (empty_) return Status::ok();
    if (in_shape_.empty()) return unsupported(node.describe() + ": scalar input");
    for (size_t d = 0; d < in_shape_.size(); ++d) {
      taps_.push_back(make_taps(attrs_, d, in_shape_[d], out_shape_[d]));
      if (taps_.back().outside.end() !=
          std::find(taps_.back().outside.begin(), taps_.back().outside.end(), 1))
        any_outside_ = true;
    }
    if (node.has_attr(kInt8OutputScaleAttr) || node.has_attr(kChannelsLastOutputAttr)) {
      // Int8 plan (src/quant/int8_dataflow.h) or channels-last float plan (passes.h): the bytes
      // are NHWC; gather in that order.
      if (attrs_.mode != ResizeMode::kNearest || any_outside_ || in_shape_.size() != 4 ||
          (dtype_ != DataType::kInt8 && dtype_ != DataType::kFloat32))
        return internal_error(node.describe() +
                              ": a channels-last Resize must be nearest, int8 or float, rank 4");
      const size_t nhwc[4] = {0, 2, 3, 1};
      Shape in(4), out(4);
      std::vector<Taps> taps(4);
      for (size_t d = 0; d < 4; ++d) {
        in[d] = in_shape_[nhwc[d]];
        out[d] = out_shape_[nhwc[d]];
        taps[d] = taps_[nhwc[d]];
      }
      in_shape_ = in;
      out_shape_ = out;
      taps_ = std::move(taps);
    }
    if (attrs_.mode != ResizeMode::kNearest) {
      // Buffer sizes of the passes (dims processed last to first).
      Shape cur = in_shape_;
      int64_t biggest = 0;
      for (size_t d = cur.size(); d-- > 0;) {
        if (taps_[d].identity) continue;
        cur[d] = out_shape_[d];
        biggest = std::max(biggest, shape_numel(cur));
      }
      buf_[0].resize(static_cast<size_t>(biggest));
      buf_[1].resize(static_cast<size_t>(biggest));
    }
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    if (empty_) return Status::ok();
    if (attrs_.mode == ResizeMode::kNearest) {
      switch (dtype_size(dtype_)) {
        case 1:
          nearest_gather(taps_, in_shape_, out_shape_, inputs[0]->data<uint8_t>(),
                         outputs[0]->data<uint8_t>());
          break;
        case 2:
          nearest_gather(taps_, in_shape_, out_shape_, inputs[0]->data<uint16_t>(),
                         outputs[0]->data<uint16_t>());
          break;
        case 4:
          nearest_gather(taps_, in_shape_, out_shape_, inputs[0]->data<uint32_t>(),
                         outputs[0]->data<uint32_t>());
          break;
        case 8:
          nearest_gather(taps_, in_shape_, out_shape_, inputs[0]->data<uint64_t>(),
                         outputs[0]->data<uint64_t>());
          break;
        default:
          return internal_error("Resize: unexpected element size");
      }
    } else {
      Shape cur = in_shape_;
      const float* src = inputs[0]->data<float>();
      int which = 0;
      bool any_pass = false;
      for (size_t d = cur.size(); d-- > 0;) {
        if (taps_[d].identity) continue;
        int64_t outer = 1, inner = 1;
        for (size_t i = 0; i < d; ++i) outer *= cur[i];
        for (size_t i = d + 1; i < cur.size(); ++i) inner *= cur[i];
        float* dst = buf_[which].data();
        interp_pass(taps_[d], outer, cur[d], out_shape_[d], inner, src, dst);
        cur[d] = out_shape_[d];
        src = dst;
        which ^= 1;
        any_pass = true;
      }
      if (!any_pass) src = inputs[0]->data<float>();
      std::memcpy(outputs[0]->raw(), src, outputs[0]->nbytes());
    }
    if (any_outside_) fill_outside(outputs[0]);
    return Status::ok();
  }

 private:
  void fill_outside(Tensor* y) {
    const size_t r = out_shape_.size();
    const int64_t total = shape_numel(out_shape_);
    const size_t es = dtype_size(dtype_);
    auto* p = static_cast<std::byte*>(y->raw());
    // Extrapolation value in the output dtype (linear/cubic are float32; nearest may be any).
    float fv = attrs_.extrapolation_value;
    for (int64_t e = 0; e < total; ++e) {
      int64_t rem = e;
      bool out = false;
      for (size_t d = r; d-- > 0;) {
        out = out || taps_[d].outside[static_cast<size_t>(rem % out_shape_[d])];
        rem /= out_shape_[d];
      }
      if (!out) continue;
      if (dtype_ == DataType::kFloat32) {
        std::memcpy(p + static_cast<size_t>(e) * es, &fv, es);
      } else {
        std::memset(p + static_cast<size_t>(e) * es, 0, es);
      }
    }
  }

  ResizeAttrs attrs_;
  Shape in_shape_, out_shape_;
  DataType dtype_ = DataType::kFloat32;
  bool empty_ = false, any_outside_ = false;
  std::vector<Taps> taps_;
  std::vector<float> buf_[2];
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_resize(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuResize>());
}

}  // namespace qyolo
