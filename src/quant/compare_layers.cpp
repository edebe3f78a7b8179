#include "quant/compare_layers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "quant/activation_equalization.h"
#include "runtime/detector.h"
#include "runtime/engine_impl.h"

namespace qyolo {

namespace {
struct Accum {
  double ref2 = 0, err2 = 0, dot = 0, q2 = 0, max_err = 0;
  int64_t n = 0;
};
}  // namespace

Result<std::vector<LayerError>> compare_layers(const Engine& fp32, const Engine& int8,
                                               const std::vector<std::string>& image_files, int input_h,
                                               int input_w) {
  if (image_files.empty()) return invalid_argument("compare needs at least one image");
  const Shape shape = {1, 3, input_h, input_w};
  QYOLO_ASSIGN_OR_RETURN(auto ctx_f, fp32.create_context());
  QYOLO_ASSIGN_OR_RETURN(auto ctx_q, int8.create_context());
  QYOLO_ASSIGN_OR_RETURN(CpuExecutor * ex_f, ctx_f->impl().executor_for(shape));
  QYOLO_ASSIGN_OR_RETURN(CpuExecutor * ex_q, ctx_q->impl().executor_for(shape));
  std::map<std::string, std::pair<std::string, std::string>> producer;  // tensor -> (node, op)
  std::map<std::string, int> position;                                  // tensor -> producer's index
  int node_index = 0;
  for (const auto& n : ex_q->graph().graph.nodes) {
    std::string op = n.op_type;
    if (n.has_attr("qyolo_input_scale")) op += "[int8]";
    for (const auto& o : n.outputs) {
      producer[o] = {n.name, op};
      position[o] = node_index;
    }
    ++node_index;
  }
  // An equalised INT8 engine computes T' = T / s_c (activation equalisation): compared as T.
  const EqualizationFactors factors = equalization_factors_of(int8.impl().weight_overrides);
  for (const auto& [t, s] : factors)
    if (producer.count(t + kEqualizedSuffix)) {
      producer[t] = producer[t + kEqualizedSuffix];
      position[t] = position[t + kEqualizedSuffix];
    }
  auto unequalized = [&](const std::string& name, const Tensor& t) -> std::pair<std::string, Tensor> {
    const size_t n = std::string(kEqualizedSuffix).size();
    if (name.size() <= n || name.compare(name.size() - n, n, kEqualizedSuffix) != 0) return {name, t};
    const std::string base = name.substr(0, name.size() - n);
    auto f = factors.find(base);
    if (f == factors.end() || t.rank() != 4 || t.dim(1) != static_cast<int64_t>(f->second.size()))
      return {name, t};
    Tensor u = t.clone();
    const int64_t ch = t.dim(1), plane = t.dim(2) * t.dim(3);
    float* d = u.data<float>();
    for (int64_t i = 0; i < u.numel(); ++i) d[i] *= f->second[static_cast<size_t>((i / plane) % ch)];
    return {base, u};
  };
  std::map<std::string, Accum> acc;
  const std::string input_name = fp32.info().input_name;
  for (const auto& file : image_files) {
    QYOLO_ASSIGN_OR_RETURN(Image img, load_image(file));
    Tensor input = Detector::preprocess({&img}, input_h, input_w, nullptr);
    std::map<std::string, Tensor> ref;
    std::map<std::string, Tensor> outs;
    QYOLO_RETURN_IF_ERROR(ex_f->run({{input_name, input}}, outs, [&](const std::string& name, const Tensor& t) {
      if (producer.count(name) && t.dtype() == DataType::kFloat32) ref[name] = t;
    }));
    QYOLO_RETURN_IF_ERROR(ex_q->run({{input_name, input}}, outs, [&](const std::string& observed, const Tensor& value) {
      if (value.dtype() != DataType::kFloat32) return;
      const auto [name, t] = unequalized(observed, value);
      auto it = ref.find(name);
      if (it == ref.end() || it->second.shape() != t.shape()) return;
      const float* r = it->second.data<float>();
      const float* q = t.data<float>();
      Accum& a = acc[name];
      for (int64_t i = 0; i < t.numel(); ++i) {
        double e = static_cast<double>(r[i]) - q[i];
        a.ref2 += static_cast<double>(r[i]) * r[i];
        a.q2 += static_cast<double>(q[i]) * q[i];
        a.dot += static_cast<double>(r[i]) * q[i];
        a.err2 += e * e;
        a.max_err = std::max(a.max_err, std::fabs(e));
      }
      a.n += t.numel();
      ref.erase(it);  // free memory early
    }));
  }
  std::vector<LayerError> rows;
  for (const auto& [name, a] : acc) {
    LayerError e;
    e.tensor = name;
    e.node = producer[name].first;
    e.op = producer[name].second;
    e.snr_db = a.err2 > 0 ? 10.0 * std::log10(a.ref2 / a.err2) : std::numeric_limits<double>::infinity();
    e.cosine = (a.ref2 > 0 && a.q2 > 0) ? a.dot / std::sqrt(a.ref2 * a.q2) : 1.0;
    e.max_abs_err = a.max_err;
    e.elements = a.n;
    e.position = position[name];
    rows.push_back(e);
  }
  std::sort(rows.begin(), rows.end(), [](const LayerError& x, const LayerError& y) { return x.snr_db < y.snr_db; });
  return rows;
}

}  // namespace qyolo
