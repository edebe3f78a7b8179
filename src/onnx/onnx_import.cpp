#include "onnx/onnx_import.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ir/op_registry.h"
#include "ir/shape_arith.h"
#include "onnx/onnx_pb.h"
#include "onnx/qoperator.h"

namespace qyolo {

namespace {

Result<std::string> read_file_bytes(const std::string& path, const char* what) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return not_found(std::string(what) + " '" + path + "' does not exist");
  if (std::filesystem::is_directory(path, ec)) return invalid_argument(std::string(what) + " '" + path + "' is a directory");
  std::ifstream f(path, std::ios::binary);
  if (!f) return io_error("cannot open " + std::string(what) + " '" + path + "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Result<DataType> dtype_from_onnx(int32_t t, const std::string& where) {
  switch (t) {
    case onnx::TensorProto::FLOAT: return DataType::kFloat32;
    case onnx::TensorProto::FLOAT16: return DataType::kFloat16;
    case onnx::TensorProto::INT8: return DataType::kInt8;
    case onnx::TensorProto::UINT8: return DataType::kUInt8;
    case onnx::TensorProto::INT32: return DataType::kInt32;
    case onnx::TensorProto::INT64: return DataType::kInt64;
    case onnx::TensorProto::BOOL: return DataType::kBool;
    default:
      return unsupported(where + ": tensor element type " + std::to_string(t) + " (" +
                         onnx::TensorProto_DataType_Name(t) + ") is not supported");
  }
}

bool parse_protobuf(const std::string& bytes, google::protobuf::MessageLite& msg) {
  google::protobuf::io::ArrayInputStream raw(bytes.data(), static_cast<int>(bytes.size()));
  google::protobuf::io::CodedInputStream coded(&raw);
  coded.SetTotalBytesLimit(INT32_MAX);
  return msg.ParseFromCodedStream(&coded) && coded.ConsumedEntireMessage();
}

Result<AttrValue> convert_attribute(const onnx::AttributeProto& a, const std::string& where,
                                    const std::string& base_dir) {
  switch (a.type()) {
    case onnx::AttributeProto::INT: return AttrValue(static_cast<int64_t>(a.i()));
    case onnx::AttributeProto::FLOAT: return AttrValue(a.f());
    case onnx::AttributeProto::STRING: return AttrValue(a.s());
    case onnx::AttributeProto::INTS: return AttrValue(std::vector<int64_t>(a.ints().begin(), a.ints().end()));
    case onnx::AttributeProto::FLOATS: return AttrValue(std::vector<float>(a.floats().begin(), a.floats().end()));
    case onnx::AttributeProto::STRINGS:
      return AttrValue(std::vector<std::string>(a.strings().begin(), a.strings().end()));
    case onnx::AttributeProto::TENSOR: {
      QYOLO_ASSIGN_OR_RETURN(Tensor t, tensor_from_proto(a.t(), base_dir));
      return AttrValue(std::move(t));
    }
    default:
      return unsupported(where + ": attribute '" + a.name() + "' has unsupported type " +
                         onnx::AttributeProto_AttributeType_Name(a.type()));
  }
}

Result<ValueInfo> convert_value_info(const onnx::ValueInfoProto& v, const std::string& where) {
  ValueInfo info;
  info.name = v.name();
  if (!v.type().has_tensor_type()) return unsupported(where + ": value '" + v.name() + "' is not a tensor");
  const auto& tt = v.type().tensor_type();
  QYOLO_ASSIGN_OR_RETURN(info.dtype, dtype_from_onnx(tt.elem_type(), where + ": value '" + v.name() + "'"));
  if (tt.has_shape()) {
    for (const auto& d : tt.shape().dim()) {
      Dim dim;
      if (d.has_dim_value()) {
        if (d.dim_value() < 0)
          return corrupt(where + ": value '" + v.name() + "' has negative dimension " +
                         std::to_string(d.dim_value()) + " (dim " + std::to_string(info.dims.size()) + ")");
        dim.value = d.dim_value();
      } else {
        dim.param = d.dim_param();
      }
      info.dims.push_back(dim);
    }
  }
  return info;
}

}  // namespace

Result<Tensor> tensor_from_proto(const onnx::TensorProto& p, const std::string& base_dir) {
  std::string where = "tensor '" + p.name() + "'";
  QYOLO_ASSIGN_OR_RETURN(DataType dtype, dtype_from_onnx(p.data_type(), where));
  Shape shape(p.dims().begin(), p.dims().end());
  for (int64_t d : shape)
    if (d < 0) return corrupt(where + ": negative dimension in " + shape_str(shape));
  // Sizes are checked (overflow, cap, bytes present) before anything is allocated.
  auto nbytes_checked = checked_nbytes(shape, dtype, where);
  if (!nbytes_checked) return Status(StatusCode::kCorrupt, nbytes_checked.status().message());
  const size_t nbytes = static_cast<size_t>(*nbytes_checked);
  const size_t n = nbytes / dtype_size(dtype);

  if (p.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto& kv : p.external_data()) {
      int64_t* field = kv.key() == "offset" ? &offset : kv.key() == "length" ? &length : nullptr;
      if (kv.key() == "location") location = kv.value();
      if (field == nullptr) continue;
      const std::string& v = kv.value();
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), *field);
      if (ec != std::errc() || ptr != v.data() + v.size() || *field < 0)
        return corrupt(where + ": external data " + kv.key() + " '" + v + "' is not a non-negative integer");
    }
    // ONNX keeps external data next to the model: no absolute paths, no way out of the directory.
    const std::filesystem::path rel(location);
    if (location.empty() || rel.is_absolute() || std::find(rel.begin(), rel.end(), "..") != rel.end())
      return corrupt(where + ": external data location '" + location +
                     "' must be a relative path inside the model's directory");
    std::string file = (std::filesystem::path(base_dir) / rel).string();
    std::ifstream f(file, std::ios::binary);
    if (!f) return not_found(where + ": external data file '" + file + "' cannot be opened");
    if (length >= 0 && static_cast<size_t>(length) != nbytes)
      return corrupt(where + ": external data length " + std::to_string(length) + " != expected " + std::to_string(nbytes));
    std::error_code ec;
    const uintmax_t file_size = std::filesystem::file_size(file, ec);
    if (ec || static_cast<uintmax_t>(offset) > file_size ||
        file_size - static_cast<uintmax_t>(offset) < nbytes)
      return corrupt(where + ": external data file '" + file + "' has " + std::to_string(ec ? 0 : file_size) +
                     " bytes, offset " + std::to_string(offset) + " + " + std::to_string(nbytes) + " needed");
    Tensor t(dtype, shape);
    f.seekg(offset);
    f.read(static_cast<char*>(t.raw()), static_cast<std::streamsize>(nbytes));
    if (static_cast<size_t>(f.gcount()) != nbytes)
      return corrupt(where + ": external data file '" + file + "' is truncated");
    return t;
  }
  if (p.has_raw_data()) {
    if (p.raw_data().size() != nbytes)
      return corrupt(where + ": raw_data has " + std::to_string(p.raw_data().size()) + " bytes, shape " +
                     shape_str(shape) + " of " + dtype_name(dtype) + " needs " + std::to_string(nbytes));
    Tensor t = Tensor::uninitialized(dtype, shape);
    if (nbytes) std::memcpy(t.raw(), p.raw_data().data(), nbytes);
    return t;
  }
  const int typed_count = dtype == DataType::kFloat32 ? p.float_data_size()
                          : dtype == DataType::kInt64 ? p.int64_data_size()
                                                      : p.int32_data_size();
  if (static_cast<size_t>(typed_count) != n)
    return corrupt(where + ": has " + std::to_string(typed_count) + " values, shape " + shape_str(shape) +
                   " needs " + std::to_string(n));
  Tensor t = Tensor::uninitialized(dtype, shape);
  switch (dtype) {
    case DataType::kFloat32:
      std::copy(p.float_data().begin(), p.float_data().end(), t.data<float>());
      break;
    case DataType::kInt64:
      std::copy(p.int64_data().begin(), p.int64_data().end(), t.data<int64_t>());
      break;
    case DataType::kInt32:
    case DataType::kInt8:
    case DataType::kUInt8:
    case DataType::kBool:
    case DataType::kFloat16: {
      for (size_t i = 0; i < n; ++i) {
        int32_t v = p.int32_data(static_cast<int>(i));
        switch (dtype) {
          case DataType::kInt32: t.data<int32_t>()[i] = v; break;
          case DataType::kInt8: t.data<int8_t>()[i] = static_cast<int8_t>(v); break;
          case DataType::kUInt8: t.data<uint8_t>()[i] = static_cast<uint8_t>(v); break;
          case DataType::kBool: t.data<bool>()[i] = v != 0; break;
          default: t.data<uint16_t>()[i] = static_cast<uint16_t>(v); break;
        }
      }
      break;
    }
  }
  return t;
}

