#include "quant/quantize_graph.h"

#include <cmath>
#include <set>

#include "calib/calib_cache.h"
#include "quant/precision_plan_pass.h"

namespace qyolo {

Status quantize_graph(SpecializedGraph& sg, const std::map<std::string, float>& scales,
                      const QuantizeOptions& options, int* num_int8) {
  PlanRules rules;
  rules.int8 = true;
  rules.float_layers_regex = options.float_layers_regex;
  rules.asymmetric_activations = options.asymmetric_activations;
  QYOLO_ASSIGN_OR_RETURN(PrecisionPlan plan, make_precision_plan(sg, scales, rules));
  QYOLO_RETURN_IF_ERROR(apply_precision_plan(sg, plan, sg.graph.source_path));
  if (num_int8) {
    *num_int8 = 0;
    for (const auto& [name, p] : plan.nodes) *num_int8 += p == NodePrecision::kInt8;
  }
  return Status::ok();
}

Result<std::map<std::string, float>> load_activation_scales(const std::string& path, const Graph& graph) {
  QYOLO_ASSIGN_OR_RETURN(CalibrationTable table, read_calibration_file(path));
  std::set<std::string> names;
  for (const auto& in : graph.inputs) names.insert(in.name);
  for (const auto& n : graph.nodes)
    for (const auto& o : n.outputs) names.insert(o);
  size_t known = 0;
  std::string first_unknown;
  for (const auto& [name, scale] : table.scales) {
    if (names.count(name))
      ++known;
    else if (first_unknown.empty())
      first_unknown = name;
    if (!(scale >= 0.f) || std::isinf(scale))
      return corrupt("calibration file '" + path + "': tensor '" + name + "' has invalid scale " +
                     std::to_string(scale));
  }
  if (known == 0)
    return invalid_argument("calibration file '" + path + "' does not belong to model '" + graph.source_path +
                            "': none of its " + std::to_string(table.scales.size()) +
                            " tensor names exist in the model (first: '" + first_unknown + "')");
  return table.scales;
}

}  // namespace qyolo
