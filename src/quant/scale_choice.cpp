#include "quant/scale_choice.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>

#include "ir/ops/conv2d.h"
#include "quant/quant_params.h"
#include "runtime/detector.h"
#include "runtime/engine_impl.h"
#include "runtime/image_source.h"

namespace qyolo {

namespace {

// Per output channel: scale_w = max|W[o]| / 127, W dequantised from round-half-even(W / scale_w).
std::vector<float> fake_quant_weights(const Tensor& w) {
  const int64_t cout = w.dim(0), per = w.numel() / cout;
  const float* src = w.data<float>();
  std::vector<float> out(static_cast<size_t>(w.numel()));
  for (int64_t o = 0; o < cout; ++o) {
    float amax = 0;
    for (int64_t i = 0; i < per; ++i) amax = std::max(amax, std::fabs(src[o * per + i]));
    const float s = scale_from_amax(amax);
    for (int64_t i = 0; i < per; ++i)
      out[static_cast<size_t>(o * per + i)] = dequantize_int8(quantize_int8(src[o * per + i], s), s);
  }
  return out;
}

// Small deterministic generator (the sample must not depend on the platform's std distributions).
struct Lcg {
  uint64_t s;
  uint32_t next(uint32_t n) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>((s >> 33) % n);
  }
};

}  // namespace

Status accumulate_conv_error(const Node& conv, const Tensor& x, const Tensor& weight, const Tensor* bias,
                             const std::vector<float>& scales, const ScaleChoiceOptions& options,
                             unsigned seed, std::vector<double>& err, double& ref) {
  QYOLO_ASSIGN_OR_RETURN(ConvAttrs a, ConvAttrs::parse(conv, x.shape(), weight.shape()));
  if (x.shape().size() != 4 || a.group != 1)
    return unsupported(conv.describe() + ": the per-tensor scale choice handles 2-D convs with group 1");
  err.resize(scales.size(), 0.0);
  const int64_t n = x.dim(0), cin = x.dim(1), h = x.dim(2), w = x.dim(3);
  const int64_t cout = weight.dim(0), kh = a.window.kernel[0], kw = a.window.kernel[1];
  const int64_t oh = a.window.out[0], ow = a.window.out[1], patch = cin * kh * kw;
  const std::vector<float> wq = fake_quant_weights(weight);
  const float* wf = weight.data<float>();
  const float* xf = x.data<float>();
  Lcg rng{seed * 2654435761ull + 1};
  std::vector<int64_t> channels;
  if (cout <= options.channels_per_conv) {
    for (int64_t o = 0; o < cout; ++o) channels.push_back(o);
  } else {
    for (int i = 0; i < options.channels_per_conv; ++i)
      channels.push_back(rng.next(static_cast<uint32_t>(cout)));
  }
  std::vector<float> p(static_cast<size_t>(patch)), pq(static_cast<size_t>(patch) * scales.size());
  for (int sample = 0; sample < options.positions_per_conv; ++sample) {
    const int64_t b = rng.next(static_cast<uint32_t>(n)), y = rng.next(static_cast<uint32_t>(oh)),
                  xo = rng.next(static_cast<uint32_t>(ow));
    // The input patch (zero padding), then its quantised copies, one per candidate scale.
    for (int64_t c = 0; c < cin; ++c)
      for (int64_t i = 0; i < kh; ++i)
        for (int64_t j = 0; j < kw; ++j) {
          const int64_t iy = y * a.window.strides[0] - a.window.pads_begin[0] + i * a.window.dilations[0];
          const int64_t ix = xo * a.window.strides[1] - a.window.pads_begin[1] + j * a.window.dilations[1];
          const size_t k = static_cast<size_t>((c * kh + i) * kw + j);
          p[k] = (iy < 0 || iy >= h || ix < 0 || ix >= w) ? 0.f : xf[((b * cin + c) * h + iy) * w + ix];
          for (size_t s = 0; s < scales.size(); ++s)
            pq[s * static_cast<size_t>(patch) + k] =
                dequantize_int8(quantize_int8(p[k], scales[s]), scales[s]);
        }
    for (int64_t o : channels) {
      const float bo = bias ? bias->data<float>()[o] : 0.f;
      double yr = 0;
      for (int64_t k = 0; k < patch; ++k)
        yr += static_cast<double>(wf[o * patch + k]) * p[static_cast<size_t>(k)];
      const double ar = apply_fused_activation(a.activation, a.activation_alpha, static_cast<float>(yr) + bo);
      ref += ar * ar;
      for (size_t s = 0; s < scales.size(); ++s) {
        const float* q = pq.data() + s * static_cast<size_t>(patch);
        double yq = 0;
        for (int64_t k = 0; k < patch; ++k)
          yq += static_cast<double>(wq[static_cast<size_t>(o * patch + k)]) * q[k];
        const double aq =
            apply_fused_activation(a.activation, a.activation_alpha, static_cast<float>(yq) + bo);
        err[s] += (ar - aq) * (ar - aq);
      }
    }
  }
  return Status::ok();
}

