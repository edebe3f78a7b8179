#include "ir/ops/constant.h"

#include "ir/op_registry.h"

namespace qyolo {

Result<ConstantAttrs> ConstantAttrs::parse(const Node& node, int64_t opset) {
  if (node.attrs.size() != 1)
    return invalid_argument(node.describe() + ": needs exactly one value attribute, has " +
                            std::to_string(node.attrs.size()));
  const std::string& key = node.attrs.begin()->first;
  ConstantAttrs a;
  if (key == "value") {
    QYOLO_ASSIGN_OR_RETURN(a.value, node.attr_tensor("value"));
  } else if (key == "value_float") {
    QYOLO_ASSIGN_OR_RETURN(float v, node.attr_float(key));
    a.value = Tensor::scalar<float>(v);
  } else if (key == "value_int") {
    QYOLO_ASSIGN_OR_RETURN(int64_t v, node.attr_int(key));
    a.value = Tensor::scalar<int64_t>(v);
  } else if (key == "value_floats") {
    QYOLO_ASSIGN_OR_RETURN(auto v, node.attr_floats(key));
    a.value = Tensor::from_vector<float>({static_cast<int64_t>(v.size())}, v);
  } else if (key == "value_ints") {
    QYOLO_ASSIGN_OR_RETURN(auto v, node.attr_ints(key));
    a.value = Tensor::from_vector<int64_t>({static_cast<int64_t>(v.size())}, v);
  } else {
    return unsupported(node.describe() + ": attribute '" + key + "' is not supported");
  }
  return a;
}

Status infer_constant(InferContext& ctx) {
  QYOLO_ASSIGN_OR_RETURN(ConstantAttrs a, ConstantAttrs::parse(ctx.node, ctx.opset));
  ctx.outputs[0].dtype = a.value.dtype();
  ctx.outputs[0].shape = a.value.shape();
  ctx.outputs[0].value = std::move(a.value);
  return Status::ok();
}

}  // namespace qyolo
