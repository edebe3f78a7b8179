#include "quant/export_qdq.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "ir/file_io.h"
#include "onnx/onnx_pb.h"
#include "quant/quant_params.h"

namespace qyolo {

namespace {

onnx::TensorProto make_scalar(const std::string& name, int32_t type, float f, int32_t i) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(type);
  if (type == onnx::TensorProto::FLOAT)
    t.add_float_data(f);
  else
    t.add_int32_data(i);
  return t;
}

// Reads an int64 list attribute, removes it and returns it as an initializer input (opset 13 form).
void attr_to_input(onnx::GraphProto* g, onnx::NodeProto* n, const std::string& attr,
                   const std::string& init_name) {
  for (int i = 0; i < n->attribute_size(); ++i) {
    if (n->attribute(i).name() != attr) continue;
    onnx::TensorProto t;
    t.set_name(init_name);
    t.set_data_type(onnx::TensorProto::INT64);
    t.add_dims(n->attribute(i).ints_size());
    for (auto v : n->attribute(i).ints()) t.add_int64_data(v);
    *g->add_initializer() = t;
    n->mutable_attribute()->DeleteSubrange(i, 1);
    if (n->input_size() < 2)
      n->add_input(init_name);
    else
      n->set_input(1, init_name);
    return;
  }
}

Status upgrade_to_opset13(onnx::ModelProto& m) {
  int64_t opset = 0;
  for (auto& op : *m.mutable_opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") opset = op.version();
  if (opset >= 13) return Status::ok();
  auto* g = m.mutable_graph();
  for (int i = 0; i < g->node_size(); ++i) {
    auto* n = g->mutable_node(i);
    const std::string base = n->name().empty() ? n->op_type() + std::to_string(i) : n->name();
    if (n->op_type() == "Split")
      attr_to_input(g, n, "split", base + "/qyolo_split");
    else if (n->op_type() == "Squeeze" || n->op_type() == "Unsqueeze")
      attr_to_input(g, n, "axes", base + "/qyolo_axes");
    else if (n->op_type() == "ReduceSum" || n->op_type() == "Upsample" || n->op_type() == "Scatter")
      return unsupported("export-qdq: cannot upgrade op " + n->op_type() + " ('" + n->name() +
                         "') to opset 13");
  }
  for (auto& op : *m.mutable_opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") op.set_version(13);
  return Status::ok();
}

}  // namespace

Status export_qdq(const std::string& onnx_path, const std::map<std::string, float>& scales,
                  const std::string& out_path, QdqExportReport* report, const QdqExportOptions& options) {
  std::ifstream f(onnx_path, std::ios::binary);
  if (!f) return not_found("ONNX file '" + onnx_path + "' cannot be opened");
  std::stringstream ss;
  ss << f.rdbuf();
  onnx::ModelProto m;
  if (!m.ParseFromString(ss.str())) return corrupt("ONNX file '" + onnx_path + "' is not a valid ONNX model");
  QYOLO_RETURN_IF_ERROR(upgrade_to_opset13(m));
  auto* g = m.mutable_graph();
  QdqExportReport rep;

  std::map<std::string, int> init_index;
  for (int i = 0; i < g->initializer_size(); ++i) init_index[g->initializer(i).name()] = i;
  std::map<std::string, std::string> producer_op;
  for (const auto& n : g->node())
    for (const auto& o : n.output()) producer_op[o] = n.op_type();
  std::vector<onnx::NodeProto> new_nodes;
  std::map<std::string, std::string> dq_of;  // activation -> its DequantizeLinear output
  auto quantize_activation = [&](const std::string& x) -> std::string {
    if (auto it = dq_of.find(x); it != dq_of.end()) return it->second;
    auto s = scales.find(x);
    if (s == scales.end() || !(s->second > 0.f)) return "";
    std::string sn = x + "/qyolo_scale", zn = x + "/qyolo_zero_point";
    float scale = 0.f;
    int32_t zp = 0;  // int8 zero point of the engine's grid; uint8 stores zp + 128
    auto lo = options.lower_bounds.find(x);
    if (lo != options.lower_bounds.end() &&
        asymmetric_grid(lo->second, amax_from_scale(s->second), &scale, &zp)) {
      *g->add_initializer() = make_scalar(sn, onnx::TensorProto::FLOAT, scale, 0);
      *g->add_initializer() = make_scalar(zn, onnx::TensorProto::UINT8, 0.f, zp + 128);
      rep.asymmetric_activations++;
    } else {
      *g->add_initializer() = make_scalar(sn, onnx::TensorProto::FLOAT, s->second, 0);
      *g->add_initializer() = make_scalar(zn, onnx::TensorProto::INT8, 0.f, 0);
    }
    onnx::NodeProto q, dq;
    q.set_op_type("QuantizeLinear");
    q.set_name(x + "/QuantizeLinear");
    q.add_input(x), q.add_input(sn), q.add_input(zn);
    q.add_output(x + "/quantized");
    dq.set_op_type("DequantizeLinear");
    dq.set_name(x + "/DequantizeLinear");
    dq.add_input(x + "/quantized"), dq.add_input(sn), dq.add_input(zn);
    dq.add_output(x + "/dequantized");
    new_nodes.push_back(q);
    new_nodes.push_back(dq);
    rep.quantized_activations++;
    return dq_of[x] = x + "/dequantized";
  };

  std::set<std::string> done_weights;
  std::map<std::string, std::string> weight_dq;
  for (int i = 0; i < g->node_size(); ++i) {
    auto* n = g->mutable_node(i);
    if (n->op_type() == "Conv") {
      std::string xq = quantize_activation(n->input(0));
      if (xq.empty()) {
        rep.missing_scales++;
        continue;  // no activation scale: this conv stays float, so do its weights
      }
      n->set_input(0, xq);
      const std::string w = n->input(1);
      auto wi = init_index.find(w);
      if (wi == init_index.end()) continue;
      if (!weight_dq.count(w)) {
        const onnx::TensorProto& wt = g->initializer(wi->second);
        if (wt.data_type() != onnx::TensorProto::FLOAT)
          return unsupported("export-qdq: weight '" + w + "' is not float");
        std::vector<float> values;
        if (wt.has_raw_data()) {
          values.resize(wt.raw_data().size() / 4);
          std::memcpy(values.data(), wt.raw_data().data(), values.size() * 4);
        } else {
          values.assign(wt.float_data().begin(), wt.float_data().end());
        }
        const int64_t cout = wt.dims(0);
        const int64_t per = static_cast<int64_t>(values.size()) / cout;
        onnx::TensorProto q, s, z;
        q.set_name(w + "/qyolo_int8");
        q.set_data_type(onnx::TensorProto::INT8);
        for (auto d : wt.dims()) q.add_dims(d);
        s.set_name(w + "/qyolo_scale");
        s.set_data_type(onnx::TensorProto::FLOAT);
        s.add_dims(cout);
        z.set_name(w + "/qyolo_zero_point");
        z.set_data_type(onnx::TensorProto::INT8);
        z.add_dims(cout);
        std::string raw(values.size(), '\0');
        for (int64_t c = 0; c < cout; ++c) {
          float amax = 0.f;
          for (int64_t j = 0; j < per; ++j) amax = std::max(amax, std::fabs(values[c * per + j]));
          float sc = scale_from_amax(amax);
          s.add_float_data(sc);
          z.add_int32_data(0);
          for (int64_t j = 0; j < per; ++j)
            raw[c * per + j] = static_cast<char>(quantize_int8(values[c * per + j], sc));
        }
        q.set_raw_data(raw);
        *g->add_initializer() = q;
        *g->add_initializer() = s;
        *g->add_initializer() = z;
        onnx::NodeProto dq;
        dq.set_op_type("DequantizeLinear");
        dq.set_name(w + "/DequantizeLinear");
        dq.add_input(q.name()), dq.add_input(s.name()), dq.add_input(z.name());
        dq.add_output(w + "/dequantized");
        auto* axis = dq.add_attribute();
        axis->set_name("axis");
        axis->set_type(onnx::AttributeProto::INT);
        axis->set_i(0);
        new_nodes.push_back(dq);
        weight_dq[w] = w + "/dequantized";
        rep.quantized_weights++;
      }
      n->set_input(1, weight_dq[w]);
    } else if (n->op_type() == "Add" && n->input_size() == 2) {
      // Residual add (both inputs activations produced by layers, both with scales): TensorRT fuses
      // it into the conv epilogue only when both inputs carry Q/DQ.
      const std::string a = n->input(0), b = n->input(1);
      if (init_index.count(a) || init_index.count(b)) continue;
      if (!scales.count(a) || !scales.count(b)) continue;
      n->set_input(0, quantize_activation(a));
      n->set_input(1, quantize_activation(b));
      rep.residual_adds++;
    }
  }
  // Insert the new nodes first; ONNX requires a topological order, so re-sort: Q/DQ of an
  // activation must follow its producer. Build order: for each original node, emit the Q/DQ
  // nodes of its outputs right after it.
  std::map<std::string, std::vector<onnx::NodeProto>> after;  // activation -> its Q, DQ
  std::vector<onnx::NodeProto> weight_nodes;
  for (auto& n : new_nodes) {
    const std::string suffix = "/qyolo_int8";
    if (n.op_type() == "DequantizeLinear" && n.input(0).size() > suffix.size() &&
        n.input(0).compare(n.input(0).size() - suffix.size(), suffix.size(), suffix) == 0) {
      weight_nodes.push_back(n);
    } else if (n.op_type() == "QuantizeLinear") {
      after[n.input(0)].push_back(n);
    } else {
      std::string act = n.input(0).substr(0, n.input(0).size() - std::string("/quantized").size());
      after[act].push_back(n);
    }
  }
  google::protobuf::RepeatedPtrField<onnx::NodeProto> ordered;
  for (auto& n : weight_nodes) *ordered.Add() = n;
  std::set<std::string> graph_inputs;
  for (const auto& in : g->input()) graph_inputs.insert(in.name());
  for (const auto& in : graph_inputs)
    if (after.count(in))
      for (auto& n : after[in]) *ordered.Add() = n;
  for (const auto& n : g->node()) {
    *ordered.Add() = n;
    for (const auto& o : n.output())
      if (after.count(o))
        for (auto& qn : after[o]) *ordered.Add() = qn;
  }
  g->mutable_node()->Swap(&ordered);

  std::string bytes;
  if (!m.SerializeToString(&bytes)) return internal_error("export-qdq: serialising the model failed");
  QYOLO_RETURN_IF_ERROR(write_file_atomically(out_path, bytes, "Q/DQ model"));
  if (report) *report = rep;
  return Status::ok();
}

}  // namespace qyolo
