// Fuzz target: ONNX import + specialisation (issue 17). Structure-aware: the custom mutator parses
// the input as a ModelProto and perturbs its fields (dims, attributes, data lengths, types, wiring,
// opset), falling back to libFuzzer's byte mutations for inputs that do not parse.
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <string>

#include "ir/shape_arith.h"
#include "onnx/onnx_import.h"
#include "onnx/onnx_pb.h"
#include "passes/specialize.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

using Rng = std::mt19937_64;

int64_t interesting_int(Rng& rng, int64_t old) {
  static const int64_t kValues[] = {0,
                                    1,
                                    2,
                                    3,
                                    -1,
                                    -2,
                                    255,
                                    256,
                                    1 << 16,
                                    int64_t{1} << 31,
                                    (int64_t{1} << 31) - 1,
                                    int64_t{1} << 32,
                                    int64_t{1} << 40,
                                    int64_t{1} << 62,
                                    INT64_MAX,
                                    INT64_MIN,
                                    INT64_MAX - 1,
                                    -(int64_t{1} << 62)};
  switch (rng() % 4) {
    case 0:
      return static_cast<int64_t>(static_cast<uint64_t>(old) + rng() % 5 - 2);  // wraps, no UB
    case 1:
      return static_cast<int64_t>(static_cast<uint64_t>(old) * 2);
    default:
      return kValues[rng() % (sizeof(kValues) / sizeof(kValues[0]))];
  }
}

float interesting_float(Rng& rng) {
  static const float kValues[] = {0.f,
                                  -0.f,
                                  1.f,
                                  -1.f,
                                  0.5f,
                                  1e-40f,
                                  1e30f,
                                  -1e30f,
                                  3.4e38f,
                                  std::numeric_limits<float>::infinity(),
                                  std::numeric_limits<float>::quiet_NaN()};
  return kValues[rng() % (sizeof(kValues) / sizeof(kValues[0]))];
}

template <typename Repeated>
auto* pick(Repeated* r, Rng& rng) {
  return r->Mutable(static_cast<int>(rng() % static_cast<uint64_t>(r->size())));
}

void mutate_dims(google::protobuf::RepeatedField<int64_t>* dims, Rng& rng) {
  if (dims->empty() || rng() % 5 == 0) {
    dims->Add(interesting_int(rng, 1));
  } else if (rng() % 5 == 0) {
    dims->RemoveLast();
  } else {
    int64_t* d = pick(dims, rng);
    *d = interesting_int(rng, *d);
  }
}

void mutate_tensor(onnx::TensorProto* t, Rng& rng) {
  switch (rng() % 6) {
    case 0:
      mutate_dims(t->mutable_dims(), rng);
      break;
    case 1: {  // data length: cut, grow or drop the payload
      std::string* raw = t->mutable_raw_data();
      const size_t n = raw->size();
      if (rng() % 2)
        raw->resize(n ? rng() % n : 0);
      else
        raw->append(static_cast<size_t>(rng() % 64 + 1), '\x7f');
      break;
    }
    case 2:
      t->clear_raw_data();
      t->add_float_data(interesting_float(rng));
      break;
    case 3:
      t->set_data_type(static_cast<int32_t>(rng() % 17));
      break;
    case 4:
      t->add_int64_data(interesting_int(rng, 0));
      break;
    default: {  // external data pointing somewhere odd
      t->set_data_location(onnx::TensorProto::EXTERNAL);
      auto* kv = t->add_external_data();
      static const char* kKeys[] = {"location", "offset", "length"};
      static const char* kVals[] = {"../../etc/passwd",     "/dev/zero", "x.bin", "-1",
                                    "99999999999999999999", "0",         "abc"};
      kv->set_key(kKeys[rng() % 3]);
      kv->set_value(kVals[rng() % 7]);
      break;
    }
  }
}

void mutate_attribute(onnx::AttributeProto* a, Rng& rng) {
  switch (a->type()) {
    case onnx::AttributeProto::INT:
      a->set_i(interesting_int(rng, a->i()));
      return;
    case onnx::AttributeProto::FLOAT:
      a->set_f(interesting_float(rng));
      return;
    case onnx::AttributeProto::INTS:
      if (a->ints_size() && rng() % 4) {
        int64_t* v = pick(a->mutable_ints(), rng);
        *v = interesting_int(rng, *v);
      } else if (rng() % 2) {
        a->add_ints(interesting_int(rng, 1));
      } else {
        a->clear_ints();
      }
      return;
    case onnx::AttributeProto::FLOATS:
      a->add_floats(interesting_float(rng));
      return;
    case onnx::AttributeProto::TENSOR:
      mutate_tensor(a->mutable_t(), rng);
      return;
    default:
      a->set_type(static_cast<onnx::AttributeProto_AttributeType>(rng() % 15));
      return;
  }
}

