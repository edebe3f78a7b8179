#include "passes/image_input.h"

#include <algorithm>

#include "ir/ops/image_to_float.h"

namespace qyolo {

std::string float_image_name(const std::string& input) {
  return input + "/qyolo_float";
}

Status use_uint8_image_input(SpecializedGraph& g, const std::string& input) {
  auto in = std::find_if(g.graph.inputs.begin(), g.graph.inputs.end(),
                         [&](const ValueInfo& v) { return v.name == input; });
  auto desc = g.values.find(input);
  if (in == g.graph.inputs.end() || desc == g.values.end())
    return invalid_argument("uint8 image input: the graph has no input '" + input + "'");
  const Shape nchw = desc->second.shape;
  if (desc->second.dtype != DataType::kFloat32 || nchw.size() != 4)
    return unsupported("uint8 image input: input '" + input + "' is " + dtype_name(desc->second.dtype) + " " +
                       shape_str(nchw) + "; a float32 NCHW image is expected");
  for (const ValueInfo& o : g.graph.outputs)
    if (o.name == input)
      return unsupported("uint8 image input: input '" + input + "' is also a graph output");
  const std::string f = float_image_name(input);
  if (g.values.count(f)) return internal_error("uint8 image input: value '" + f + "' exists already");

  for (Node& n : g.graph.nodes) std::replace(n.inputs.begin(), n.inputs.end(), input, f);
  Node conv;
  conv.name = "qyolo/image_to_float";
  conv.op_type = kImageToFloatOp;
  conv.inputs = {input};
  conv.outputs = {f};
  g.graph.nodes.insert(g.graph.nodes.begin(), std::move(conv));

  g.values[f] = desc->second;
  ValueDesc bytes;
  bytes.dtype = DataType::kUInt8;
  bytes.shape = {nchw[0], nchw[2], nchw[3], nchw[1]};
  g.values[input] = bytes;
  in->dtype = DataType::kUInt8;
  const std::vector<Dim> d = in->dims;
  if (d.size() == 4) in->dims = {d[0], d[2], d[3], d[1]};
  return Status::ok();
}

}  // namespace qyolo
