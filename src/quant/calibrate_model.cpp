#include "quant/calibrate_model.h"

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "runtime/detector.h"
#include "runtime/engine_impl.h"
#include "runtime/image_source.h"

namespace qyolo {

namespace {

// Feeds batches to the FP32 engine and the calibrator. Fixed-batch models (profile batch min ==
// max == B) get exactly B images per run: incoming batches are cut (and joined) into runs of B.
class BatchRunner {
 public:
  BatchRunner(const Engine& engine, const CalibrationOptions& options)
      : engine_(engine), options_(options), calibrator_(options.algo, options.percentile) {
    const ShapeProfile p = engine.profile();
    if (!p.min.empty() && p.min[0] == p.max[0]) fixed_batch_ = p.min[0];
  }

  // One batch from the source (batch_index names it in errors).
  Status add(const Tensor& batch, size_t batch_index) {
    const std::string where =
        "calibration batch " + std::to_string(batch_index) + " (shape " + shape_str(batch.shape()) + ")";
    if (batch.dtype() != DataType::kFloat32)
      return invalid_argument(where + ": expected float32, got " + dtype_name(batch.dtype()));
    if (batch.rank() != 4) return invalid_argument(where + ": expected N x C x H x W");
    if (batch.dim(0) <= 0) return invalid_argument(where + ": holds no images");
    Tensor input = batch;
    if (options_.num_images > 0) {
      const int64_t room = options_.num_images - images_;
      if (room <= 0) return Status::ok();
      if (input.dim(0) > room) input = slice(input, 0, room);
    }
    if (!fixed_batch_) {
      QYOLO_RETURN_IF_ERROR(check_shape(input.shape(), where));
      return run(input);
    }
    // Fixed batch: join with what is left over from the previous batch, then run whole runs of B.
    if (!pending_.empty()) {
      if (Shape(pending_.shape().begin() + 1, pending_.shape().end()) !=
          Shape(input.shape().begin() + 1, input.shape().end()))
        return invalid_argument(where + ": its C x H x W differs from the previous batch's " +
                                shape_str(pending_.shape()));
      input = concat(pending_, input);
      pending_ = Tensor();
    }
    Shape run_shape = input.shape();
    run_shape[0] = fixed_batch_;
    QYOLO_RETURN_IF_ERROR(check_shape(run_shape, where));
    int64_t start = 0;
    for (; start + fixed_batch_ <= input.dim(0); start += fixed_batch_)
      QYOLO_RETURN_IF_ERROR(run(slice(input, start, fixed_batch_)));
    if (start < input.dim(0)) pending_ = slice(input, start, input.dim(0) - start).clone();
    return Status::ok();
  }

  // One table per algorithm, all from the statistics of this one pass.
  Result<std::vector<CalibrationTable>> finish(const std::vector<CalibAlgo>& algos,
                                               CalibrationReport* report) {
    if (images_ == 0)
      return invalid_argument(
          "no calibration batches were given" +
          std::string(pending_.empty()
                          ? ""
                          : " (the " + std::to_string(pending_.dim(0)) +
                                " images given do not fill one batch of the model's fixed batch " +
                                std::to_string(fixed_batch_) + ")"));
    std::vector<CalibrationTable> tables;
    for (CalibAlgo algo : algos) {
      QYOLO_ASSIGN_OR_RETURN(CalibrationTable table, calibrator_.finish(algo));
      tables.push_back(std::move(table));
    }
    if (report) {
      report->images = static_cast<int>(images_);
      report->dropped = pending_.empty() ? 0 : static_cast<int>(pending_.dim(0));
      report->shape = first_shape_;
      report->tensors = tables.empty() ? 0 : static_cast<int>(tables[0].scales.size());
    }
    return tables;
  }

  int64_t images() const { return images_; }

 private:
  Status check_shape(const Shape& s, const std::string& where) const {
    const ShapeProfile p = engine_.profile();
    if (!p.contains(s))
      return invalid_argument(where + ": shape " + shape_str(s) + " is outside the model's profile (min " +
                              shape_str(p.min) + ", max " + shape_str(p.max) + ")");
    return Status::ok();
  }

