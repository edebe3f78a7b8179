// _qyolo: calibration from image folders or from any Python iterator of batches.
#include "qyolo/calibration.h"

#include <optional>

#include "convert.h"

namespace qyolo::python {

namespace {

CalibrationSettings settings_from(const std::string& algorithm, double percentile, int num_images, int batch,
                                  const Shape& shape) {
  CalibrationSettings s;
  s.algorithm = algorithm;
  s.percentile = percentile;
  s.num_images = num_images;
  s.batch = batch;
  s.shape = shape;
  return s;
}

py::dict summary_dict(const CalibrationSummary& s, const std::string& cache) {
  py::dict d;
  d["cache"] = cache;
  d["algorithm"] = s.algorithm;
  d["caches"] = s.caches;
  d["images"] = s.images;
  d["dropped"] = s.dropped;
  d["shape"] = py::tuple(py::cast(s.shape));
  d["tensors"] = s.tensors;
  d["seconds"] = s.seconds;
  return d;
}

}  // namespace

void bind_calibration(py::module_& m) {
  m.def(
      "calibrate_images",
      [](const EngineHandle& e, const std::string& folder, const std::string& cache,
         const std::string& algorithm, double percentile, int num_images, int batch, const Shape& shape) {
        CalibrationSettings s = settings_from(algorithm, percentile, num_images, batch, shape);
        Result<CalibrationSummary> r = invalid_argument("not run");
        {
          py::gil_scoped_release release;
          r = calibrate_images(*e.engine, folder, s, cache);
        }
        return summary_dict(value_or_throw(std::move(r)), cache);
      },
      py::arg("engine"), py::arg("folder"), py::arg("cache"), py::arg("algorithm") = "mse",
      py::arg("percentile") = 99.99, py::arg("num_images") = 128, py::arg("batch") = 8,
      py::arg("shape") = Shape{});
  m.def(
      "calibrate_batches",
      [](const EngineHandle& e, const py::iterator& batches, const std::string& cache,
         const std::string& algorithm, double percentile, int num_images) {
        CalibrationSettings s = settings_from(algorithm, percentile, num_images, 1, {});
        // The network runs without the GIL; fetching the next batch takes it back. A Python
        // exception raised by the iterator is re-raised as itself once calibration has stopped.
        std::optional<py::error_already_set> raised;
        size_t index = 0;
        BatchSource next = [&]() -> Result<Tensor> {
          py::gil_scoped_acquire acquire;
          try {
            py::object item = py::reinterpret_steal<py::object>(PyIter_Next(batches.ptr()));
            if (!item) {
              if (PyErr_Occurred()) throw py::error_already_set();
              return Tensor();
            }
            return float_tensor_from(item, "calibration batch " + std::to_string(index++));
          } catch (py::error_already_set& err) {
            raised.emplace(std::move(err));
            return invalid_argument("the calibration data raised an exception");
          } catch (const StatusError& err) {
            return err.status();
          }
        };
        Result<CalibrationSummary> r = invalid_argument("not run");
        {
          py::gil_scoped_release release;
          r = calibrate_batches(*e.engine, next, s, cache);
        }
        if (raised) throw std::move(*raised);
        return summary_dict(value_or_throw(std::move(r)), cache);
      },
      py::arg("engine"), py::arg("batches"), py::arg("cache"), py::arg("algorithm") = "mse",
      py::arg("percentile") = 99.99, py::arg("num_images") = 0);
}

}  // namespace qyolo::python
