#include "quant/calibrate_model.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <set>

#include "runtime/detector.h"
#include "runtime/engine_impl.h"
#include "runtime/image_source.h"

namespace qyolo {

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
  if (algos.empty()) return invalid_argument("calibration needs at least one algorithm");
  auto t0 = std::chrono::steady_clock::now();
  if (engine.options().precision != Precision::kFp32)
    return invalid_argument("calibration runs on an FP32 engine (got " +
                            std::string(precision_name(engine.options().precision)) + ")");
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

  // Tensors to observe: what INT8 convs read (inputs, residuals) and write, in the fused graph.
  // Residual Adds stay separate here so that both of their inputs are observed (export-qdq puts
  // Q/DQ on both, as TensorRT wants); the names of every other tensor match the deployed graph.
  PassOptions passes;
  passes.fuse_residual = false;
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, engine.impl().prepare(shape, passes));
  std::set<std::string> targets;
  for (const auto& n : sg.graph.nodes) {
    if (n.op_type == "Conv") {
      targets.insert(n.inputs[0]);
      targets.insert(n.outputs[0]);
    } else if (n.op_type == "Add") {
      for (const auto& in : n.inputs)
        if (!sg.values.at(in).value) targets.insert(in);
      targets.insert(n.outputs[0]);
    }
  }

  Calibrator calibrator(algos[0], options.percentile);
  ValueObserver observer = [&](const std::string& name, const Tensor& t) {
    if (targets.count(name) && t.dtype() == DataType::kFloat32)
      calibrator.collect(name, t.data<float>(), static_cast<size_t>(t.numel()));
  };
  std::map<int64_t, std::unique_ptr<CpuExecutor>> executors;  // by batch (the last may be partial)
  for (size_t start = 0; start < files.size(); start += static_cast<size_t>(batch)) {
    size_t n = std::min(static_cast<size_t>(batch), files.size() - start);
    std::vector<Image> images(n);
    for (size_t i = 0; i < n; ++i) {
      auto img = load_image(files[start + i]);
      if (!img) return img.status().with_context("calibration image");
      images[i] = std::move(img).value();
    }
    std::vector<const Image*> ptrs;
    for (const auto& im : images) ptrs.push_back(&im);
    Tensor input =
        Detector::preprocess(ptrs, static_cast<int>(shape[2]), static_cast<int>(shape[3]), nullptr);
    auto& exec = executors[input.dim(0)];
    if (!exec) {
      QYOLO_ASSIGN_OR_RETURN(SpecializedGraph g, engine.impl().prepare(input.shape(), passes));
      QYOLO_ASSIGN_OR_RETURN(exec, CpuExecutor::build(std::move(g)));
    }
    // The network input itself is observed too (the first conv reads it).
    observer(engine.info().input_name, input);
    std::map<std::string, Tensor> outputs;
    QYOLO_RETURN_IF_ERROR(exec->run({{engine.info().input_name, input}}, outputs, observer));
    if (progress) progress(start + n, files.size());
  }
  std::vector<CalibrationTable> tables;
  for (CalibAlgo algo : algos) {
    QYOLO_ASSIGN_OR_RETURN(CalibrationTable table, calibrator.finish(algo));
    tables.push_back(std::move(table));
  }
  if (report) {
    report->images = static_cast<int>(files.size());
    report->shape = shape;
    report->tensors = static_cast<int>(tables[0].scales.size());
    report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return tables;
}

}  // namespace qyolo
