// _qyolo: conversions between the public C++ API and Python (errors, tensors, images).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "qyolo/engine.h"
#include "qyolo/image.h"
#include "qyolo/status.h"
#include "qyolo/tensor.h"

namespace qyolo::python {

namespace py = pybind11;

// A non-ok Status on its way to Python: the translator in module.cpp raises the exception class of
// its code with the Status message (the text the CLI prints after "error: <code>: ").
class StatusError : public std::exception {
 public:
  explicit StatusError(Status s) : status_(std::move(s)) {}
  const char* what() const noexcept override { return status_.message().c_str(); }
  const Status& status() const { return status_; }

 private:
  Status status_;
};

inline void check(const Status& s) {
  if (!s.is_ok()) throw StatusError(s);
}
template <typename T>
T value_or_throw(Result<T> r) {
  if (!r.is_ok()) throw StatusError(r.status());
  return std::move(r).value();
}

// Python's Engine: a shared, immutable engine.
struct EngineHandle {
  std::shared_ptr<const Engine> engine;
};

// numpy dtype of a tensor element type.
py::dtype numpy_dtype(DataType t);

// A numpy array that owns `t` (no copy).
py::array to_numpy(Tensor t);

// A float32 C-contiguous copy of `a` (any numeric dtype) as a Tensor; `what` names it in errors.
Tensor float_tensor_from(const py::handle& a, const std::string& what);
// A uint8 numpy array as a uint8 tensor (uint8-nhwc engine inputs); a clear error for other dtypes.
Tensor uint8_tensor_from(const py::handle& a, const std::string& what);

// An H x W x 3 uint8 array as an RGB Image (bgr: the channels are B, G, R, as cv2 gives them).
Image image_from(const py::handle& a, bool bgr, const std::string& what);

// Registers the exception classes and the StatusError translator.
void bind_errors(py::module_& m);
void bind_engine(py::module_& m);
void bind_detector(py::module_& m);
void bind_calibration(py::module_& m);
void bind_evaluate(py::module_& m);

}  // namespace qyolo::python
