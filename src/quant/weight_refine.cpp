#include "quant/weight_refine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

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

// Per-channel sums of every INT8 conv's pre-activation output over a set of images.
struct ChannelMeans {
  std::map<std::string, std::vector<double>> sum;  // conv output tensor -> per channel
  std::map<std::string, double> count;             // elements per channel
  std::vector<double> mean(const std::string& t) const {
    std::vector<double> m = sum.at(t);
    for (double& v : m) v /= count.at(t);
    return m;
  }
};

struct ConvBias {
  std::string output, bias;  // conv output tensor and bias initializer in the prepared graph
};

// Convs of the unfused INT8 graph that run in INT8 and have a constant bias.
std::vector<ConvBias> int8_conv_biases(const SpecializedGraph& sg) {
  std::vector<ConvBias> out;
  for (const Node& n : sg.graph.nodes) {
    if (n.op_type != "Conv" || !n.has_attr("qyolo_input_scale") || !n.has_input(2)) continue;
    if (!sg.graph.initializers.count(n.inputs[2])) continue;
    out.push_back({n.outputs[0], n.inputs[2]});
  }
  return out;
}

// Runs `engine` without activation fusion (so conv outputs are pre-activation) over the images and
// sums each listed conv output per channel.
Result<ChannelMeans> conv_output_means(const Engine& engine, const std::vector<ConvBias>& convs,
                                       const std::vector<std::string>& files, int h, int w) {
  PassOptions passes;
  passes.fuse_epilogues = false;
  const Shape shape = {1, 3, h, w};
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, engine.impl().prepare(shape, passes));
  QYOLO_ASSIGN_OR_RETURN(auto exec, CpuExecutor::build(std::move(sg)));
  ChannelMeans means;
  std::map<std::string, bool> wanted;
  for (const auto& c : convs) wanted[c.output] = true;
  const std::string input_name = engine.info().input_name;
  for (const auto& f : files) {
    QYOLO_ASSIGN_OR_RETURN(Image img, load_image(f));
    Tensor input = Detector::preprocess({&img}, h, w, nullptr);
    std::map<std::string, Tensor> outputs;
    Status st = exec->run({{input_name, input}}, outputs, [&](const std::string& name, const Tensor& t) {
      if (!wanted.count(name) || t.dtype() != DataType::kFloat32 || t.rank() != 4) return;
      const int64_t c = t.dim(1), plane = t.dim(2) * t.dim(3);
      auto& s = means.sum[name];
      if (s.empty()) s.assign(static_cast<size_t>(c), 0.0);
      const float* p = t.data<float>();
      for (int64_t n = 0; n < t.dim(0); ++n)
        for (int64_t k = 0; k < c; ++k) {
          double acc = 0;
          const float* q = p + (n * c + k) * plane;
          for (int64_t i = 0; i < plane; ++i) acc += q[i];
          s[static_cast<size_t>(k)] += acc;
        }
      means.count[name] += static_cast<double>(t.dim(0) * plane);
    });
    QYOLO_RETURN_IF_ERROR(st);
  }
  return means;
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
    for (int64_t j = 0; j < per; ++j) dst[j] = dequantize_int8(quantize_int8(src[static_cast<size_t>(j)], s), s);
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
  WeightOverrides out = base;
  ClipReport rep;
  for (const Node& n : sg.graph.nodes) {
    if (n.op_type != "Conv" || !n.has_attr("qyolo_input_scale")) continue;
    auto it = sg.graph.initializers.find(n.inputs[1]);
    if (it == sg.graph.initializers.end() || it->second.dtype() != DataType::kFloat32 || it->second.rank() < 1)
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
                                       const WeightOverrides& base, const std::vector<std::string>& image_files,
                                       int input_h, int input_w, int iterations, bool measure_after,
                                       BiasCorrectionReport* report, const RefineLogFn& log) {
  if (image_files.empty()) return invalid_argument("bias correction needs calibration images");
  if (iterations < 1) return invalid_argument("bias correction needs at least one iteration");
  if (int8_options.precision != Precision::kInt8) return invalid_argument("bias correction needs INT8 options");
  BuildOptions fp32_options = int8_options;
  fp32_options.precision = Precision::kFp32;
  fp32_options.calibration_file.clear();
  fp32_options.float_layers_regex.clear();
  fp32_options.weights_file.clear();
  fp32_options.int8_fp16 = fp32_options.int8_all = false;
  fp32_options.device = Device::kCpu;
  BuildOptions q_options = int8_options;
  q_options.device = Device::kCpu;
  q_options.int8_fp16 = q_options.int8_all = false;

  WeightOverrides current = base;
  QYOLO_ASSIGN_OR_RETURN(auto q0, build_engine_with_weights(onnx_path, q_options, current));
  std::vector<ConvBias> convs;
  {
    PassOptions passes;
    passes.fuse_epilogues = false;
    QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, q0->impl().prepare({1, 3, input_h, input_w}, passes));
    convs = int8_conv_biases(sg);
    // The bias each correction starts from: the model's, or base's override.
    for (const auto& c : convs)
      if (!current.count(c.bias)) current[c.bias] = sg.graph.initializers.at(c.bias).clone();
  }
  // The FP32 reference is the model itself, without any override.
  QYOLO_ASSIGN_OR_RETURN(auto fp32, Engine::build(onnx_path, fp32_options));
  QYOLO_ASSIGN_OR_RETURN(ChannelMeans ref, conv_output_means(*fp32, convs, image_files, input_h, input_w));
  BiasCorrectionReport rep;
  rep.convs = static_cast<int>(convs.size());
  rep.images = static_cast<int>(image_files.size());
  for (int it = 0; it < iterations + (measure_after ? 1 : 0); ++it) {
    QYOLO_ASSIGN_OR_RETURN(auto q, build_engine_with_weights(onnx_path, q_options, current));
    QYOLO_ASSIGN_OR_RETURN(ChannelMeans got, conv_output_means(*q, convs, image_files, input_h, input_w));
    double abs_sum = 0;
    int64_t channels = 0;
    for (const auto& c : convs) {
      if (!got.sum.count(c.output) || !ref.sum.count(c.output)) continue;
      const std::vector<double> mq = got.mean(c.output), mf = ref.mean(c.output);
      Tensor& b = current.at(c.bias);
      if (static_cast<size_t>(b.numel()) != mq.size())
        return internal_error("bias '" + c.bias + "' has " + std::to_string(b.numel()) + " values, its conv " +
                              std::to_string(mq.size()) + " channels");
      Tensor nb = b.clone();
      for (size_t k = 0; k < mq.size(); ++k) {
        const double shift = mq[k] - mf[k];
        abs_sum += std::fabs(shift);
        ++channels;
        nb.data<float>()[k] = static_cast<float>(nb.data<float>()[k] - shift);
      }
      if (it < iterations) b = std::move(nb);
    }
    rep.mean_abs_shift.push_back(channels ? abs_sum / static_cast<double>(channels) : 0.0);
    if (log) {
      char line[200];
      std::snprintf(line, sizeof line, "bias correction %s %d: mean |E[y_int8 - y_fp32]| %.4g over %lld channels",
                    it < iterations ? "iteration" : "check", it + 1, rep.mean_abs_shift.back(),
                    static_cast<long long>(channels));
      log(line);
    }
  }
  if (report) *report = rep;
  return current;
}

}  // namespace qyolo