  static Tensor slice(const Tensor& t, int64_t start, int64_t n) {
    Shape s = t.shape();
    s[0] = n;
    Tensor out = Tensor::uninitialized(DataType::kFloat32, s);
    const size_t per = static_cast<size_t>(t.numel() / t.dim(0));
    std::memcpy(out.data<float>(), t.data<float>() + start * per,
                static_cast<size_t>(n) * per * sizeof(float));
    return out;
  }
  static Tensor concat(const Tensor& a, const Tensor& b) {
    Shape s = a.shape();
    s[0] = a.dim(0) + b.dim(0);
    Tensor out = Tensor::uninitialized(DataType::kFloat32, s);
    std::memcpy(out.data<float>(), a.data<float>(), a.nbytes());
    std::memcpy(out.data<float>() + a.numel(), b.data<float>(), b.nbytes());
    return out;
  }

  Status run(const Tensor& input) {
    if (first_shape_.empty()) {
      first_shape_ = input.shape();
      QYOLO_RETURN_IF_ERROR(find_targets(input.shape()));
    }
    auto& exec = executors_[input.shape()];
    if (!exec) {
      QYOLO_ASSIGN_OR_RETURN(SpecializedGraph g, engine_.impl().prepare(input.shape(), passes()));
      QYOLO_ASSIGN_OR_RETURN(exec, CpuExecutor::build(std::move(g)));
    }
    ValueObserver observer = [&](const std::string& name, const Tensor& t) {
      if (targets_.count(name) && t.dtype() == DataType::kFloat32)
        calibrator_.collect(name, t.data<float>(), static_cast<size_t>(t.numel()));
    };
    // The network input itself is observed too (the first conv reads it).
    observer(engine_.info().input_name, input);
    std::map<std::string, Tensor> outputs;
    QYOLO_RETURN_IF_ERROR(exec->run({{engine_.info().input_name, input}}, outputs, observer));
    images_ += input.dim(0);
    return Status::ok();
  }

  // Residual Adds stay separate here so that both of their inputs are observed (export-qdq puts
  // Q/DQ on both, as TensorRT wants); the names of every other tensor match the deployed graph.
  static PassOptions passes() {
    PassOptions p;
    p.fuse_residual = false;
    p.fuse_equalization = false;  // T and T' = T / s both observed (quant/activation_equalization.h)
    return p;
  }

  // Tensors to observe: what INT8 convs read (inputs, residuals) and write, in the fused graph.
  Status find_targets(const Shape& shape) {
    QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, engine_.impl().prepare(shape, passes()));
    for (const auto& n : sg.graph.nodes) {
      if (n.op_type == "Conv") {
        targets_.insert(n.inputs[0]);
        targets_.insert(n.outputs[0]);
      } else if (n.op_type == "Add") {
        for (const auto& in : n.inputs)
          if (!sg.values.at(in).value) targets_.insert(in);
        targets_.insert(n.outputs[0]);
      }
    }
    return Status::ok();
  }

  const Engine& engine_;
  CalibrationOptions options_;
  Calibrator calibrator_;
  int64_t fixed_batch_ = 0;
  int64_t images_ = 0;
  Tensor pending_;
  Shape first_shape_;
  std::set<std::string> targets_;
  std::map<Shape, std::unique_ptr<CpuExecutor>> executors_;  // by input shape
};

Status check_fp32(const Engine& engine) {
  if (engine.options().precision != Precision::kFp32)
    return invalid_argument("calibration runs on an FP32 engine (got " +
                            std::string(precision_name(engine.options().precision)) + ")");
  return Status::ok();
}

}  // namespace

Result<CalibrationTable> calibrate_from_batches(const Engine& engine, const BatchSource& next,
                                                const CalibrationOptions& options, CalibrationReport* report,
                                                const ProgressFn& progress, size_t total) {
  QYOLO_ASSIGN_OR_RETURN(auto tables, calibrate_algorithms_from_batches(engine, next, options, {options.algo},
                                                                        report, progress, total));
  return std::move(tables[0]);
}

