#include "runtime/detector.h"

#include <chrono>
#include <cstdio>

#include "quant/output_quantization.h"
#include "runtime/engine_impl.h"
#include "runtime/gpu_pipeline.h"
#include "yolo/head.h"
#include "yolo/metadata.h"

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
// Outputs whose scores are probabilities must keep them: a Q/DQ model whose own quantization of such
// an output rounds every value in [0, 1] to 0 can never detect anything (no silent mAP 0). Judged on
// the graph that runs at `input_shape` (--float-layers / --float-output may have dropped the pair).
Status check_score_quantization(const Engine& engine, const BoundHead& h, const Shape& input_shape) {
  if (!engine.info().has_qdq) return Status::ok();
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph sg, engine.impl().prepare(input_shape));
  std::vector<int> outputs;
  if (h.passthrough_output >= 0) outputs.push_back(h.passthrough_output);
  for (const BoundLevel& lv : h.levels)
    for (const PartAccess* part : {&lv.cls, &lv.obj})
      if (part->output >= 0 && !part->logits) outputs.push_back(part->output);
  const ModelInfo& info = engine.info();
  for (int i : outputs) {
    if (i < 0 || static_cast<size_t>(i) >= info.output_names.size()) continue;
    const std::string& name = info.output_names[static_cast<size_t>(i)];
    const auto grids = output_grids(sg.graph, name);
    if (!grids) continue;
    bool any_level = false;
    for (const auto& q : *grids) any_level |= q.probability_levels() > 0;
    if (any_level) continue;
    const OutputQuantization& q = grids->front();
    const bool own_pair = output_quantization(sg.graph, name).has_value();  // the output itself is a DQ
    char step[64];
    std::snprintf(step, sizeof step, "%g", static_cast<double>(q.scale));
    const std::string more =
        grids->size() > 1 ? ", and " + std::to_string(grids->size() - 1) + " more such Q/DQ pairs whose values it carries" : "";
    return invalid_argument(
        "output '" + name + "' is quantized by the model itself with step " + step + " (DequantizeLinear '" + q.node +
        "', zero point " + std::to_string(q.zero_point) + more +
        "): every score in [0, 1] rounds to 0 on that grid, so no detection can pass a confidence threshold "
        "(ONNX Runtime running this file gives the same zeros; its quantizer gave boxes in pixels and scores one "
        "scale). " +
        (own_pair && !engine.options().float_outputs
             ? std::string("Build with --float-output (outputs computed in float, the model's other scales kept; "
                           "with --int8, --float-layers REGEX also bypasses the Q/DQ pairs whose DequantizeLinear "
                           "it names)")
             : std::string("Keep those Q/DQ pairs in float with --int8 --float-layers REGEX (matching their "
                           "DequantizeLinear nodes)")) +
        ", or run `qyolo export-float` and recalibrate (docs/quantized-models.md)");
  }
  return Status::ok();
}

}  // namespace

// The head: its description (empty: the first output is a decoded ultralytics head), the binding
// for the last output shapes, and the decode buffer.
struct Detector::HeadState {
  std::vector<HeadSpec> specs;
  HeadBindContext ctx;
  bool checked = false;  // the first output was checked (and "auto" activations resolved)
  std::vector<Shape> shapes;
  std::optional<BoundHead> bound;
  Tensor decoded;

  Result<const BoundHead*> bind(const std::vector<Tensor>& outputs, const std::vector<std::string>& names, int h, int w) {
    std::vector<Shape> now;
    for (const Tensor& t : outputs) now.push_back(t.shape());
    if (bound && now == shapes && ctx.input_h == h && ctx.input_w == w) return &*bound;
    std::vector<OutputDesc> descs;
    for (size_t i = 0; i < outputs.size(); ++i) descs.push_back({i < names.size() ? names[i] : "", outputs[i].shape()});
    ctx.input_h = h;
    ctx.input_w = w;
    auto b = specs.empty() ? bind_default_head(descs, ctx) : bind_head(specs, descs, ctx);
    if (!b) return b.status();
    bound = std::move(b).value();
    shapes = std::move(now);
    return &*bound;
  }
};