void mutate_value_info(onnx::ValueInfoProto* v, Rng& rng) {
  auto* shape = v->mutable_type()->mutable_tensor_type()->mutable_shape();
  if (shape->dim_size() == 0 || rng() % 6 == 0) {
    shape->add_dim()->set_dim_value(interesting_int(rng, 1));
    return;
  }
  auto* d = pick(shape->mutable_dim(), rng);
  if (rng() % 5 == 0)
    d->set_dim_param("n");
  else
    d->set_dim_value(interesting_int(rng, d->dim_value()));
}

void mutate_node(onnx::GraphProto* g, Rng& rng) {
  onnx::NodeProto* n = pick(g->mutable_node(), rng);
  static const char* kOps[] = {
      "Conv",    "Reshape",   "Resize",          "Slice",   "Concat",         "Split",  "Tile",
      "Expand",  "Range",     "ConstantOfShape", "MaxPool", "AveragePool",    "Gather", "Transpose",
      "Flatten", "Unsqueeze", "Squeeze",         "Softmax", "QuantizeLinear", "Add",    "Where"};
  switch (rng() % 6) {
    case 0:
      if (n->attribute_size()) mutate_attribute(pick(n->mutable_attribute(), rng), rng);
      break;
    case 1:
      n->set_op_type(kOps[rng() % (sizeof(kOps) / sizeof(kOps[0]))]);
      break;
    case 2:  // rewire an input to another value
      if (n->input_size() && g->node_size()) {
        const auto& src = g->node(static_cast<int>(rng() % static_cast<uint64_t>(g->node_size())));
        if (src.output_size()) *pick(n->mutable_input(), rng) = src.output(0);
      }
      break;
    case 3:
      if (n->input_size() && rng() % 2)
        n->mutable_input()->RemoveLast();
      else
        n->add_input(n->input_size() ? n->input(0) : "");
      break;
    case 4:
      if (n->attribute_size())
        n->mutable_attribute()->DeleteSubrange(
            static_cast<int>(rng() % static_cast<uint64_t>(n->attribute_size())), 1);
      break;
    default: {
      auto* a = n->add_attribute();
      static const char* kNames[] = {"pads", "strides", "dilations", "kernel_shape",
                                     "axis", "axes",    "group",     "perm"};
      a->set_name(kNames[rng() % 8]);
      a->set_type(rng() % 2 ? onnx::AttributeProto::INTS : onnx::AttributeProto::INT);
      if (a->type() == onnx::AttributeProto::INT)
        a->set_i(interesting_int(rng, 1));
      else
        a->add_ints(interesting_int(rng, 1));
      break;
    }
  }
}

void mutate_model(onnx::ModelProto& m, Rng& rng) {
  onnx::GraphProto* g = m.mutable_graph();
  const int rounds = 1 + static_cast<int>(rng() % 3);
  for (int r = 0; r < rounds; ++r) {
    switch (rng() % 5) {
      case 0:
        if (g->initializer_size()) mutate_tensor(pick(g->mutable_initializer(), rng), rng);
        break;
      case 1:
        if (g->input_size()) mutate_value_info(pick(g->mutable_input(), rng), rng);
        break;
      case 2:
        if (g->node_size()) mutate_node(g, rng);
        break;
      case 3:
        if (m.opset_import_size())
          pick(m.mutable_opset_import(), rng)->set_version(static_cast<int64_t>(rng() % 24));
        break;
      default:
        if (g->output_size()) mutate_value_info(pick(g->mutable_output(), rng), rng);
        break;
    }
  }
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  Rng rng(seed);
  if (rng() % 8 != 0) {
    onnx::ModelProto m;
    if (m.ParseFromArray(data, static_cast<int>(size)) && m.has_graph()) {
      mutate_model(m, rng);
      const std::string out = m.SerializeAsString();
      if (out.size() <= max_size) {
        std::copy(out.begin(), out.end(), data);
        return out.size();
      }
    }
  }
  return LLVMFuzzerMutate(data, size, max_size);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto g = qyolo::import_onnx_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz.onnx",
                                    "/nonexistent-fuzz-dir");
  if (!g) return 0;
  // Specialise at the declared input shapes; a dynamic dim gets a small value.
  std::map<std::string, qyolo::Shape> shapes;
  for (const auto& in : g->inputs) {
    qyolo::Shape s;
    for (const auto& d : in.dims)
      s.push_back(d.is_static() ? d.value : (s.size() == 1 ? 3 : s.empty() ? 1 : 32));
    shapes[in.name] = s;
  }
  auto sg = qyolo::specialize(*g, shapes);
  (void)sg;
  return 0;
}
