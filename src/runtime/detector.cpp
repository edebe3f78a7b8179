#include "runtime/detector.h"

#include <chrono>

#include "runtime/gpu_pipeline.h"

namespace qyolo {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Network-input pixels -> original-image pixels (both paths).
void to_original(std::vector<std::vector<Detection>>& dets, const std::vector<LetterboxInfo>& infos) {
  for (size_t i = 0; i < dets.size() && i < infos.size(); ++i)
    unletterbox(dets[i], infos[i].scale, infos[i].pad_x, infos[i].pad_y, infos[i].src_w, infos[i].src_h);
}
}  // namespace

Detector::~Detector() = default;

Result<std::unique_ptr<Detector>> Detector::create(std::shared_ptr<const Engine> engine, const DetectOptions& options) {
  if (!engine) return invalid_argument("no engine");
  const int stride = engine->info().stride;
  if (options.input_h <= 0 || options.input_w <= 0 || options.input_h % stride || options.input_w % stride)
    return invalid_argument("image size " + std::to_string(options.input_h) + "x" + std::to_string(options.input_w) +
                            " must be a positive multiple of the model stride " + std::to_string(stride));
  auto d = std::unique_ptr<Detector>(new Detector());
  d->engine_ = std::move(engine);
  d->options_ = options;
  QYOLO_ASSIGN_OR_RETURN(d->context_, d->engine_->create_context());
  if (d->engine_->options().device == Device::kCuda && options.gpu_prepost) {
    const int nc = static_cast<int>(d->engine_->info().class_names.size());
    QYOLO_ASSIGN_OR_RETURN(d->gpu_, GpuPipeline::create(*d->context_, options.nms, nc > 0 ? nc : -1));
  }
  return d;
}

Tensor Detector::preprocess(const std::vector<const Image*>& images, int h, int w, std::vector<LetterboxInfo>* infos) {
  Tensor input = Tensor::uninitialized(DataType::kFloat32, {static_cast<int64_t>(images.size()), 3, h, w});
  if (infos) infos->resize(images.size());
  const size_t per_image = static_cast<size_t>(3) * h * w;
#pragma omp parallel for schedule(dynamic) if (images.size() > 1)
  for (size_t i = 0; i < images.size(); ++i) {
    LetterboxInfo info = letterbox_to_nchw(*images[i], h, w, input.data<float>() + i * per_image);
    if (infos) (*infos)[i] = info;
  }
  return input;
}

Result<std::vector<std::vector<Detection>>> Detector::detect(const std::vector<const Image*>& images) {
  if (images.empty()) return std::vector<std::vector<Detection>>{};
  std::vector<LetterboxInfo> infos;
  if (gpu_) {
    GpuPipeline::Times t;
    QYOLO_ASSIGN_OR_RETURN(auto dets, gpu_->run(images, options_.input_h, options_.input_w, &infos, &t));
    const auto t0 = std::chrono::steady_clock::now();
    to_original(dets, infos);
    last_pre_s = t.pre_s;
    last_infer_s = t.infer_s;
    last_post_s = t.post_s + seconds_since(t0);
    return dets;
  }

  auto t0 = std::chrono::steady_clock::now();
  Tensor input = preprocess(images, options_.input_h, options_.input_w, &infos);
  last_pre_s = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  Tensor output;
  QYOLO_RETURN_IF_ERROR(context_->run(input, output));
  last_infer_s = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  if (!head_) {
    int nc_hint = static_cast<int>(engine_->info().class_names.size());
    QYOLO_ASSIGN_OR_RETURN(HeadKind kind, detect_head_kind(output.shape(), nc_hint > 0 ? nc_hint : -1));
    head_ = static_cast<int>(kind);
  }
  QYOLO_ASSIGN_OR_RETURN(auto dets, postprocess(output, static_cast<HeadKind>(*head_), options_.nms));
  to_original(dets, infos);
  last_post_s = seconds_since(t0);
  return dets;
}

}  // namespace qyolo