Detector::~Detector() = default;

Result<std::unique_ptr<Detector>> Detector::create(std::shared_ptr<const Engine> engine, const DetectOptions& options) {
  if (!engine) return invalid_argument("no engine");
  QYOLO_RETURN_IF_ERROR(check_detect_task(engine->info().task, engine->info().source));
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
  if (opt.nms.iou < 0 && !(opt.iou_objectness >= 0 && opt.iou_objectness <= 1 && opt.iou_no_objectness >= 0 &&
                           opt.iou_no_objectness <= 1))
    return invalid_argument("the default IoU thresholds must lie in [0, 1]");
  auto d = std::unique_ptr<Detector>(new Detector());
  d->head_ = std::make_unique<HeadState>();
  if (!opt.head.empty()) {
    QYOLO_ASSIGN_OR_RETURN(d->head_->specs, load_head(opt.head));
  }
  const int nc = static_cast<int>(engine->info().class_names.size());
  d->head_->ctx.nc_hint = nc > 0 ? nc : -1;
  d->head_->ctx.max_stride = stride;
  d->engine_ = std::move(engine);
  d->options_ = opt;
  QYOLO_ASSIGN_OR_RETURN(d->context_, d->engine_->create_context());
  if (d->engine_->options().device == Device::kCuda && opt.gpu_prepost) {
    QYOLO_ASSIGN_OR_RETURN(d->gpu_, GpuPipeline::create(*d->context_, opt.nms, nc > 0 ? nc : -1));
  }
  return d;
}

std::string Detector::head_description() const {
  return head_ && head_->bound ? head_->bound->describe() : std::string();
}

Result<Tensor> Detector::decode_outputs(const std::vector<Tensor>& outputs) {
  const ModelInfo& info = engine_->info();
  for (size_t i = 0; i < outputs.size(); ++i)
    if (outputs[i].dtype() != DataType::kFloat32)
      return unsupported("output '" + (i < info.output_names.size() ? info.output_names[i] : std::string("?")) +
                         "' is " + dtype_name(outputs[i].dtype()) + ", float32 expected");
  HeadState& hs = *head_;
  auto bound = hs.bind(outputs, info.output_names, options_.input_h, options_.input_w);
  if (!bound) return bound.status().with_context(info.source);
  auto host_ptrs = [&] {
    std::vector<const float*> p;
    for (const Tensor& t : outputs) p.push_back(t.data<float>());
    return p;
  };
  if (!hs.checked && !hs.specs.empty()) {
    // "auto" score activations: decided on this first output, fixed for every later binding.
    const HeadSpec resolved = resolve_activation(hs.specs[static_cast<size_t>((*bound)->alternative)], **bound, host_ptrs());
    hs.specs = {resolved};
    hs.bound.reset();
    bound = hs.bind(outputs, info.output_names, options_.input_h, options_.input_w);
    if (!bound) return bound.status().with_context(info.source);
  }
  const BoundHead& h = **bound;
  Tensor decoded;
  if (h.passthrough_output >= 0) {
    decoded = outputs[static_cast<size_t>(h.passthrough_output)];
  } else {
    if (hs.decoded.shape() != h.decoded_shape()) hs.decoded = Tensor::uninitialized(DataType::kFloat32, h.decoded_shape());
    Status st = decode_head(h, host_ptrs(), hs.decoded.data<float>());
    if (!st) return st.with_context(info.source);
    decoded = hs.decoded;
  }
  if (!hs.checked) {
    QYOLO_RETURN_IF_ERROR(check_score_quantization(*engine_, h, context_->input_shape()).with_context(info.source));
    const std::string name = h.passthrough_output >= 0 ? info.output_names[static_cast<size_t>(h.passthrough_output)]
                                                       : std::string("decoded head");
    QYOLO_RETURN_IF_ERROR(check_decoded_head(decoded.data<float>(), decoded.shape(), h.kind(), name, options_.input_h,
                                             options_.input_w, hs.specs.empty() ? "" : h.spec_name)
                              .with_context(info.source));
    if (options_.nms.iou < 0) options_.nms.iou = h.objectness ? options_.iou_objectness : options_.iou_no_objectness;
    if (gpu_) QYOLO_RETURN_IF_ERROR(gpu_->set_head(hs.specs, options_.nms));
    hs.checked = true;
  }
  return decoded;
}

