#include "quant/weight_refine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "ir/ops/conv2d.h"
#include "quant/quant_params.h"
#include "runtime/detector.h"
#include "runtime/engine_impl.h"
#include "runtime/image_source.h"

namespace qyolo {

namespace {

float max_abs(std::span<const float> w) {
  float m = 0.f;
  for (float v : w) m = std::max(m, std::fabs(v));
  return m;
}

// One INT8 conv of the unfused graph (pre-activation output) with a constant bias, and the sums
// that give its local mean shift: its output per channel, and its input per patch element (the
// input at every output position, zero padding included), so that the float conv's mean on the
// same input is W . patch_sum / positions + b (the conv is linear).
struct ConvBias {
  std::string input, output, weight, bias;  // names in the prepared graph
  ConvAttrs attrs;
  Shape x_shape, w_shape;
  std::vector<double> out_sum, patch_sum;
  double positions = 0;
};

// Convs of the unfused INT8 graph that run in INT8 (group 1, 2-D) and have a constant bias.
Result<std::vector<ConvBias>> int8_conv_biases(const SpecializedGraph& sg) {
  std::vector<ConvBias> out;
  for (const Node& n : sg.graph.nodes) {
    if (n.op_type != "Conv" || !n.has_attr("qyolo_input_scale") || !n.has_input(2)) continue;
    if (!sg.graph.initializers.count(n.inputs[2]) || !sg.graph.initializers.count(n.inputs[1])) continue;
    ConvBias c;
    c.input = n.inputs[0];
    c.output = n.outputs[0];
    c.weight = n.inputs[1];
    c.bias = n.inputs[2];
    c.x_shape = sg.values.at(c.input).shape;
    c.w_shape = sg.values.at(c.weight).shape;
    if (c.x_shape.size() != 4 || c.w_shape.size() != 4) continue;
    QYOLO_ASSIGN_OR_RETURN(c.attrs, ConvAttrs::parse(n, c.x_shape, c.w_shape));
    if (c.attrs.group != 1) continue;
    out.push_back(std::move(c));
  }
  return out;
}

void add_patch_sums(ConvBias& c, const Tensor& x) {
  const int64_t cin = c.x_shape[1], ih = c.x_shape[2], iw = c.x_shape[3];
  const int64_t kh = c.w_shape[2], kw = c.w_shape[3];
  const auto& win = c.attrs.window;
  const int64_t oh = c.attrs.out_shape[2], ow = c.attrs.out_shape[3];
  if (c.patch_sum.empty()) c.patch_sum.assign(static_cast<size_t>(cin * kh * kw), 0.0);
  for (int64_t n = 0; n < x.dim(0); ++n) {
    const float* p = x.data<float>() + n * cin * ih * iw;
    for (int64_t ci = 0; ci < cin; ++ci)
      for (int64_t ky = 0; ky < kh; ++ky)
        for (int64_t kx = 0; kx < kw; ++kx) {
          double acc = 0;
          for (int64_t y = 0; y < oh; ++y) {
            const int64_t iy = y * win.strides[0] - win.pads_begin[0] + ky * win.dilations[0];
            if (iy < 0 || iy >= ih) continue;
            const float* row = p + (ci * ih + iy) * iw;
            for (int64_t xo = 0; xo < ow; ++xo) {
              const int64_t ix = xo * win.strides[1] - win.pads_begin[1] + kx * win.dilations[1];
              if (ix >= 0 && ix < iw) acc += row[ix];
            }
          }
          c.patch_sum[static_cast<size_t>((ci * kh + ky) * kw + kx)] += acc;
        }
    c.positions += static_cast<double>(oh * ow);
  }
}

void add_output_sums(ConvBias& c, const Tensor& y) {
  const int64_t ch = y.dim(1), plane = y.dim(2) * y.dim(3);
  if (c.out_sum.empty()) c.out_sum.assign(static_cast<size_t>(ch), 0.0);
  for (int64_t n = 0; n < y.dim(0); ++n)
    for (int64_t k = 0; k < ch; ++k) {
      double acc = 0;
      const float* q = y.data<float>() + (n * ch + k) * plane;
      for (int64_t i = 0; i < plane; ++i) acc += q[i];
      c.out_sum[static_cast<size_t>(k)] += acc;
    }
}

// Runs the INT8 `engine` without activation fusion (conv outputs pre-activation) over the images
// and fills each conv's sums.
Status collect_sums(const Engine& engine, std::vector<ConvBias>& convs, const std::vector<std::string>& files,
                    int h, int w) {
  PassOptions passes;
  passes.fuse_epilogues = false;
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, engine.impl().prepare({1, 3, h, w}, passes));
  QYOLO_ASSIGN_OR_RETURN(auto exec, CpuExecutor::build(std::move(sg)));
  std::map<std::string, std::vector<size_t>> readers, writers;
  for (size_t i = 0; i < convs.size(); ++i) {
    convs[i].out_sum.clear();
    convs[i].patch_sum.clear();
    convs[i].positions = 0;
    readers[convs[i].input].push_back(i);
    writers[convs[i].output].push_back(i);
  }
  auto observe = [&](const std::string& name, const Tensor& t) {
    if (t.dtype() != DataType::kFloat32 || t.rank() != 4) return;
    if (auto r = readers.find(name); r != readers.end())
      for (size_t i : r->second) add_patch_sums(convs[i], t);
    if (auto o = writers.find(name); o != writers.end())
      for (size_t i : o->second) add_output_sums(convs[i], t);
  };
  const std::string input_name = engine.info().input_name;
  for (const auto& f : files) {
    QYOLO_ASSIGN_OR_RETURN(Image img, load_image(f));
    Tensor input = Detector::preprocess({&img}, h, w, nullptr);
    observe(input_name, input);  // the first conv reads the network input
    std::map<std::string, Tensor> outputs;
    QYOLO_RETURN_IF_ERROR(exec->run({{input_name, input}}, outputs, observe));
  }
  return Status::ok();
}

}  // namespace

