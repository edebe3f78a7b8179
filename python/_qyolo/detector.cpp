// _qyolo: Detector (images in, boxes in original-image pixels out), image loading, preprocess.
#include "qyolo/detector.h"

#include <cstring>

#include "convert.h"

namespace qyolo::python {

namespace {

struct DetectorHandle {
  std::unique_ptr<Detector> detector;
};

py::array detections_array(const std::vector<Detection>& dets) {
  // One row per detection: x1, y1, x2, y2, score, class.
  py::array_t<float> a({static_cast<py::ssize_t>(dets.size()), py::ssize_t{6}});
  auto r = a.mutable_unchecked<2>();
  for (size_t i = 0; i < dets.size(); ++i) {
    const Detection& d = dets[i];
    const float row[6] = {d.x1, d.y1, d.x2, d.y2, d.score, static_cast<float>(d.class_id)};
    for (int j = 0; j < 6; ++j) r(static_cast<py::ssize_t>(i), j) = row[j];
  }
  return a;
}

std::unique_ptr<DetectorHandle> create(const EngineHandle& e, float conf, float iou, int max_det,
                                       bool agnostic, bool multi_label, const std::vector<int>& classes,
                                       int input_h, int input_w, const std::string& head, bool gpu_prepost) {
  DetectOptions o;
  o.nms.conf = conf;
  o.nms.iou = iou;
  o.nms.max_det = max_det;
  o.nms.agnostic = agnostic;
  o.nms.multi_label = multi_label;
  o.nms.classes = classes;
  o.input_h = input_h;
  o.input_w = input_w;
  o.head = head;
  o.gpu_prepost = gpu_prepost;
  return std::make_unique<DetectorHandle>(DetectorHandle{value_or_throw(Detector::create(e.engine, o))});
}

// images: decoded RGB images (the Python side loads files and converts BGR).
py::list detect(DetectorHandle& h, const std::vector<Image>& images) {
  std::vector<const Image*> ptrs;
  for (const auto& im : images) ptrs.push_back(&im);
  std::vector<std::vector<Detection>> dets;
  {
    py::gil_scoped_release release;
    dets = value_or_throw(h.detector->detect(ptrs));
  }
  py::list out;
  for (const auto& d : dets) out.append(detections_array(d));
  return out;
}

std::vector<Image> images_from(const py::list& arrays, bool bgr) {
  std::vector<Image> images;
  for (size_t i = 0; i < arrays.size(); ++i)
    images.push_back(image_from(arrays[i], bgr, "image " + std::to_string(i)));
  return images;
}

}  // namespace

void bind_detector(py::module_& m) {
  py::class_<DetectorHandle>(m, "Detector")
      .def(py::init(&create), py::arg("engine"), py::arg("conf") = 0.25f, py::arg("iou") = -1.f,
           py::arg("max_det") = 300, py::arg("agnostic") = false, py::arg("multi_label") = false,
           py::arg("classes") = std::vector<int>{}, py::arg("input_h") = 0, py::arg("input_w") = 0,
           py::arg("head") = "", py::arg("gpu_prepost") = true)
      .def(
          "detect",
          [](DetectorHandle& h, const py::list& arrays, bool bgr) {
            return detect(h, images_from(arrays, bgr));
          },
          py::arg("images"), py::arg("bgr") = false,
          "Detections of a batch of H x W x 3 uint8 images: one (N, 6) float32 array each "
          "(x1, y1, x2, y2, score, class) in original-image pixels")
      .def(
          "detect_files",
          [](DetectorHandle& h, const std::vector<std::string>& paths) {
            std::vector<Image> images;
            for (const auto& p : paths) images.push_back(value_or_throw(load_image(p)));
            return detect(h, images);
          },
          py::arg("paths"))
      .def(
          "prepare",
          [](DetectorHandle& h, int batch) {
            py::gil_scoped_release release;
            return value_or_throw(h.detector->prepare(batch));
          },
          py::arg("batch") = 1)
      .def_property_readonly("head", [](const DetectorHandle& h) { return h.detector->head_description(); })
      .def_property_readonly("iou", [](const DetectorHandle& h) { return h.detector->options().nms.iou; })
      .def_property_readonly("imgsz",
                             [](const DetectorHandle& h) {
                               return py::make_tuple(h.detector->options().input_h,
                                                     h.detector->options().input_w);
                             })
      .def_property_readonly(
          "prepost_device", [](const DetectorHandle& h) { return device_name(h.detector->prepost_device()); })
      .def_property_readonly("times", [](const DetectorHandle& h) {
        const Detector& d = *h.detector;
        py::dict t;
        t["setup_s"] = d.last_setup_s;
        t["pre_s"] = d.last_pre_s;
        t["infer_s"] = d.last_infer_s;
        t["post_s"] = d.last_post_s;
        return t;
      });

  m.def(
      "load_image",
      [](const std::string& path) {
        Image im = value_or_throw(load_image(path));
        Tensor t(DataType::kUInt8, {im.height, im.width, 3});
        std::memcpy(t.raw(), im.rgb.data(), im.rgb.size());
        return to_numpy(std::move(t));
      },
      py::arg("path"), "Decodes a JPEG or PNG file into an H x W x 3 uint8 RGB array");
  m.def(
      "preprocess",
      [](const py::list& arrays, int h, int w, bool bgr) {
        std::vector<Image> images = images_from(arrays, bgr);
        std::vector<const Image*> ptrs;
        for (const auto& im : images) ptrs.push_back(&im);
        std::vector<LetterboxInfo> infos;
        Tensor t = Detector::preprocess(ptrs, h, w, &infos);
        py::list l;
        for (const auto& i : infos) {
          py::dict d;
          d["scale"] = i.scale;
          d["pad"] = py::make_tuple(i.pad_x, i.pad_y);
          d["src_size"] = py::make_tuple(i.src_h, i.src_w);
          l.append(d);
        }
        return py::make_tuple(to_numpy(std::move(t)), l);
      },
      py::arg("images"), py::arg("h"), py::arg("w"), py::arg("bgr") = false,
      "Letterboxes images into an N x 3 x h x w float32 batch (the inference pre-processing)");
}

}  // namespace qyolo::python