Result<double> Detector::prepare(int batch) {
  if (batch <= 0) return invalid_argument("prepare(): batch must be positive, got " + std::to_string(batch));
  const auto t0 = std::chrono::steady_clock::now();
  // Blank images (the letterbox pad colour): a decoded head still gives scores in [0, 1] on them.
  Image blank(options_.input_w, options_.input_h, 114);
  const std::vector<const Image*> images(static_cast<size_t>(batch), &blank);
  const InputFormat format = engine_->options().input_format;
  Tensor input = preprocess(images, options_.input_h, options_.input_w, nullptr, format);
  QYOLO_RETURN_IF_ERROR(context_->set_input_shape(model_shape(input, format)));
  std::vector<Tensor> outputs;
  QYOLO_RETURN_IF_ERROR(context_->run(input, outputs));
  QYOLO_RETURN_IF_ERROR(decode_outputs(outputs).status());
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

Tensor Detector::preprocess(const std::vector<const Image*>& images, int h, int w,
                            std::vector<LetterboxInfo>* infos, InputFormat format) {
  if (format == InputFormat::kFloat32Nchw) return preprocess(images, h, w, infos);
  Tensor input = Tensor::uninitialized(DataType::kUInt8, {static_cast<int64_t>(images.size()), h, w, 3});
  if (infos) infos->resize(images.size());
  const size_t per_image = static_cast<size_t>(3) * h * w;
#pragma omp parallel for schedule(dynamic) if (images.size() > 1)
  for (size_t i = 0; i < images.size(); ++i) {
    LetterboxInfo info;
    const Image boxed = letterbox(*images[i], h, w, &info);
    std::copy(boxed.rgb.begin(), boxed.rgb.end(), input.data<uint8_t>() + i * per_image);
    if (infos) (*infos)[i] = info;
  }
  return input;
}

Shape Detector::model_shape(const Tensor& input, InputFormat format) {
  const Shape& s = input.shape();
  if (format == InputFormat::kUint8Nhwc && s.size() == 4) return {s[0], s[3], s[1], s[2]};
  return s;
}

Result<std::vector<std::vector<Detection>>> Detector::detect(const std::vector<const Image*>& images) {
  if (images.empty()) return std::vector<std::vector<Detection>>{};
  // The first call checks the model's head on blank images (prepare) before any real output is used.
  double first_setup_s = 0;
  if (!head_->checked) {
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
  const InputFormat format = engine_->options().input_format;
  Tensor input = preprocess(images, options_.input_h, options_.input_w, &infos, format);
  last_pre_s = seconds_since(t0);

  // A new batch size builds its executor once: set-up, not network time.
  t0 = std::chrono::steady_clock::now();
  QYOLO_RETURN_IF_ERROR(context_->set_input_shape(model_shape(input, format)));
  last_setup_s = first_setup_s + seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  QYOLO_RETURN_IF_ERROR(context_->run(input, outputs_));
  last_infer_s = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  QYOLO_ASSIGN_OR_RETURN(Tensor decoded, decode_outputs(outputs_));
  QYOLO_ASSIGN_OR_RETURN(auto dets, postprocess(decoded, head_->bound->kind(), options_.nms));
  to_original(dets, infos);
  last_post_s = seconds_since(t0);
  return dets;
}

}  // namespace qyolo
