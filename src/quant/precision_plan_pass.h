// Makes an engine's precision plan (src/ir/precision_plan.h) and lowers it onto a prepared graph.
//
// make_precision_plan: the rules, on the prepared float graph (graph passes done, nothing
// quantised): in an INT8 build every Conv with float constant weights whose input has a scale (a
// calibrated activation scale, or the model's own Q->DQ pair in front of it) runs INT8, unless its
// name matches the float-layers regex; a Q/DQ model's DequantizeLinear matching that regex bypasses
// its pair (the tensor stays float). On the CPU the plan also says which values stay int8 between
// layers (src/quant/int8_dataflow.h). A cuda build then refines the plan with what the backend
// chose (refine_precision_plan: its per-layer INT8/FP16 timing, convs it cannot run in INT8).
//
// apply_precision_plan: the lowering every backend shares: INT8 convs get their input scale
// (attribute qyolo_input_scale; qyolo_residual_scale for a fused residual with a scale), Q/DQ pairs
// in front of them fold into them, bypassed pairs go. It decides nothing: a plan that does not fit
// the graph (a conv without an entry, an entry for a node the graph lacks, INT8 on a conv that
// cannot run it) is an error naming `where` (the engine file or model) and the node.
#pragma once

#include <map>
#include <string>

#include "ir/precision_plan.h"
#include "passes/specialize.h"

namespace qyolo {

struct PlanRules {
  bool int8 = false;                                     // an INT8 build
  NodePrecision float_precision = NodePrecision::kFp32;  // everything not INT8
  std::string float_layers_regex;                        // INT8: nodes matching stay float
  bool cpu_int8_dataflow = false;                        // INT8 on the CPU: int8 between layers
  // INT8 convs read inputs with a known lower bound lo > -threshold (SiLU outputs, their max-pools,
  // resizes and concats) on the asymmetric grid over [lo, threshold] (src/quant/quant_params.h),
  // threshold = 127 * the calibrated scale; the others keep the symmetric one. CPU only.
  bool asymmetric_activations = false;
};

// Lower bounds of the float values that are bounded below by construction, on a prepared graph
// (fused SiLU -0.2785 times the largest output multiplier, fused sigmoid and ReLU 0, plus a fused
// residual's bound) or an imported one (Sigmoid and Relu 0, SiLU as exported, Mul(x, Sigmoid(x)));
// MaxPool, nearest Resize, Identity and Reshape keep their input's, a Concat the least of its
// inputs', an Add the sum. Values not listed have no known bound.
std::map<std::string, double> activation_lower_bounds(const Graph& g);

Result<PrecisionPlan> make_precision_plan(const SpecializedGraph& float_graph,
                                          const std::map<std::string, float>& scales, const PlanRules& rules);

// Sets the plan's conv precisions to the backend's `chosen` ones (by conv name; it may only take
// INT8 away) and keeps the tensor entries the remaining INT8 convs read. `float_graph` is the one
// the plan was made on.
Status refine_precision_plan(PrecisionPlan& plan, const SpecializedGraph& float_graph,
                             const std::map<std::string, NodePrecision>& chosen);

Status apply_precision_plan(SpecializedGraph& sg, const PrecisionPlan& plan, const std::string& where);

// CPU lowering of the tensors the plan stores int8 (after apply_precision_plan): marks them and
// their producers as src/quant/int8_dataflow.h describes; an error where a producer cannot write
// int8 or a consumer cannot read it at that scale.
Status apply_int8_storage(SpecializedGraph& sg, const PrecisionPlan& plan, const std::string& where);

// Conv counts and multiply-accumulates per precision on a prepared graph, for reports.
struct PlanCounts {
  int convs[3] = {0, 0, 0};  // by NodePrecision
  double macs[3] = {0, 0, 0};
  int int8_tensors = 0;  // tensors stored int8 between layers
};
PlanCounts count_plan(const PrecisionPlan& plan, const SpecializedGraph& sg);
// "60 convs: 57 int8, 3 fp16 (96.1% of conv MACs in int8)".
std::string plan_summary(const PrecisionPlan& plan, const SpecializedGraph& sg);

}  // namespace qyolo
