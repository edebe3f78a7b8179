#include "quant/mixed_precision.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "runtime/engine_impl.h"

namespace qyolo {

namespace {

// The user's float-layers regex (if any) OR'ed with ours.
std::string combine_regex(const std::string& user, const std::string& ours) {
  if (user.empty()) return ours;
  if (ours.empty()) return user;
  return "(?:" + user + ")|" + ours;
}

std::string escape_regex(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::string exact_names_regex(const std::vector<std::string>& names) {
  if (names.empty()) return "";
  std::string r = "^(?:";
  for (size_t i = 0; i < names.size(); ++i) r += (i ? "|" : "") + escape_regex(names[i]);
  return r + ")$";
}

Result<std::vector<LayerSensitivity>> int8_convs(const Engine& int8_engine) {
  if (int8_engine.options().precision != Precision::kInt8)
    return invalid_argument("int8_convs needs an INT8 engine");
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, int8_engine.impl().prepare(int8_engine.profile().opt));
  std::vector<LayerSensitivity> convs;
  for (const Node& n : sg.graph.nodes) {
    if (n.op_type != "Conv" || !n.has_attr("qyolo_input_scale")) continue;
    LayerSensitivity l;
    l.node = n.name;
    const auto out = sg.values.find(n.outputs[0]);
    const auto w = sg.values.find(n.inputs[1]);
    if (out != sg.values.end() && w != sg.values.end() && w->second.shape.size() == 4) {
      const Shape& ws = w->second.shape;  // [Cout, Cin / group, kh, kw]
      l.macs = shape_numel(out->second.shape) * ws[1] * ws[2] * ws[3];
    }
    convs.push_back(l);
  }
  return convs;
}

Status OutputError::add(const Tensor& reference, const Tensor& candidate) {
  if (reference.shape() != candidate.shape() || reference.dtype() != DataType::kFloat32 ||
      candidate.dtype() != DataType::kFloat32)
    return invalid_argument("output error: reference " + shape_str(reference.shape()) + " and candidate " +
                            shape_str(candidate.shape()) + " must be float32 of one shape");
  const Shape& s = reference.shape();
  if (s.empty()) return invalid_argument("output error: scalar output");
  // Channel axis: the smaller of the last two dims (85 of [N, 25200, 85]; 84 of [N, 84, 8400]).
  const size_t r = s.size();
  const bool last = r < 2 || s[r - 1] <= s[r - 2];
  const int64_t channels = last ? s[r - 1] : s[r - 2];
  const int64_t inner = last ? 1 : s[r - 1];  // elements per channel step
  if (err2_.empty()) {
    err2_.assign(static_cast<size_t>(channels), 0.0);
    ref2_.assign(static_cast<size_t>(channels), 0.0);
  } else if (err2_.size() != static_cast<size_t>(channels)) {
    return invalid_argument("output error: outputs of different channel counts");
  }
  const float* a = reference.data<float>();
  const float* b = candidate.data<float>();
  for (int64_t i = 0; i < reference.numel(); ++i) {
    const size_t c = static_cast<size_t>((i / inner) % channels);
    const double d = static_cast<double>(a[i]) - b[i];
    err2_[c] += d * d;
    ref2_[c] += static_cast<double>(a[i]) * a[i];
  }
  return Status::ok();
}

double OutputError::nsr() const {
  double sum = 0;
  size_t n = 0;
  for (size_t c = 0; c < err2_.size(); ++c) {
    if (ref2_[c] <= 0) continue;  // a channel that is always 0 in the reference says nothing
    sum += err2_[c] / ref2_[c];
    ++n;
  }
  return n ? sum / static_cast<double>(n) : 0.0;
}

BuildOptions fp32_reference_options(const BuildOptions& int8_options) {
  BuildOptions o = int8_options;
  o.precision = Precision::kFp32;
  o.calibration_file.clear();
  o.weights_file.clear();
  o.float_layers_regex.clear();
  o.int8_fp16 = o.int8_all = false;
  return o;
}

Result<std::vector<LayerSensitivity>> rank_layer_sensitivity(const std::string& onnx_path,
                                                             const BuildOptions& int8_options,
                                                             const std::vector<Tensor>& images,
                                                             const StatusLineFn& log) {
  if (images.empty()) return invalid_argument("sensitivity ranking needs at least one calibration image");
  QYOLO_ASSIGN_OR_RETURN(auto all_int8, Engine::build(onnx_path, int8_options));
  QYOLO_ASSIGN_OR_RETURN(std::vector<LayerSensitivity> convs, int8_convs(*all_int8));
  const BuildOptions fp32_options = fp32_reference_options(int8_options);
  QYOLO_ASSIGN_OR_RETURN(auto fp32, Engine::build(onnx_path, fp32_options));
  std::vector<Tensor> reference(images.size());
  {
    QYOLO_ASSIGN_OR_RETURN(auto ctx, fp32->create_context());
    for (size_t i = 0; i < images.size(); ++i) QYOLO_RETURN_IF_ERROR(ctx->run(images[i], reference[i]));
  }
  for (size_t k = 0; k < convs.size(); ++k) {
    BuildOptions one = int8_options;
    // Every node but this conv matches, i.e. stays float.
    one.float_layers_regex =
        combine_regex(int8_options.float_layers_regex, "^(?!" + escape_regex(convs[k].node) + "$)");
    QYOLO_ASSIGN_OR_RETURN(auto engine, Engine::build(onnx_path, one));
    QYOLO_ASSIGN_OR_RETURN(auto ctx, engine->create_context());
    OutputError err;
    for (size_t i = 0; i < images.size(); ++i) {
      Tensor out;
      QYOLO_RETURN_IF_ERROR(ctx->run(images[i], out));
      QYOLO_RETURN_IF_ERROR(err.add(reference[i], out));
    }
    convs[k].nsr = err.nsr();
    if (log) {
      char line[256];
      std::snprintf(line, sizeof line, "sensitivity %zu/%zu: %s NSR %.3g", k + 1, convs.size(),
                    convs[k].node.c_str(), convs[k].nsr);
      log(line);
    }
  }
  std::stable_sort(convs.begin(), convs.end(),
                   [](const LayerSensitivity& a, const LayerSensitivity& b) { return a.nsr > b.nsr; });
  return convs;
}

Result<size_t> plan_size_within_budget(size_t n, const std::function<Result<double>(size_t k)>& proxy_with,
                                       double budget_points, size_t first_tried) {
  auto within = [&](double p) { return 100.0 * (1.0 - p) <= budget_points + 1e-9; };
  QYOLO_ASSIGN_OR_RETURN(double p0, proxy_with(0));
  if (within(p0)) return size_t{0};
  const size_t tried = std::min(first_tried, n);
  for (size_t k = 1; k <= tried; ++k) {
    QYOLO_ASSIGN_OR_RETURN(double p, proxy_with(k));
    if (within(p)) return k;
  }
  // Invariant: k = lo misses the budget; k = hi meets it (all convs float is FP32 itself: 1.0).
  size_t lo = tried, hi = n;
  while (hi - lo > 1) {
    const size_t mid = lo + (hi - lo) / 2;
    QYOLO_ASSIGN_OR_RETURN(double p, proxy_with(mid));
    (within(p) ? hi : lo) = mid;
  }
  QYOLO_ASSIGN_OR_RETURN(double p, proxy_with(hi));
  if (!within(p))
    return invalid_argument("no mix of float and INT8 convs meets the accuracy budget of " +
                            std::to_string(budget_points) + " proxy points (all " + std::to_string(n) +
                            " convs in float scored " + std::to_string(p) + ")");
  return hi;
}

Result<MixedPrecisionPlan> plan_mixed_precision(const std::string& onnx_path,
                                                const BuildOptions& int8_options,
                                                const std::vector<LayerSensitivity>& ranking,
                                                const AccuracyProxy& proxy, double budget_points,
                                                const StatusLineFn& log) {
  if (!(budget_points >= 0))
    return invalid_argument("the accuracy budget must be >= 0 (points of the proxy)");
  const size_t n = ranking.size();
  std::map<size_t, double> measured;  // k -> proxy mAP50-95 with the k most sensitive convs in float
  auto names = [&](size_t k) {
    std::vector<std::string> v;
    for (size_t i = 0; i < k; ++i) v.push_back(ranking[i].node);
    return v;
  };
  auto proxy_with = [&](size_t k) -> Result<double> {
    if (auto it = measured.find(k); it != measured.end()) return it->second;
    BuildOptions o = int8_options;
    o.float_layers_regex = combine_regex(int8_options.float_layers_regex, exact_names_regex(names(k)));
    QYOLO_ASSIGN_OR_RETURN(auto engine, Engine::build(onnx_path, o));
    QYOLO_ASSIGN_OR_RETURN(CocoMetrics m, proxy.evaluate(engine));
    measured[k] = m.map;
    if (log) {
      char line[160];
      std::snprintf(line, sizeof line,
                    "proxy with %zu of %zu convs in float: mAP50-95 %.4f vs FP32 labels (loss %.2f pt)", k, n,
                    m.map, 100.0 * (1.0 - m.map));
      log(line);
    }
    return m.map;
  };
  MixedPrecisionPlan plan;
  QYOLO_ASSIGN_OR_RETURN(plan.proxy_all_int8, proxy_with(0));
  QYOLO_ASSIGN_OR_RETURN(size_t chosen, plan_size_within_budget(n, proxy_with, budget_points));
  plan.float_layers = names(chosen);
  plan.regex = combine_regex(int8_options.float_layers_regex, exact_names_regex(plan.float_layers));
  plan.proxy_plan = measured.at(chosen);
  int64_t total = 0, kept = 0;
  for (size_t i = 0; i < n; ++i) {
    total += ranking[i].macs;
    if (i < chosen) kept += ranking[i].macs;
  }
  plan.float_mac_fraction = total > 0 ? static_cast<double>(kept) / static_cast<double>(total) : 0.0;
  plan.proxy_evaluations = static_cast<int>(measured.size());
  return plan;
}

}  // namespace qyolo