Tensor fake_quantize_weights(const Tensor& w) {
  Tensor out(DataType::kFloat32, w.shape());
  const int64_t cout = w.rank() ? w.dim(0) : 1;
  const int64_t per = cout ? w.numel() / cout : 0;
  for (int64_t c = 0; c < cout; ++c) {
    std::span<const float> src(w.data<float>() + c * per, static_cast<size_t>(per));
    const float s = scale_from_amax(max_abs(src));
    float* dst = out.data<float>() + c * per;
    for (int64_t j = 0; j < per; ++j)
      dst[j] = dequantize_int8(quantize_int8(src[static_cast<size_t>(j)], s), s);
  }
  return out;
}

double clipped_weight_error(std::span<const float> w, float alpha) {
  const float s = scale_from_amax(alpha);
  double e = 0;
  for (float v : w) {
    const double d = static_cast<double>(v) - dequantize_int8(quantize_int8(v, s), s);
    e += d * d;
  }
  return e;
}

float mse_weight_clip(std::span<const float> w, int steps) {
  const float m = max_abs(w);
  if (!(m > 0.f) || steps < 1) return m;
  float best = m;
  double best_err = clipped_weight_error(w, m);
  for (int k = steps - 1; k >= steps / 2; --k) {
    const float alpha = static_cast<float>(static_cast<double>(m) * k / steps);
    const double e = clipped_weight_error(w, alpha);
    if (e < best_err) {  // strictly less: ties keep the larger alpha
      best_err = e;
      best = alpha;
    }
  }
  return best;
}

Result<WeightOverrides> clip_int8_weights(const Engine& int8_engine, const WeightOverrides& base,
                                          ClipReport* report) {
  if (int8_engine.options().precision != Precision::kInt8)
    return invalid_argument("weight clipping needs an INT8 engine");
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, int8_engine.impl().prepare(int8_engine.profile().opt));
  return clip_int8_weights(sg, base, report);
}

WeightOverrides clip_int8_weights(const SpecializedGraph& sg, const WeightOverrides& base,
                                  ClipReport* report) {
  WeightOverrides out = base;
  ClipReport rep;
  for (const Node& n : sg.graph.nodes) {
    if (n.op_type != "Conv" || !n.has_attr("qyolo_input_scale")) continue;
    auto it = sg.graph.initializers.find(n.inputs[1]);
    if (it == sg.graph.initializers.end() || it->second.dtype() != DataType::kFloat32 ||
        it->second.rank() < 1)
      continue;
    const Tensor& w = it->second;  // already carries `base`'s override, if any
    Tensor clipped = w.clone();
    const int64_t cout = w.dim(0), per = w.numel() / std::max<int64_t>(cout, 1);
    for (int64_t c = 0; c < cout; ++c) {
      std::span<const float> src(w.data<float>() + c * per, static_cast<size_t>(per));
      const float m = max_abs(src);
      const float alpha = mse_weight_clip(src);
      rep.error_before += clipped_weight_error(src, m);
      rep.error_after += clipped_weight_error(src, alpha);
      ++rep.channels;
      if (alpha < m) ++rep.channels_clipped;
      float* dst = clipped.data<float>() + c * per;
      for (int64_t j = 0; j < per; ++j) dst[j] = std::clamp(dst[j], -alpha, alpha);
    }
    ++rep.convs;
    out[n.inputs[1]] = std::move(clipped);
  }
  if (report) *report = rep;
  return out;
}

