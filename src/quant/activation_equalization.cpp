#include "quant/activation_equalization.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <regex>
#include <set>

#include "runtime/detector.h"
#include "runtime/engine_impl.h"
#include "runtime/image_source.h"

namespace qyolo {

EqualizationFactors equalization_factors_of(const WeightOverrides& w) {
  EqualizationFactors out;
  const std::string prefix = kEqualizePrefix;
  for (const auto& [name, t] : w)
    if (name.rfind(prefix, 0) == 0) out[name.substr(prefix.size())] = t.to_float_vector();
  return out;
}

WeightOverrides without_equalization(const WeightOverrides& w) {
  WeightOverrides out;
  for (const auto& [name, t] : w)
    if (name.rfind(kEqualizePrefix, 0) != 0) out.emplace(name, t);
  return out;
}

WeightOverrides with_equalization(WeightOverrides w, const EqualizationFactors& factors) {
  for (const auto& [tensor, s] : factors) {
    Tensor t(DataType::kFloat32, {static_cast<int64_t>(s.size())});
    std::copy(s.begin(), s.end(), t.data<float>());
    w[kEqualizePrefix + tensor] = t;
  }
  return w;
}

std::vector<float> equalization_factors(const std::vector<float>& channel_amax, double alpha,
                                        double min_factor) {
  float top = 0.f;
  for (float a : channel_amax) top = std::max(top, a);
  std::vector<float> s(channel_amax.size(), 1.f);
  if (!(top > 0.f)) return s;
  for (size_t c = 0; c < s.size(); ++c)
    s[c] =
        static_cast<float>(std::max(std::pow(static_cast<double>(channel_amax[c]) / top, alpha), min_factor));
  return s;
}

InputSource image_inputs(const std::vector<std::string>& image_files, int h, int w) {
  auto next = std::make_shared<size_t>(0);
  return [=]() -> Result<Tensor> {
    if (*next >= image_files.size()) return Tensor();
    QYOLO_ASSIGN_OR_RETURN(Image img, load_image(image_files[(*next)++]));
    return Detector::preprocess({&img}, h, w, nullptr);
  };
}

Result<EqualizationFactors> channel_absmax(const Engine& fp32, const std::vector<std::string>& tensors,
                                           const InputSource& inputs) {
  EqualizationFactors amax;
  const std::set<std::string> wanted(tensors.begin(), tensors.end());
  auto observe = [&](const std::string& name, const Tensor& t) {
    if (!wanted.count(name) || t.dtype() != DataType::kFloat32 || t.rank() != 4) return;
    const int64_t n = t.dim(0), ch = t.dim(1), plane = t.dim(2) * t.dim(3);
    auto& m = amax[name];
    m.resize(static_cast<size_t>(ch), 0.f);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t c = 0; c < ch; ++c) {
        const float* x = t.data<float>() + (b * ch + c) * plane;
        float v = m[static_cast<size_t>(c)];
        for (int64_t i = 0; i < plane; ++i) v = std::max(v, std::fabs(x[i]));
        m[static_cast<size_t>(c)] = v;
      }
  };
  const std::string input_name = fp32.info().input_name;
  // The calibration graph (residual Adds unfused), where the tensors are observed as conv outputs;
  // one executor per input shape.
  PassOptions passes;
  passes.fuse_residual = false;
  passes.fuse_equalization = false;
  std::map<Shape, std::unique_ptr<CpuExecutor>> executors;
  while (true) {
    QYOLO_ASSIGN_OR_RETURN(Tensor input, inputs());
    if (input.empty()) break;
    auto& exec = executors[input.shape()];
    if (!exec) {
      QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, fp32.impl().prepare(input.shape(), passes));
      QYOLO_ASSIGN_OR_RETURN(exec, CpuExecutor::build(std::move(sg)));
    }
    std::map<std::string, Tensor> outputs;
    QYOLO_RETURN_IF_ERROR(exec->run({{input_name, input}}, outputs, observe));
  }
  for (const auto& t : tensors)
    if (!amax.count(t))
      return internal_error("activation equalisation: tensor '" + t + "' was never observed");
  return amax;
}

Result<EqualizationFactors> choose_activation_equalization(const Engine& fp32, const Shape& input_shape,
                                                           const InputSource& inputs,
                                                           const EqualizeOptions& options,
                                                           EqualizeReport* report) {
  const auto t0 = std::chrono::steady_clock::now();
  if (!(options.alpha >= 0) || !(options.min_factor > 0 && options.min_factor <= 1))
    return invalid_argument("activation equalisation: alpha must be >= 0 and the minimum factor in (0, 1]");
  std::regex re;
  try {
    re = std::regex(options.tensors_regex, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return invalid_argument("bad equalisation tensor regex '" + options.tensors_regex + "': " + e.what());
  }
  PassOptions passes;
  passes.fuse_residual = false;
  passes.fuse_equalization = false;
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, fp32.impl().prepare(input_shape, passes));
  const auto candidates = equalizable_tensors(sg, options.with_concat);
  std::vector<std::string> chosen;
  for (const auto& t : candidates)
    if (std::regex_match(t, re)) chosen.push_back(t);
  int images = 0;
  InputSource counted = [&]() -> Result<Tensor> {
    QYOLO_ASSIGN_OR_RETURN(Tensor t, inputs());
    if (!t.empty()) images += static_cast<int>(t.dim(0));
    return t;
  };
  QYOLO_ASSIGN_OR_RETURN(auto amax, channel_absmax(fp32, chosen, counted));
  if (images == 0) return invalid_argument("activation equalisation needs calibration images");
  EqualizationFactors factors;
  for (const auto& t : chosen)
    factors[t] = equalization_factors(amax.at(t), options.alpha, options.min_factor);
  if (report) {
    report->tensors = static_cast<int>(chosen.size());
    report->candidates = static_cast<int>(candidates.size());
    report->images = images;
    report->names = chosen;
    report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return factors;
}

}  // namespace qyolo