Result<std::vector<CalibrationTable>> calibrate_algorithms_from_batches(
    const Engine& engine, const BatchSource& next, const CalibrationOptions& options,
    const std::vector<CalibAlgo>& algos, CalibrationReport* report, const ProgressFn& progress,
    size_t total) {
  auto t0 = std::chrono::steady_clock::now();
  QYOLO_RETURN_IF_ERROR(check_fp32(engine));
  if (algos.empty()) return invalid_argument("calibration needs at least one algorithm");
  if (options.num_images < 0)
    return invalid_argument("the number of calibration images must not be negative");
  if (!next) return invalid_argument("no batch source");
  BatchRunner runner(engine, options);
  for (size_t i = 0;; ++i) {
    QYOLO_ASSIGN_OR_RETURN(Tensor batch, next());
    if (batch.empty()) break;
    QYOLO_RETURN_IF_ERROR(runner.add(batch, i));
    if (progress) progress(static_cast<size_t>(runner.images()), total);
    if (options.num_images > 0 && runner.images() >= options.num_images) break;
  }
  QYOLO_ASSIGN_OR_RETURN(auto tables, runner.finish(algos, report));
  if (report) report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return tables;
}

Result<CalibrationTable> calibrate(const Engine& engine, const std::string& image_folder,
                                   const CalibrationOptions& options, CalibrationReport* report,
                                   const ProgressFn& progress) {
  QYOLO_ASSIGN_OR_RETURN(
      auto tables, calibrate_algorithms(engine, image_folder, options, {options.algo}, report, progress));
  return std::move(tables[0]);
}

Result<std::vector<CalibrationTable>> calibrate_algorithms(
    const Engine& engine, const std::string& image_folder, const CalibrationOptions& options,
    const std::vector<CalibAlgo>& algos, CalibrationReport* report, const ProgressFn& progress) {
  QYOLO_RETURN_IF_ERROR(check_fp32(engine));
  if (options.num_images <= 0) return invalid_argument("--num must be positive");
  if (options.batch <= 0) return invalid_argument("--batch must be positive");
  std::string folder = image_folder;
  if (std::filesystem::is_directory(std::filesystem::path(image_folder) / "images")) folder += "/images";
  QYOLO_ASSIGN_OR_RETURN(auto files, list_image_files(folder));
  if (static_cast<int>(files.size()) < options.num_images)
    return invalid_argument("calibration set '" + folder + "' has " + std::to_string(files.size()) +
                            " images, --num asks for " + std::to_string(options.num_images));
  files.resize(static_cast<size_t>(options.num_images));

  const int batch = std::min(options.batch, options.num_images);
  const ShapeProfile profile = engine.profile();
  Shape shape = options.shape.empty() ? profile.opt : options.shape;
  if (shape.size() != 4) return invalid_argument("calibration shape must be NCHW, got " + shape_str(shape));
  shape[0] = batch;
  // The final partial batch runs at its own batch size; both must lie in the profile.
  for (int64_t n : {static_cast<int64_t>(batch), static_cast<int64_t>(options.num_images % batch)}) {
    if (n == 0) continue;
    Shape s = shape;
    s[0] = n;
    if (!profile.contains(s))
      return invalid_argument("calibration shape " + shape_str(s) + " is outside the model's profile (min " +
                              shape_str(profile.min) + ", max " + shape_str(profile.max) +
                              "); choose --batch/--imgsz inside it");
  }

  size_t start = 0;
  BatchSource next = [&]() -> Result<Tensor> {
    if (start >= files.size()) return Tensor();
    const size_t n = std::min(static_cast<size_t>(batch), files.size() - start);
    std::vector<Image> images(n);
    for (size_t i = 0; i < n; ++i) {
      auto img = load_image(files[start + i]);
      if (!img) return img.status().with_context("calibration image");
      images[i] = std::move(img).value();
    }
    start += n;
    std::vector<const Image*> ptrs;
    for (const auto& im : images) ptrs.push_back(&im);
    return Detector::preprocess(ptrs, static_cast<int>(shape[2]), static_cast<int>(shape[3]), nullptr);
  };
  return calibrate_algorithms_from_batches(engine, next, options, algos, report, progress, files.size());
}

}  // namespace qyolo
