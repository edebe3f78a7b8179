#include "quant/error_split.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <regex>

#include "quant/mixed_precision.h"
#include "quant/weight_refine.h"
#include "runtime/engine_impl.h"

namespace qyolo {

namespace {

Result<std::vector<Tensor>> run_all(const Engine& e, const std::vector<Tensor>& images) {
  QYOLO_ASSIGN_OR_RETURN(auto ctx, e.create_context());
  std::vector<Tensor> out(images.size());
  for (size_t i = 0; i < images.size(); ++i) QYOLO_RETURN_IF_ERROR(ctx->run(images[i], out[i]));
  return out;
}

Result<double> nsr(const std::vector<Tensor>& ref, const std::vector<Tensor>& got) {
  OutputError err;
  for (size_t i = 0; i < ref.size(); ++i) QYOLO_RETURN_IF_ERROR(err.add(ref[i], got[i]));
  return err.nsr();
}

// Weight initializer of each INT8 conv of the prepared graph, by conv name.
Result<std::map<std::string, std::string>> int8_conv_weights(const Engine& int8_engine) {
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, int8_engine.impl().prepare(int8_engine.profile().opt));
  std::map<std::string, std::string> out;
  for (const Node& n : sg.graph.nodes)
    if (n.op_type == "Conv" && n.has_attr("qyolo_input_scale") && sg.graph.initializers.count(n.inputs[1]))
      out[n.name] = n.inputs[1];
  return out;
}

}  // namespace

Result<WeightOverrides> rounded_int8_weights(const Engine& int8_engine) {
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, int8_engine.impl().prepare(int8_engine.profile().opt));
  WeightOverrides out;
  for (const Node& n : sg.graph.nodes)
    if (n.op_type == "Conv" && n.has_attr("qyolo_input_scale") && sg.graph.initializers.count(n.inputs[1]))
      out[n.inputs[1]] = fake_quantize_weights(sg.graph.initializers.at(n.inputs[1]));
  return out;
}

Result<std::vector<ErrorSplit>> split_int8_error(const std::string& onnx_path,
                                                 const BuildOptions& int8_options,
                                                 const WeightOverrides& base,
                                                 const std::vector<Tensor>& images,
                                                 const std::string& layers_regex, const StatusLineFn& log) {
  if (images.empty()) return invalid_argument("the error split needs at least one image");
  std::optional<std::regex> only;
  if (!layers_regex.empty()) {
    try {
      only.emplace(layers_regex, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return invalid_argument("bad layer regex '" + layers_regex + "': " + e.what());
    }
  }
  const BuildOptions fp32_options = fp32_reference_options(int8_options);
  QYOLO_ASSIGN_OR_RETURN(auto fp32, build_engine_with_weights(onnx_path, fp32_options, {}));
  QYOLO_ASSIGN_OR_RETURN(auto all_int8, build_engine_with_weights(onnx_path, int8_options, base));
  QYOLO_ASSIGN_OR_RETURN(auto ref, run_all(*fp32, images));
  QYOLO_ASSIGN_OR_RETURN(WeightOverrides rounded, rounded_int8_weights(*all_int8));
  for (const auto& [name, t] : base)
    if (!rounded.count(name)) rounded[name] = t;  // refined biases stay in the weights-only network
  QYOLO_ASSIGN_OR_RETURN(auto weights_of, int8_conv_weights(*all_int8));

  std::vector<ErrorSplit> rows;
  {  // Whole network: every INT8 conv at once.
    QYOLO_ASSIGN_OR_RETURN(auto w_engine, build_engine_with_weights(onnx_path, fp32_options, rounded));
    QYOLO_ASSIGN_OR_RETURN(auto w_out, run_all(*w_engine, images));
    QYOLO_ASSIGN_OR_RETURN(auto q_out, run_all(*all_int8, images));
    ErrorSplit all{"(all INT8 convs)"};
    QYOLO_ASSIGN_OR_RETURN(all.nsr_weights, nsr(ref, w_out));
    QYOLO_ASSIGN_OR_RETURN(all.nsr_activations, nsr(w_out, q_out));
    QYOLO_ASSIGN_OR_RETURN(all.nsr_both, nsr(ref, q_out));
    rows.push_back(all);
  }
  std::vector<ErrorSplit> convs;
  QYOLO_ASSIGN_OR_RETURN(std::vector<LayerSensitivity> names, int8_convs(*all_int8));
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph fg,
                         fp32->impl().prepare(fp32->profile().opt));  // the model's weights
  size_t k = 0;
  for (const auto& l : names) {
    ++k;
    if (only && !std::regex_search(l.node, *only)) continue;
    auto w = weights_of.find(l.node);
    if (w == weights_of.end()) continue;
    const WeightOverrides one_rounded = {
        {w->second, fake_quantize_weights(fg.graph.initializers.at(w->second))}};
    BuildOptions alone = int8_options;
    const std::string others = "^(?!" + exact_names_regex({l.node}).substr(1) + ")";  // all but this conv
    alone.float_layers_regex = int8_options.float_layers_regex.empty()
                                   ? others
                                   : "(?:" + int8_options.float_layers_regex + ")|" + others;
    QYOLO_ASSIGN_OR_RETURN(auto e_w, build_engine_with_weights(onnx_path, fp32_options, one_rounded));
    QYOLO_ASSIGN_OR_RETURN(auto e_a, build_engine_with_weights(onnx_path, alone, one_rounded));
    QYOLO_ASSIGN_OR_RETURN(auto e_b, build_engine_with_weights(onnx_path, alone, {}));
    QYOLO_ASSIGN_OR_RETURN(auto o_w, run_all(*e_w, images));
    QYOLO_ASSIGN_OR_RETURN(auto o_a, run_all(*e_a, images));
    QYOLO_ASSIGN_OR_RETURN(auto o_b, run_all(*e_b, images));
    ErrorSplit s{l.node};
    QYOLO_ASSIGN_OR_RETURN(s.nsr_weights, nsr(ref, o_w));
    QYOLO_ASSIGN_OR_RETURN(s.nsr_activations, nsr(o_w, o_a));
    QYOLO_ASSIGN_OR_RETURN(s.nsr_both, nsr(ref, o_b));
    if (log) {
      char line[300];
      std::snprintf(line, sizeof line, "split %zu/%zu: %s weights %.3g activations %.3g both %.3g", k,
                    names.size(), l.node.c_str(), s.nsr_weights, s.nsr_activations, s.nsr_both);
      log(line);
    }
    convs.push_back(s);
  }
  std::stable_sort(convs.begin(), convs.end(),
                   [](const ErrorSplit& a, const ErrorSplit& b) { return a.nsr_both > b.nsr_both; });
  rows.insert(rows.end(), convs.begin(), convs.end());
  return rows;
}

}  // namespace qyolo
