// _qyolo: the compiled half of the `qyolo` Python package (python/qyolo), over include/qyolo only.
#include <cstring>
#include <map>

#include "convert.h"

namespace qyolo::python {

py::dtype numpy_dtype(DataType t) {
  switch (t) {
    case DataType::kFloat32:
      return py::dtype::of<float>();
    case DataType::kFloat16:
      return py::dtype("float16");
    case DataType::kInt8:
      return py::dtype::of<int8_t>();
    case DataType::kUInt8:
      return py::dtype::of<uint8_t>();
    case DataType::kInt32:
      return py::dtype::of<int32_t>();
    case DataType::kInt64:
      return py::dtype::of<int64_t>();
    case DataType::kBool:
      return py::dtype::of<bool>();
  }
  return py::dtype::of<float>();
}

py::array to_numpy(Tensor t) {
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  auto* owner = new Tensor(std::move(t));
  py::capsule base(owner, [](void* p) { delete static_cast<Tensor*>(p); });
  return py::array(numpy_dtype(owner->dtype()), shape, owner->raw(), base);
}

Tensor float_tensor_from(const py::handle& obj, const std::string& what) {
  py::array a;
  try {
    a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(obj);
  } catch (const py::error_already_set&) {
  }
  if (!a)
    throw StatusError(invalid_argument(what + ": expected a numeric numpy array, got " +
                                       std::string(py::str(py::type::handle_of(obj).attr("__name__")))));
  Shape shape(a.shape(), a.shape() + a.ndim());
  Tensor t = Tensor::uninitialized(DataType::kFloat32, shape);
  std::memcpy(t.raw(), a.data(), t.nbytes());
  return t;
}

Tensor uint8_tensor_from(const py::handle& obj, const std::string& what) {
  if (!py::isinstance<py::array>(obj) || py::reinterpret_borrow<py::array>(obj).dtype().kind() != 'u' ||
      py::reinterpret_borrow<py::array>(obj).itemsize() != 1)
    throw StatusError(
        invalid_argument(what + ": expected a uint8 numpy array (the engine's input format is uint8-nhwc)"));
  auto a = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(obj);  // contiguous
  Shape shape(a.shape(), a.shape() + a.ndim());
  Tensor t = Tensor::uninitialized(DataType::kUInt8, shape);
  std::memcpy(t.raw(), a.data(), t.nbytes());
  return t;
}

Image image_from(const py::handle& obj, bool bgr, const std::string& what) {
  const std::string expected = what + ": expected an H x W x 3 uint8 image array";
  if (!py::isinstance<py::array>(obj))
    throw StatusError(invalid_argument(expected + ", got " +
                                       std::string(py::str(py::type::handle_of(obj).attr("__name__")))));
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (arr.dtype().kind() != 'u' || arr.itemsize() != 1 || arr.ndim() != 3 || arr.shape(2) != 3)
    throw StatusError(invalid_argument(expected + ", got " + std::string(py::str(arr.dtype())) + " " +
                                       std::string(py::str(obj.attr("shape")))));
  auto a = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(arr);  // contiguous
  Image im(static_cast<int>(a.shape(1)), static_cast<int>(a.shape(0)));
  std::memcpy(im.rgb.data(), a.data(), im.rgb.size());
  if (bgr)
    for (size_t i = 0; i < im.rgb.size(); i += 3) std::swap(im.rgb[i], im.rgb[i + 2]);
  return im;
}

void bind_errors(py::module_& m) {
  // One class per StatusCode; each also derives from the closest builtin, so `except ValueError`
  // and `except FileNotFoundError` work as Python users expect.
  static PyObject* base = PyErr_NewException("_qyolo.QyoloError", PyExc_RuntimeError, nullptr);
  m.attr("QyoloError") = py::handle(base);
  struct Kind {
    StatusCode code;
    const char* name;
    PyObject* builtin;
  };
  static std::map<StatusCode, PyObject*> classes;
  for (const Kind& k : {Kind{StatusCode::kInvalidArgument, "InvalidArgumentError", PyExc_ValueError},
                        Kind{StatusCode::kNotFound, "NotFoundError", PyExc_FileNotFoundError},
                        Kind{StatusCode::kCorrupt, "CorruptError", PyExc_ValueError},
                        Kind{StatusCode::kUnsupported, "UnsupportedError", PyExc_NotImplementedError},
                        Kind{StatusCode::kVersionMismatch, "VersionMismatchError", PyExc_ValueError},
                        Kind{StatusCode::kIo, "IoError", PyExc_OSError},
                        Kind{StatusCode::kInternal, "InternalError", nullptr},
                        Kind{StatusCode::kDevice, "DeviceError", nullptr}}) {
    PyObject* bases = k.builtin ? PyTuple_Pack(2, base, k.builtin) : PyTuple_Pack(1, base);
    PyObject* cls = PyErr_NewException((std::string("_qyolo.") + k.name).c_str(), bases, nullptr);
    Py_DECREF(bases);
    classes[k.code] = cls;
    m.attr(k.name) = py::handle(cls);
  }
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      auto it = classes.find(e.status().code());
      PyErr_SetString(it != classes.end() ? it->second : base, e.status().message().c_str());
    }
  });
}

}  // namespace qyolo::python

PYBIND11_MODULE(_qyolo, m) {
  m.doc() = "qyolo's compiled API; use the `qyolo` package (python/qyolo) instead of this module";
  m.attr("__version__") = QYOLO_VERSION_STRING;
  qyolo::python::bind_errors(m);
  qyolo::python::bind_engine(m);
  qyolo::python::bind_detector(m);
  qyolo::python::bind_calibration(m);
  qyolo::python::bind_evaluate(m);
}