Result<CalibrationTable> choose_scales_per_tensor(const Engine& fp32, const std::vector<Tensor>& images,
                                                  const std::vector<CalibrationTable>& candidates,
                                                  const ScaleChoiceOptions& options,
                                                  ScaleChoiceReport* report) {
  if (candidates.empty())
    return invalid_argument("per-tensor scale choice needs at least one candidate table");
  if (images.empty()) return invalid_argument("per-tensor scale choice needs at least one image");
  if (fp32.options().precision != Precision::kFp32)
    return invalid_argument("per-tensor scale choice observes an FP32 engine");
  const std::string input_name = fp32.info().input_name;
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph prepared, fp32.impl().prepare(images[0].shape()));
  // The executor owns the graph: readers and constants below point into it.
  QYOLO_ASSIGN_OR_RETURN(auto exec, CpuExecutor::build(std::move(prepared)));
  const SpecializedGraph& sg = exec->graph();
  // Conv readers of each tensor that every candidate has a scale for.
  std::map<std::string, std::vector<const Node*>> readers;
  for (const Node& node : sg.graph.nodes) {
    if (node.op_type != "Conv") continue;
    const std::string& in = node.inputs[0];
    bool known = true;
    for (const auto& c : candidates) known &= c.scales.count(in) > 0;
    auto w = sg.values.find(node.inputs[1]);
    if (!known || w == sg.values.end() || !w->second.value || w->second.value->dim(0) <= 0) continue;
    readers[in].push_back(&node);
  }
  auto constant = [&](const std::string& name) -> const Tensor* {
    auto it = sg.values.find(name);
    return it != sg.values.end() && it->second.value ? &*it->second.value : nullptr;
  };
  // Per tensor, per candidate: sum over its readers of err / ref (each reader weighs alike).
  std::map<std::string, std::vector<double>> score;
  Status failure = Status::ok();
  unsigned seed = 0;
  auto judge = [&](const std::string& name, const Tensor& t) {
    auto r = readers.find(name);
    if (r == readers.end() || !failure.is_ok() || t.dtype() != DataType::kFloat32) return;
    std::vector<float> scales;
    for (const auto& c : candidates) scales.push_back(c.scales.at(name));
    auto& sc = score[name];
    sc.resize(candidates.size(), 0.0);
    for (const Node* conv : r->second) {
      std::vector<double> err;
      double ref = 0;
      const Tensor* bias = conv->has_input(2) ? constant(conv->inputs[2]) : nullptr;
      Status st = accumulate_conv_error(*conv, t, *constant(conv->inputs[1]), bias, scales, options, ++seed,
                                        err, ref);
      if (st.code() == StatusCode::kUnsupported) continue;  // e.g. a grouped conv: keeps the first candidate
      if (!st.is_ok()) {
        failure = st;
        return;
      }
      for (size_t s = 0; s < scales.size(); ++s) sc[s] += ref > 0 ? err[s] / ref : 0.0;
    }
  };
  for (const Tensor& image : images) {
    judge(input_name, image);
    std::map<std::string, Tensor> outputs;
    QYOLO_RETURN_IF_ERROR(exec->run({{input_name, image}}, outputs, judge));
    QYOLO_RETURN_IF_ERROR(failure);
  }
  CalibrationTable table = candidates[0];
  table.algorithm = "PerTensorCalibration";
  ScaleChoiceReport rep;
  for (const auto& [name, sc] : score) {
    const size_t best = static_cast<size_t>(std::min_element(sc.begin(), sc.end()) - sc.begin());
    table.scales[name] = candidates[best].scales.at(name);
    ++rep.tensors_judged;
    ++rep.chosen[candidates[best].algorithm];
  }
  if (report) *report = rep;
  return table;
}

Result<CalibrationTable> calibrate_per_tensor(const Engine& fp32, const std::string& image_folder,
                                              const CalibrationOptions& options, int judge_images,
                                              CalibrationReport* report, const ProgressFn& progress,
                                              ScaleChoiceReport* choice) {
  const auto t0 = std::chrono::steady_clock::now();
  QYOLO_ASSIGN_OR_RETURN(auto tables, calibrate_algorithms(fp32, image_folder, options,
                                                           {CalibAlgo::kMse, CalibAlgo::kMinMax,
                                                            CalibAlgo::kEntropy, CalibAlgo::kPercentile},
                                                           report, progress));
  std::string folder = image_folder;
  if (std::filesystem::is_directory(std::filesystem::path(image_folder) / "images")) folder += "/images";
  QYOLO_ASSIGN_OR_RETURN(auto files, list_image_files(folder));
  files.resize(
      std::min(files.size(), static_cast<size_t>(std::max(1, std::min(judge_images, options.num_images)))));
  // One image per run at the calibration H x W (the batch of a static model is its own).
  Shape shape = report ? report->shape : fp32.profile().opt;
  std::vector<Tensor> inputs;
  const size_t per =
      fp32.profile().min[0] == fp32.profile().max[0] ? static_cast<size_t>(fp32.profile().min[0]) : 1;
  for (size_t start = 0; start + per <= files.size(); start += per) {
    std::vector<Image> images;
    for (size_t i = 0; i < per; ++i) {
      QYOLO_ASSIGN_OR_RETURN(Image img, load_image(files[start + i]));
      images.push_back(std::move(img));
    }
    std::vector<const Image*> ptrs;
    for (const auto& im : images) ptrs.push_back(&im);
    inputs.push_back(
        Detector::preprocess(ptrs, static_cast<int>(shape[2]), static_cast<int>(shape[3]), nullptr));
  }
  if (inputs.empty()) return invalid_argument("per-tensor calibration: too few images to judge the scales");
  QYOLO_ASSIGN_OR_RETURN(CalibrationTable table, choose_scales_per_tensor(fp32, inputs, tables, {}, choice));
  if (report) report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return table;
}

}  // namespace qyolo