Result<Tensor> read_tensor_pb(const std::string& path) {
  QYOLO_ASSIGN_OR_RETURN(std::string bytes, read_file_bytes(path, "tensor file"));
  onnx::TensorProto proto;
  if (!parse_protobuf(bytes, proto)) return corrupt("tensor file '" + path + "' is not a valid TensorProto");
  return tensor_from_proto(proto, std::filesystem::path(path).parent_path().string());
}

Result<Graph> import_onnx_bytes(const std::string& bytes, const std::string& origin, const std::string& base_dir,
                                const ImportOptions& options) {
  onnx::ModelProto model;
  if (bytes.empty()) return corrupt("ONNX file '" + origin + "' is empty");
  if (!parse_protobuf(bytes, model))
    return corrupt("ONNX file '" + origin + "' is not a valid ONNX model (protobuf parse failed: truncated or not ONNX)");
  if (!model.has_graph() || model.graph().node_size() == 0)
    return corrupt("ONNX file '" + origin + "' has no graph nodes (not an ONNX model?)");

  Graph g;
  g.source_path = origin;
  for (const auto& op : model.opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") g.opset = op.version();
  if (g.opset == 0) return corrupt(origin + ": no ai.onnx opset_import");
  if (g.opset < options.min_opset || g.opset > options.max_opset)
    return unsupported(origin + ": opset " + std::to_string(g.opset) + " is outside the supported range " +
                       std::to_string(options.min_opset) + ".." + std::to_string(options.max_opset));
  for (const auto& kv : model.metadata_props()) g.metadata[kv.key()] = kv.value();

  const auto& gp = model.graph();
  for (const auto& init : gp.initializer()) {
    auto t = tensor_from_proto(init, base_dir);
    if (!t) return t.status().with_context(origin);
    g.initializers[init.name()] = std::move(t).value();
  }
  for (const auto& in : gp.input()) {
    if (g.initializers.count(in.name())) continue;  // old exporters list initializers as inputs
    QYOLO_ASSIGN_OR_RETURN(ValueInfo vi, convert_value_info(in, origin + ": graph input"));
    g.inputs.push_back(std::move(vi));
  }
  for (const auto& out : gp.output()) {
    QYOLO_ASSIGN_OR_RETURN(ValueInfo vi, convert_value_info(out, origin + ": graph output"));
    g.outputs.push_back(std::move(vi));
  }
  if (g.outputs.empty()) return corrupt(origin + ": graph has no outputs");

  std::map<std::string, int> name_count;
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& np = gp.node(i);
    Node node;
    node.op_type = np.op_type();
    node.domain = np.domain() == "ai.onnx" ? "" : np.domain();
    node.name = np.name().empty() ? np.op_type() + "_" + std::to_string(i) : np.name();
    if (name_count[node.name]++) node.name += "_" + std::to_string(i);
    node.inputs.assign(np.input().begin(), np.input().end());
    node.outputs.assign(np.output().begin(), np.output().end());
    std::string where = origin + ": " + node.describe();
    // ONNX Runtime writes its quantizer's int16/int4-capable Q/DQ in its own domain; same semantics.
    if (node.domain == "com.microsoft" && (node.op_type == "QuantizeLinear" || node.op_type == "DequantizeLinear"))
      node.domain.clear();
    const bool qoperator = is_qoperator(node.op_type, node.domain);
    if (!node.domain.empty() && !qoperator)
      return unsupported(where + ": operator domain '" + node.domain + "' is not supported");
    // Qyolo* ops are qyolo's own fused forms, made by its passes; a file naming one is not ONNX.
    if (!qoperator && (find_op(node.op_type) == nullptr || node.op_type.rfind("Qyolo", 0) == 0))
      return unsupported(where + ": operator '" + node.op_type + "' is not supported (run `qyolo ops` for the list)");
    for (const auto& a : np.attribute()) {
      QYOLO_ASSIGN_OR_RETURN(AttrValue v, convert_attribute(a, where, base_dir));
      node.attrs[a.name()] = std::move(v);
    }
    if (qoperator) {
      QYOLO_RETURN_IF_ERROR(rewrite_qoperator(node, g, where));
      continue;
    }
    g.nodes.push_back(std::move(node));
  }
  QYOLO_RETURN_IF_ERROR(g.toposort());
  return g;
}

Result<Graph> import_onnx(const std::string& path, const ImportOptions& options) {
  QYOLO_ASSIGN_OR_RETURN(std::string bytes, read_file_bytes(path, "ONNX file"));
  std::string base_dir = std::filesystem::path(path).parent_path().string();
  if (base_dir.empty()) base_dir = ".";
  return import_onnx_bytes(bytes, path, base_dir, options);
}

}  // namespace qyolo
