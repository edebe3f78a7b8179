// _qyolo: evaluate (COCO metrics, PR curves, confusion matrix) as a dict.
#include "qyolo/evaluate.h"

#include "convert.h"

namespace qyolo::python {

namespace {

py::dict evaluation_dict(const Evaluation& ev) {
  py::dict d;
  d["data"] = ev.data;
  d["images"] = ev.images;
  d["num_gt"] = ev.num_gt;
  d["num_dets"] = ev.num_dets;
  d["map50_95"] = ev.map;
  d["map50"] = ev.map50;
  d["map75"] = ev.map75;
  d["map_small"] = ev.map_small;
  d["map_medium"] = ev.map_medium;
  d["map_large"] = ev.map_large;
  d["ar1"] = ev.ar1;
  d["ar10"] = ev.ar10;
  d["ar100"] = ev.ar100;
  d["ar_small"] = ev.ar_small;
  d["ar_medium"] = ev.ar_medium;
  d["ar_large"] = ev.ar_large;
  d["summary"] = ev.summary;
  py::dict per_class;
  py::list classes;
  for (const auto& c : ev.classes) {
    py::dict cd;
    cd["id"] = c.category_id;
    cd["name"] = c.name;
    cd["num_gt"] = c.num_gt;
    cd["ap"] = c.ap;
    cd["ap50"] = c.ap50;
    cd["precision50"] =
        py::array_t<double>(static_cast<py::ssize_t>(c.precision50.size()), c.precision50.data());
    classes.append(cd);
    if (c.ap >= 0) per_class[py::str(c.name)] = py::dict(py::arg("ap") = c.ap, py::arg("ap50") = c.ap50);
  }
  d["per_class"] = per_class;  // as `qyolo eval --json`: classes with ground truth
  d["classes"] = classes;
  d["recall"] =
      py::array_t<double>(static_cast<py::ssize_t>(ev.recall_points.size()), ev.recall_points.data());
  d["precision50"] =
      py::array_t<double>(static_cast<py::ssize_t>(ev.precision50.size()), ev.precision50.data());
  const py::ssize_t n = static_cast<py::ssize_t>(ev.confusion.size());
  py::array_t<int64_t> cm({n, n});
  auto r = cm.mutable_unchecked<2>();
  for (py::ssize_t i = 0; i < n; ++i)
    for (py::ssize_t j = 0; j < n; ++j)
      r(i, j) = ev.confusion[static_cast<size_t>(i)][static_cast<size_t>(j)];
  d["confusion"] = cm;
  if (ev.results_files.empty()) {
    d["model"] = ev.model;
    d["device"] = ev.device;
    d["prepost_device"] = ev.prepost_device;
    d["precision"] = ev.precision;
    d["calibration"] = ev.calibration;
    d["head"] = ev.head;
    d["batch"] = ev.batch;
    d["imgsz"] = py::make_tuple(ev.input_h, ev.input_w);
    d["conf"] = ev.conf;
    d["iou"] = ev.iou;
    d["images_per_s"] = ev.images_per_s;
    d["network_ms_per_image"] = ev.network_ms;
  } else {
    d["results"] = ev.results_files;
  }
  return d;
}

}  // namespace

void bind_evaluate(py::module_& m) {
  m.def(
      "evaluate",
      [](const EngineHandle& e, const std::string& data, int input_h, int input_w, int batch, int limit,
         float conf, float iou, int max_det, const std::string& head, bool gpu_prepost,
         const std::string& save_results) {
        EvaluateOptions o;
        o.input_h = input_h;
        o.input_w = input_w;
        o.batch = batch;
        o.limit = limit;
        o.conf = conf;
        o.iou = iou;
        o.max_det = max_det;
        o.head = head;
        o.gpu_prepost = gpu_prepost;
        o.save_results = save_results;
        Result<Evaluation> r = invalid_argument("not run");
        {
          py::gil_scoped_release release;
          r = evaluate(e.engine, data, o);
        }
        return evaluation_dict(value_or_throw(std::move(r)));
      },
      py::arg("engine"), py::arg("data"), py::arg("input_h") = 0, py::arg("input_w") = 0,
      py::arg("batch") = 0, py::arg("limit") = 0, py::arg("conf") = 0.001f, py::arg("iou") = -1.f,
      py::arg("max_det") = 300, py::arg("head") = "", py::arg("gpu_prepost") = true,
      py::arg("save_results") = "");
  m.def(
      "evaluate_results",
      [](const std::vector<std::string>& files, const std::string& data, int limit) {
        EvaluateOptions o;
        o.limit = limit;
        Result<Evaluation> r = invalid_argument("not run");
        {
          py::gil_scoped_release release;
          r = evaluate_results(files, data, o);
        }
        return evaluation_dict(value_or_throw(std::move(r)));
      },
      py::arg("results"), py::arg("data"), py::arg("limit") = 0);
}

}  // namespace qyolo::python
