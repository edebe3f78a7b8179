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
  const ShapeProfile profile = engine->profile();
  DetectOptions opt = options;
  // 0: the engine's own size (the profile's opt H/W: a static model's size, its imgsz metadata, --opt-shapes).
  if (opt.input_h == 0) opt.input_h = static_cast<int>(profile.opt[2]);
  if (opt.input_w == 0) opt.input_w = static_cast<int>(profile.opt[3]);
  const int stride = engine->info().stride;
  const std::string size = std::to_string(opt.input_h) + "x" + std::to_string(opt.input_w);
  if (opt.input_h <= 0 || opt.input_w <= 0 || opt.input_h % stride || opt.input_w % stride)
    return invalid_argument("image size " + size + " must be a positive multiple of the model stride " +
                            std::to_string(stride));
  // Checked before anything is allocated for that size (an absurd --imgsz is an error, not bad_alloc).
  if (opt.input_h < profile.min[2] || opt.input_h > profile.max[2] || opt.input_w < profile.min[3] ||
      opt.input_w > profile.max[3])
    return invalid_argument("image size " + size + " (HxW) is outside the engine's profile: H " +
                            std::to_string(profile.min[2]) + ".." + std::to_string(profile.max[2]) + ", W " +
                            std::to_string(profile.min[3]) + ".." + std::to_string(profile.max[3]) +
                            (profile.min == profile.max ? " (a static model: leave the size out to use its own)"
                                                        : " (set a wider range with --min-shapes/--max-shapes)"));
  auto d = std::unique_ptr<Detector>(new Detector());
  d->engine_ = std::move(engine);
  d->options_ = opt;
  QYOLO_ASSIGN_OR_RETURN(d->context_, d->engine_->create_context());
  if (d->engine_->options().device == Device::kCuda && opt.gpu_prepost) {
    const int nc = static_cast<int>(d->engine_->info().class_names.size());
    QYOLO_ASSIGN_OR_RETURN(d->gpu_, GpuPipeline::create(*d->context_, opt.nms, nc > 0 ? nc : -1));
  }
  return d;
}

Status Detector::check_output(const Tensor& output) {
  if (head_) return Status::ok();
  const int nc_hint = static_cast<int>(engine_->info().class_names.size());
  QYOLO_ASSIGN_OR_RETURN(HeadKind kind, detect_head_kind(output.shape(), nc_hint > 0 ? nc_hint : -1));
  if (output.dtype() != DataType::kFloat32)
    return unsupported("output '" + engine_->info().output_name + "' is " + dtype_name(output.dtype()) +
                       ", float32 expected");
  QYOLO_RETURN_IF_ERROR(check_decoded_head(output.data<float>(), output.shape(), kind, engine_->info().output_name)
                            .with_context(engine_->info().source));
  head_ = static_cast<int>(kind);
  return Status::ok();
}

Result<double> Detector::prepare(int batch) {
  if (batch <= 0) return invalid_argument("prepare(): batch must be positive, got " + std::to_string(batch));
  const auto t0 = std::chrono::steady_clock::now();
  // Blank images (the letterbox pad colour): a decoded head still gives scores in [0, 1] on them.
  Image blank(options_.input_w, options_.input_h, 114);
  const std::vector<const Image*> images(static_cast<size_t>(batch), &blank);
  Tensor input = preprocess(images, options_.input_h, options_.input_w, nullptr);
  QYOLO_RETURN_IF_ERROR(context_->set_input_shape(input.shape()));
  Tensor output;
  QYOLO_RETURN_IF_ERROR(context_->run(input, output));
  QYOLO_RETURN_IF_ERROR(check_output(output));
  if (gpu_) QYOLO_RETURN_IF_ERROR(detect(images).status());  // the GPU pipeline's buffers for this size
  return seconds_since(t0);
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
  // The first call checks the model's head on blank images (prepare) before any real output is used.
  double first_setup_s = 0;
  if (!head_) {
    QYOLO_ASSIGN_OR_RETURN(first_setup_s, prepare(static_cast<int>(images.size())));
  }
  std::vector<LetterboxInfo> infos;
  if (gpu_) {
    GpuPipeline::Times t;
    QYOLO_ASSIGN_OR_RETURN(auto dets, gpu_->run(images, options_.input_h, options_.input_w, &infos, &t));
    const auto t0 = std::chrono::steady_clock::now();
    to_original(dets, infos);
    last_setup_s = first_setup_s + t.setup_s;
    last_pre_s = t.pre_s;
    last_infer_s = t.infer_s;
    last_post_s = t.post_s + seconds_since(t0);
    return dets;
  }

  auto t0 = std::chrono::steady_clock::now();
  Tensor input = preprocess(images, options_.input_h, options_.input_w, &infos);
  last_pre_s = seconds_since(t0);

  // A new batch size builds its executor once: set-up, not network time.
  t0 = std::chrono::steady_clock::now();
  QYOLO_RETURN_IF_ERROR(context_->set_input_shape(input.shape()));
  last_setup_s = first_setup_s + seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  Tensor output;
  QYOLO_RETURN_IF_ERROR(context_->run(input, output));
  last_infer_s = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  QYOLO_RETURN_IF_ERROR(check_output(output));
  QYOLO_ASSIGN_OR_RETURN(auto dets, postprocess(output, static_cast<HeadKind>(*head_), options_.nms));
  to_original(dets, infos);
  last_post_s = seconds_since(t0);
  return dets;
}

}  // namespace qyolo
