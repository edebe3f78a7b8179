#include "onnx/onnx_export.h"

#include <filesystem>
#include <fstream>

#include "ir/file_io.h"
#include "onnx/onnx_pb.h"

namespace qyolo {

namespace {

int32_t onnx_dtype(DataType t) {
  switch (t) {
    case DataType::kFloat32:
      return onnx::TensorProto::FLOAT;
    case DataType::kFloat16:
      return onnx::TensorProto::FLOAT16;
    case DataType::kInt8:
      return onnx::TensorProto::INT8;
    case DataType::kUInt8:
      return onnx::TensorProto::UINT8;
    case DataType::kInt32:
      return onnx::TensorProto::INT32;
    case DataType::kInt64:
      return onnx::TensorProto::INT64;
    case DataType::kBool:
      return onnx::TensorProto::BOOL;
  }
  return onnx::TensorProto::UNDEFINED;
}

void to_proto(const std::string& name, const Tensor& t, onnx::TensorProto* p) {
  p->set_name(name);
  p->set_data_type(onnx_dtype(t.dtype()));
  for (int64_t d : t.shape()) p->add_dims(d);
  p->set_raw_data(std::string(static_cast<const char*>(t.raw()), t.nbytes()));
}

void value_info(const ValueInfo& v, onnx::ValueInfoProto* p) {
  p->set_name(v.name);
  auto* tt = p->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx_dtype(v.dtype));
  auto* shape = tt->mutable_shape();
  for (const Dim& d : v.dims) {
    auto* dim = shape->add_dim();
    if (d.is_static())
      dim->set_dim_value(d.value);
    else
      dim->set_dim_param(d.param);
  }
}

void attribute(const std::string& key, const AttrValue& v, onnx::AttributeProto* a) {
  a->set_name(key);
  if (auto* i = std::get_if<int64_t>(&v)) {
    a->set_type(onnx::AttributeProto::INT), a->set_i(*i);
  } else if (auto* f = std::get_if<float>(&v)) {
    a->set_type(onnx::AttributeProto::FLOAT), a->set_f(*f);
  } else if (auto* s = std::get_if<std::string>(&v)) {
    a->set_type(onnx::AttributeProto::STRING), a->set_s(*s);
  } else if (auto* is = std::get_if<std::vector<int64_t>>(&v)) {
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : *is) a->add_ints(x);
  } else if (auto* fs = std::get_if<std::vector<float>>(&v)) {
    a->set_type(onnx::AttributeProto::FLOATS);
    for (float x : *fs) a->add_floats(x);
  } else if (auto* ss = std::get_if<std::vector<std::string>>(&v)) {
    a->set_type(onnx::AttributeProto::STRINGS);
    for (const auto& x : *ss) a->add_strings(x);
  } else if (auto* t = std::get_if<Tensor>(&v)) {
    a->set_type(onnx::AttributeProto::TENSOR);
    to_proto("", *t, a->mutable_t());
  }
}

}  // namespace

Result<std::string> onnx_bytes_from_graph(const Graph& g, const std::string& producer) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name(producer);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(g.opset);
  for (const auto& [k, v] : g.metadata) {
    auto* kv = m.add_metadata_props();
    kv->set_key(k);
    kv->set_value(v);
  }
  auto* gp = m.mutable_graph();
  gp->set_name("qyolo");
  for (const auto& in : g.inputs) value_info(in, gp->add_input());
  for (const auto& out : g.outputs) value_info(out, gp->add_output());
  for (const auto& [name, t] : g.initializers) to_proto(name, t, gp->add_initializer());
  for (const auto& n : g.nodes) {
    if (!n.domain.empty())
      return unsupported(n.describe() + ": domain '" + n.domain +
                         "' cannot be written (qyolo writes ai.onnx only)");
    auto* np = gp->add_node();
    np->set_name(n.name);
    np->set_op_type(n.op_type);
    for (const auto& i : n.inputs) np->add_input(i);
    for (const auto& o : n.outputs) np->add_output(o);
    for (const auto& [k, v] : n.attrs) attribute(k, v, np->add_attribute());
  }
  std::string bytes;
  if (!m.SerializeToString(&bytes)) return internal_error("ONNX serialisation failed (model over 2 GiB?)");
  return bytes;
}

Status write_onnx(const Graph& g, const std::string& path, const std::string& producer) {
  QYOLO_ASSIGN_OR_RETURN(std::string bytes, onnx_bytes_from_graph(g, producer));
  return write_file_atomically(path, bytes);
}

}  // namespace qyolo