Result<WeightOverrides> correct_biases(const std::string& onnx_path, const BuildOptions& int8_options,
                                       const WeightOverrides& base,
                                       const std::vector<std::string>& image_files, int input_h, int input_w,
                                       int iterations, bool measure_after, BiasCorrectionReport* report,
                                       const RefineLogFn& log) {
  if (image_files.empty()) return invalid_argument("bias correction needs calibration images");
  if (iterations < 1) return invalid_argument("bias correction needs at least one iteration");
  if (int8_options.precision != Precision::kInt8)
    return invalid_argument("bias correction needs INT8 options");
  BuildOptions q_options = int8_options;
  q_options.device = Device::kCpu;
  q_options.int8_fp16 = q_options.int8_all = false;
  q_options.weight_clip = false;  // `base` holds any clip: corrections are measured on exactly it
  BuildOptions fp32_options = q_options;
  fp32_options.precision = Precision::kFp32;
  fp32_options.calibration_file.clear();
  fp32_options.float_layers_regex.clear();
  fp32_options.weights_file.clear();

  // The float reference of each conv: the model's own weights and bias (no override).
  QYOLO_ASSIGN_OR_RETURN(auto fp32, build_engine_with_weights(onnx_path, fp32_options, {}));
  PassOptions passes;
  passes.fuse_epilogues = false;
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph fg, fp32->impl().prepare({1, 3, input_h, input_w}, passes));
  WeightOverrides current = base;
  std::vector<ConvBias> convs;
  {
    QYOLO_ASSIGN_OR_RETURN(auto q0, build_engine_with_weights(onnx_path, q_options, current));
    QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, q0->impl().prepare({1, 3, input_h, input_w}, passes));
    QYOLO_ASSIGN_OR_RETURN(convs, int8_conv_biases(sg));
    for (const auto& c : convs) {
      if (!current.count(c.bias)) current[c.bias] = sg.graph.initializers.at(c.bias).clone();
      if (!fg.graph.initializers.count(c.weight) || !fg.graph.initializers.count(c.bias))
        return internal_error("bias correction: '" + c.weight + "' has no float reference");
    }
  }
  BiasCorrectionReport rep;
  rep.convs = static_cast<int>(convs.size());
  rep.images = static_cast<int>(image_files.size());
  for (int it = 0; it < iterations + (measure_after ? 1 : 0); ++it) {
    QYOLO_ASSIGN_OR_RETURN(auto q, build_engine_with_weights(onnx_path, q_options, current));
    QYOLO_RETURN_IF_ERROR(collect_sums(*q, convs, image_files, input_h, input_w));
    double abs_sum = 0;
    int64_t channels = 0;
    for (const auto& c : convs) {
      if (c.out_sum.empty() || c.patch_sum.empty() || !(c.positions > 0)) continue;
      const Tensor& w = fg.graph.initializers.at(c.weight);
      const Tensor& b0 = fg.graph.initializers.at(c.bias);
      Tensor& b = current.at(c.bias);
      const int64_t cout = c.w_shape[0], k = w.numel() / cout;
      if (static_cast<int64_t>(c.out_sum.size()) != cout || static_cast<int64_t>(c.patch_sum.size()) != k)
        return internal_error("bias correction: '" + c.output + "' sums do not match its weights");
      Tensor nb = b.clone();
      for (int64_t o = 0; o < cout; ++o) {
        double ref = 0;
        for (int64_t j = 0; j < k; ++j)
          ref += static_cast<double>(w.data<float>()[o * k + j]) * c.patch_sum[static_cast<size_t>(j)];
        ref = ref / c.positions + b0.data<float>()[o];
        const double shift = c.out_sum[static_cast<size_t>(o)] / c.positions - ref;
        abs_sum += std::fabs(shift);
        ++channels;
        nb.data<float>()[o] = static_cast<float>(nb.data<float>()[o] - shift);
      }
      if (it < iterations) b = std::move(nb);
    }
    rep.mean_abs_shift.push_back(channels ? abs_sum / static_cast<double>(channels) : 0.0);
    if (log) {
      char line[200];
      std::snprintf(line, sizeof line, "bias correction %s %d: mean |local shift| %.4g over %lld channels",
                    it < iterations ? "iteration" : "check", it + 1, rep.mean_abs_shift.back(),
                    static_cast<long long>(channels));
      log(line);
    }
  }
  if (report) *report = rep;
  return current;
}

}  // namespace qyolo
