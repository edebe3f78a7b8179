// _qyolo: Engine (build, load, save, info) and ExecutionContext (infer on numpy arrays).
#include "qyolo/engine.h"

#include <memory>
#include <optional>

#include "convert.h"

namespace qyolo::python {

namespace {

// A context keeps its engine alive.
struct Context {
  std::shared_ptr<const Engine> engine;
  std::unique_ptr<ExecutionContext> ctx;
};

py::dict info_dict(const Engine& e) {
  const ModelInfo& i = e.info();
  const BuildOptions& o = e.options();
  const ShapeProfile p = e.profile();
  py::dict d;
  d["source"] = i.source;
  d["input_name"] = i.input_name;
  d["input_dims"] = i.input_dims;
  d["output_names"] = i.output_names;
  d["class_names"] = i.class_names;
  d["task"] = i.task;
  d["stride"] = i.stride;
  d["opset"] = i.opset;
  d["has_qdq"] = i.has_qdq;
  d["device"] = device_name(o.device);
  d["precision"] = precision_name(o.precision);
  d["int8_fp16"] = o.int8_fp16;
  d["calibration_file"] = o.calibration_file;
  d["float_layers"] = o.float_layers_regex;
  d["float_outputs"] = o.float_outputs;
  d["asymmetric_activations"] = o.asymmetric_activations;
  d["input_format"] = input_format_name(o.input_format);
  d["profile"] =
      py::make_tuple(py::tuple(py::cast(p.min)), py::tuple(py::cast(p.opt)), py::tuple(py::cast(p.max)));
  return d;
}

EngineHandle build(const std::string& onnx, const std::string& precision, const std::string& device,
                   const std::string& cache, const std::string& float_layers, bool int8_fp16, bool int8_all,
                   const std::optional<std::vector<Shape>>& profile, bool float_outputs,
                   const std::string& input_format) {
  BuildOptions o;
  o.device = value_or_throw(parse_device(device));
  o.precision = value_or_throw(parse_precision(precision));
  o.calibration_file = cache;
  o.float_layers_regex = float_layers;
  o.int8_fp16 = int8_fp16;
  o.int8_all = int8_all;
  o.float_outputs = float_outputs;
  o.input_format = value_or_throw(parse_input_format(input_format));
  if (profile) {
    if (profile->size() != 3)
      throw StatusError(invalid_argument("profile: expected (min, opt, max) shapes, got " +
                                         std::to_string(profile->size()) + " shapes"));
    o.profile = ShapeProfile{(*profile)[0], (*profile)[1], (*profile)[2]};
  }
  py::gil_scoped_release release;
  return EngineHandle{value_or_throw(Engine::build(onnx, o))};
}

// {"float_precision": str, "nodes": {name: "fp32"|"fp16"|"int8"},
//  "tensors": {name: {"storage": "int8"|"float32"|..., "scale": float, "zero_point": int}}}
py::dict plan_dict(const Engine& e) {
  const EnginePlan plan = e.precision_plan();
  py::dict nodes, tensors;
  for (const auto& n : plan.nodes) nodes[py::str(n.name)] = n.precision;
  for (const auto& t : plan.tensors) {
    py::dict d;
    d["storage"] = dtype_name(t.storage);
    d["scale"] = t.scale;
    d["zero_point"] = t.zero_point;  // real = scale * (q - zero_point); 0: symmetric
    tensors[py::str(t.name)] = d;
  }
  py::dict d;
  d["float_precision"] = plan.float_precision;
  d["nodes"] = nodes;
  d["tensors"] = tensors;
  return d;
}

py::dict infer(Context& c, const py::object& inputs) {
  const std::string& input_name = c.engine->info().input_name;
  py::object array = inputs;
  if (py::isinstance<py::dict>(inputs)) {
    py::dict d = inputs;
    for (auto item : d) {
      const std::string key = py::str(item.first);
      if (key != input_name)
        throw StatusError(invalid_argument(
            "input '" + key + "' is not an input of the model (its input is '" + input_name + "')"));
    }
    if (!d.contains(input_name))
      throw StatusError(invalid_argument("no array for the model's input '" + input_name + "'"));
    array = d[py::str(input_name)];
  }
  // uint8-nhwc engines take the letterboxed bytes as they are (no float conversion here).
  Tensor input = c.engine->options().input_format == InputFormat::kUint8Nhwc
                     ? uint8_tensor_from(array, "input '" + input_name + "'")
                     : float_tensor_from(array, "input '" + input_name + "'");
  std::vector<Tensor> outputs;
  {
    py::gil_scoped_release release;  // other Python threads run while the network does
    check(c.ctx->run(input, outputs));
  }
  py::dict out;
  const auto& names = c.engine->info().output_names;
  for (size_t i = 0; i < outputs.size(); ++i)
    out[py::str(i < names.size() ? names[i] : "output" + std::to_string(i))] =
        to_numpy(std::move(outputs[i]));
  return out;
}

py::list bindings(Context& c) {
  py::list l;
  for (const auto& b : value_or_throw(c.ctx->bindings())) {
    py::dict d;
    d["name"] = b.name;
    d["dtype"] = numpy_dtype(b.dtype);
    d["shape"] = py::tuple(py::cast(b.shape));
    d["is_input"] = b.is_input;
    l.append(d);
  }
  return l;
}

}  // namespace

void bind_engine(py::module_& m) {
  py::class_<EngineHandle>(m, "Engine")
      .def(
          "save", [](const EngineHandle& h, const std::string& path) { check(h.engine->save(path)); },
          py::arg("path"))
      .def_property_readonly("info", [](const EngineHandle& h) { return info_dict(*h.engine); })
      .def_property_readonly("precision_plan", [](const EngineHandle& h) { return plan_dict(*h.engine); })
      .def("create_context", [](const EngineHandle& h) {
        auto ctx = value_or_throw(h.engine->create_context());
        return std::make_shared<Context>(Context{h.engine, std::move(ctx)});
      });
  py::class_<Context, std::shared_ptr<Context>>(m, "ExecutionContext")
      .def("infer", &infer, py::arg("inputs"))
      .def(
          "set_input_shape", [](Context& c, const Shape& s) { check(c.ctx->set_input_shape(s)); },
          py::arg("shape"))
      .def_property_readonly("input_shape",
                             [](Context& c) { return py::tuple(py::cast(c.ctx->input_shape())); })
      .def("bindings", &bindings);
  m.def("build", &build, py::arg("onnx"), py::arg("precision") = "fp32", py::arg("device") = "cpu",
        py::arg("cache") = "", py::arg("float_layers") = "", py::arg("int8_fp16") = false,
        py::arg("int8_all") = false, py::arg("profile") = py::none(), py::arg("float_outputs") = false,
        py::arg("input_format") = "float32-nchw");
  m.def(
      "load",
      [](const std::string& path) {
        py::gil_scoped_release release;
        return EngineHandle{value_or_throw(Engine::load(path))};
      },
      py::arg("path"));
}

}  // namespace qyolo::python
