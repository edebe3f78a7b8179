// The public calibration API (qyolo/calibration.h): image folders, batch sources and trtexec-style
// .npy arrays, written as TensorRT calibration caches.
#include <algorithm>
#include <cstring>
#include <memory>

#include "calib/calib_cache.h"
#include "ir/npy.h"
#include "quant/calibrate_model.h"
#include "qyolo/calibration.h"
#include "runtime/detector.h"

namespace qyolo {

namespace {

// The algorithms of settings.algorithm ("minmax" or "minmax,mse") and the cache each one writes:
// several need "{algo}" in cache_path, replaced by the name as given.
struct AlgorithmPlan {
  CalibrationOptions options;
  std::vector<CalibAlgo> algos;
  std::vector<std::string> caches;
};

Result<AlgorithmPlan> plan_from(const CalibrationSettings& s, const std::string& cache_path) {
  if (cache_path.empty()) return invalid_argument("no calibration cache path given");
  AlgorithmPlan plan;
  std::vector<std::string> names;
  for (size_t start = 0; start <= s.algorithm.size();) {
    size_t end = s.algorithm.find(',', start);
    if (end == std::string::npos) end = s.algorithm.size();
    names.push_back(s.algorithm.substr(start, end - start));
    QYOLO_ASSIGN_OR_RETURN(CalibAlgo algo, parse_calib_algo(names.back()));
    plan.algos.push_back(algo);
    start = end + 1;
  }
  const size_t slot = cache_path.find("{algo}");
  if (names.size() > 1 && slot == std::string::npos)
    return invalid_argument("calibration algorithms '" + s.algorithm +
                            "' write one cache each: put {algo} in the cache path, e.g. m.{algo}.cache");
  for (const auto& name : names) {
    std::string path = cache_path;
    if (slot != std::string::npos) path.replace(slot, 6, name);
    plan.caches.push_back(path);
  }
  plan.options.algo = plan.algos[0];
  plan.options.percentile = s.percentile;
  plan.options.num_images = s.num_images;
  plan.options.batch = s.batch;
  plan.options.shape = s.shape;
  return plan;
}

Result<CalibrationSummary> write_caches(const std::vector<CalibrationTable>& tables,
                                        const CalibrationReport& report, const AlgorithmPlan& plan) {
  CalibrationSummary s;
  for (size_t i = 0; i < tables.size(); ++i) {
    QYOLO_RETURN_IF_ERROR(write_calibration_cache(plan.caches[i], tables[i]));
    s.algorithm += (i ? "," : "") + tables[i].algorithm;
  }
  s.caches = plan.caches;
  s.images = report.images;
  s.dropped = report.dropped;
  s.shape = report.shape;
  s.tensors = report.tensors;
  s.seconds = report.seconds;
  return s;
}

}  // namespace

Result<CalibrationSummary> calibrate_images(const Engine& engine, const std::string& image_folder,
                                            const CalibrationSettings& settings,
                                            const std::string& cache_path,
                                            const CalibrationProgress& progress) {
  QYOLO_ASSIGN_OR_RETURN(AlgorithmPlan plan, plan_from(settings, cache_path));
  CalibrationReport report;
  QYOLO_ASSIGN_OR_RETURN(
      auto tables, calibrate_algorithms(engine, image_folder, plan.options, plan.algos, &report, progress));
  return write_caches(tables, report, plan);
}

Result<CalibrationSummary> calibrate_batches(const Engine& engine, const BatchSource& next,
                                             const CalibrationSettings& settings,
                                             const std::string& cache_path,
                                             const CalibrationProgress& progress) {
  QYOLO_ASSIGN_OR_RETURN(AlgorithmPlan plan, plan_from(settings, cache_path));
  const CalibrationOptions& o = plan.options;
  CalibrationReport report;
  QYOLO_ASSIGN_OR_RETURN(auto tables,
                         calibrate_algorithms_from_batches(engine, next, o, plan.algos, &report, progress,
                                                           o.num_images > 0 ? o.num_images : 0));
  return write_caches(tables, report, plan);
}

Result<Tensor> load_npy(const std::string& path) {
  return read_npy(path);
}

Result<BatchSource> npy_batches(const Tensor& array, int batch, int input_h, int input_w,
                                const std::string& source) {
  if (batch <= 0) return invalid_argument("batch must be positive, got " + std::to_string(batch));
  const Shape& s = array.shape();
  const bool nchw_float = array.dtype() == DataType::kFloat32 && s.size() == 4;
  const bool nhwc_u8 = array.dtype() == DataType::kUInt8 && s.size() == 4 && s[3] == 3;
  if (!nchw_float && !nhwc_u8)
    return invalid_argument(
        "'" + source + "' holds " + std::string(dtype_name(array.dtype())) + " " + shape_str(s) +
        "; calibration data must be float32 N x C x H x W (pre-processed) or uint8 N x H x W x 3 "
        "(RGB images)");
  if (s[0] <= 0) return invalid_argument("'" + source + "' holds no images (" + shape_str(s) + ")");
  if (nhwc_u8 && (input_h <= 0 || input_w <= 0))
    return invalid_argument("letterbox size needed for the uint8 images of '" + source + "'");
  auto start = std::make_shared<int64_t>(0);
  const Tensor data = array;  // shares the storage
  return BatchSource([=]() -> Result<Tensor> {
    if (*start >= s[0]) return Tensor();
    const int64_t n = std::min<int64_t>(batch, s[0] - *start);
    const size_t per = static_cast<size_t>(data.numel() / s[0]);
    const int64_t first = *start;
    *start += n;
    if (nchw_float) {
      Shape bs = s;
      bs[0] = n;
      Tensor out = Tensor::uninitialized(DataType::kFloat32, bs);
      std::memcpy(out.data<float>(), data.data<float>() + first * per,
                  static_cast<size_t>(n) * per * sizeof(float));
      return out;
    }
    // uint8 NHWC RGB images: our letterbox, as inference pre-processes them.
    std::vector<Image> images(static_cast<size_t>(n));
    std::vector<const Image*> ptrs;
    for (int64_t i = 0; i < n; ++i) {
      Image& im = images[static_cast<size_t>(i)];
      im = Image(static_cast<int>(s[2]), static_cast<int>(s[1]));
      std::memcpy(im.rgb.data(), data.data<uint8_t>() + (first + i) * per, per);
      ptrs.push_back(&im);
    }
    return Detector::preprocess(ptrs, input_h, input_w, nullptr);
  });
}

}  // namespace qyolo
