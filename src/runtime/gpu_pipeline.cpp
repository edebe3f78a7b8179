#include "runtime/gpu_pipeline.h"

#ifdef QYOLO_HAS_CUDA

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <string>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_executor.h"
#include "backends/cuda/postprocess.h"
#include "backends/cuda/preprocess.h"
#include "runtime/engine_impl.h"
#include "yolo/postprocess.h"

namespace qyolo {

namespace {

constexpr size_t kImageAlign = 256;                   // each image's offset in the staging buffers
constexpr size_t kMinStagingBytes = size_t{8} << 20;  // first allocation: a batch of typical photos
constexpr size_t kMaxCachedShapes = 4;                // batch shapes whose buffers are kept

size_t align_up(size_t n) {
  return (n + kImageAlign - 1) / kImageAlign * kImageAlign;
}

// Capacity for `need` bytes when `have` are too few: grows by at least half, so that ever larger
// batches reallocate a logarithmic number of times.
size_t grown_capacity(size_t need, size_t have) {
  return std::max({need, have + have / 2, kMinStagingBytes});
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

size_t image_bytes(const Image& im) {
  return im.empty() ? 0 : static_cast<size_t>(im.width) * static_cast<size_t>(im.height) * 3;
}

}  // namespace

struct GpuPipeline::Impl {
  // Device buffers of one batch shape: sized on its first run, reused after.
  struct ShapeBuffers {
    Shape input_shape, head_shape;
    DataType input_dtype = DataType::kFloat32;
    size_t image_input_bytes = 0;  // one image's slice of the batch input
    cuda::DeviceBuffer input;
    std::vector<cuda::DeviceBuffer> outputs;  // every executor output (enqueue binds them all)
    std::vector<const void*> input_ptrs;
    std::vector<void*> output_ptrs;
    BoundHead bound;                            // the head at this shape
    cuda::DeviceBuffer decoded;                 // raw heads: the decoded tensor
    std::unique_ptr<cuda::GpuHeadDecoder> decoder;  // raw heads
    const float* nms_input = nullptr;           // the decoded tensor (an output for decoded heads)
    std::unique_ptr<cuda::GpuPostprocessor> post;
  };

  ExecutionContext::Impl* context = nullptr;
  NmsOptions nms;
  std::vector<HeadSpec> head_specs;  // empty: the first output is a decoded ultralytics head
  HeadBindContext head_ctx;
  int device = -1;                    // set with the stream on the first run
  cuda::Stream stream;
  cuda::Event ev_start, ev_pre, ev_infer;
  cuda::HostBuffer staging;   // pinned copies of one batch's images
  cuda::DeviceBuffer images;  // the same bytes on the device (same offsets)
  std::map<Shape, std::unique_ptr<ShapeBuffers>> shapes;
  const ShapeBuffers* last = nullptr;

  Status init_device(int dev);
  Result<ShapeBuffers*> buffers_for(const Shape& shape, const CudaExecutor& exec);
  Result<std::unique_ptr<ShapeBuffers>> make_buffers(const Shape& shape, const CudaExecutor& exec);
  Status enqueue(const std::vector<const Image*>& batch, const std::vector<size_t>& offsets,
                 CudaExecutor& exec, ShapeBuffers& sb, int input_h, int input_w,
                 std::vector<LetterboxInfo>& infos);
  Result<Tensor> download(const cuda::DeviceBuffer& buf, DataType dtype, const Shape& shape) const;
};

Status GpuPipeline::Impl::init_device(int dev) {
  if (device == dev) return Status::ok();
  if (device >= 0)
    return internal_error("GPU pipeline: the engine's executor moved from device " + std::to_string(device) +
                          " to " + std::to_string(dev));
  QYOLO_CUDA_CHECK(cudaSetDevice(dev));
  QYOLO_ASSIGN_OR_RETURN(stream, cuda::make_stream());
  QYOLO_ASSIGN_OR_RETURN(ev_start, cuda::make_event(true));
  QYOLO_ASSIGN_OR_RETURN(ev_pre, cuda::make_event(true));
  QYOLO_ASSIGN_OR_RETURN(ev_infer, cuda::make_event(true));
  device = dev;
  return Status::ok();
}

Result<std::unique_ptr<GpuPipeline::Impl::ShapeBuffers>> GpuPipeline::Impl::make_buffers(
    const Shape& shape, const CudaExecutor& exec) {
  if (exec.inputs().size() != 1)
    return unsupported("the network has " + std::to_string(exec.inputs().size()) +
                       " inputs; one image input expected");
  const CudaBinding& in = exec.inputs()[0];
  // A uint8 image input (InputFormat::kUint8Nhwc) takes the letterboxed bytes, NHWC.
  const Shape expected = in.dtype == DataType::kUInt8 && shape.size() == 4
                             ? Shape{shape[0], shape[2], shape[3], shape[1]}
                             : shape;
  if (in.shape != expected)
    return internal_error("the executor's input '" + in.name + "' is " + shape_str(in.shape) + ", not " +
                          shape_str(expected));
  if (in.dtype != DataType::kFloat32 && in.dtype != DataType::kFloat16 && in.dtype != DataType::kUInt8)
    return unsupported("input '" + in.name + "' is " + dtype_name(in.dtype) +
                       "; the GPU letterbox writes float32, float16 or uint8");
  auto sb = std::make_unique<ShapeBuffers>();
  std::vector<OutputDesc> descs;
  for (const CudaBinding& b : exec.outputs()) descs.push_back({b.name, b.shape});
  HeadBindContext hc = head_ctx;
  hc.input_h = static_cast<int>(shape[2]);
  hc.input_w = static_cast<int>(shape[3]);
  QYOLO_ASSIGN_OR_RETURN(sb->bound, head_specs.empty() ? bind_default_head(descs, hc) : bind_head(head_specs, descs, hc));
  for (int k : sb->bound.outputs_used) {
    const CudaBinding& out = exec.outputs()[static_cast<size_t>(k)];
    if (out.dtype != DataType::kFloat32)
      return unsupported("output '" + out.name + "' is " + dtype_name(out.dtype) + "; the GPU decode and NMS read float32");
  }
  sb->input_shape = shape;
  sb->head_shape = sb->bound.decoded_shape();
  sb->input_dtype = in.dtype;
  sb->image_input_bytes = in.nbytes() / static_cast<size_t>(shape[0]);
  QYOLO_ASSIGN_OR_RETURN(sb->input, cuda::DeviceBuffer::allocate(in.nbytes()));
  sb->input_ptrs = {sb->input.get()};
  for (const CudaBinding& b : exec.outputs()) {
    QYOLO_ASSIGN_OR_RETURN(auto buf, cuda::DeviceBuffer::allocate(b.nbytes()));
    sb->output_ptrs.push_back(buf.get());
    sb->outputs.push_back(std::move(buf));
  }
  if (sb->bound.passthrough_output >= 0) {
    sb->nms_input = static_cast<const float*>(sb->output_ptrs[static_cast<size_t>(sb->bound.passthrough_output)]);
  } else {
    std::vector<const float*> ptrs;
    for (void* p : sb->output_ptrs) ptrs.push_back(static_cast<const float*>(p));
    QYOLO_ASSIGN_OR_RETURN(sb->decoded,
                           cuda::DeviceBuffer::allocate(static_cast<size_t>(shape_numel(sb->head_shape)) * sizeof(float)));
    QYOLO_ASSIGN_OR_RETURN(sb->decoder, cuda::GpuHeadDecoder::create(sb->bound, ptrs, sb->decoded.as<float>()));
    sb->nms_input = sb->decoded.as<float>();
  }
  QYOLO_ASSIGN_OR_RETURN(sb->post, cuda::GpuPostprocessor::create(sb->head_shape, sb->bound.kind(), nms));
  return sb;
}

Result<GpuPipeline::Impl::ShapeBuffers*> GpuPipeline::Impl::buffers_for(const Shape& shape,
                                                                        const CudaExecutor& exec) {
  auto it = shapes.find(shape);
  if (it != shapes.end()) return it->second.get();
  auto made = make_buffers(shape, exec);
  if (!made) return made.status().with_context("GPU pipeline at input " + shape_str(shape));
  if (shapes.size() >= kMaxCachedShapes) {
    if (shapes.begin()->second.get() == last) last = nullptr;
    shapes.erase(shapes.begin());
  }
  return shapes.emplace(shape, std::move(made).value()).first->second.get();
}

Status GpuPipeline::Impl::enqueue(const std::vector<const Image*>& batch, const std::vector<size_t>& offsets,
                                  CudaExecutor& exec, ShapeBuffers& sb, int input_h, int input_w,
                                  std::vector<LetterboxInfo>& infos) {
  cudaStream_t s = stream.get();
  QYOLO_CUDA_CHECK(cudaEventRecord(ev_start.get(), s));
  // Frames of one size, staged back to back (a camera's batch): one copy and one letterbox launch.
  const size_t first_bytes = batch.empty() ? 0 : image_bytes(*batch[0]);
  bool uniform = first_bytes > 0;
  for (size_t i = 0; i < batch.size() && uniform; ++i)
    uniform = batch[i]->width == batch[0]->width && batch[i]->height == batch[0]->height &&
              offsets[i] == offsets[0] + i * first_bytes;
  if (uniform) {
    const Image& im = *batch[0];
    QYOLO_CUDA_CHECK(cudaMemcpyAsync(images.as<uint8_t>() + offsets[0], staging.as<uint8_t>() + offsets[0],
                                     first_bytes * batch.size(), cudaMemcpyHostToDevice, s));
    Status st = cuda::letterbox_batch_gpu(images.as<uint8_t>() + offsets[0], im.width, im.height,
                                          static_cast<size_t>(im.width) * 3, first_bytes,
                                          static_cast<int>(batch.size()), input_h, input_w, sb.input_dtype,
                                          sb.input.get(), s, &infos[0]);
    if (!st)
      return st.with_context("GPU letterbox of a batch of " + std::to_string(batch.size()) + " images");
    for (size_t i = 1; i < batch.size(); ++i) infos[i] = infos[0];
  }
  for (size_t i = 0; i < batch.size() && !uniform; ++i) {
    const Image& im = *batch[i];
    const size_t bytes = image_bytes(im);
    const uint8_t* src = nullptr;  // empty image: the letterbox writes pad only
    if (bytes > 0) {
      src = images.as<uint8_t>() + offsets[i];
      QYOLO_CUDA_CHECK(cudaMemcpyAsync(images.as<uint8_t>() + offsets[i], staging.as<uint8_t>() + offsets[i],
                                       bytes, cudaMemcpyHostToDevice, s));
    }
    void* dst = sb.input.as<uint8_t>() + i * sb.image_input_bytes;
    Status st = cuda::letterbox_to_nchw_gpu(src, im.width, im.height, static_cast<size_t>(im.width) * 3,
                                            input_h, input_w, sb.input_dtype, dst, s, &infos[i]);
    if (!st) return st.with_context("GPU letterbox of image " + std::to_string(i));
  }
  QYOLO_CUDA_CHECK(cudaEventRecord(ev_pre.get(), s));
  QYOLO_RETURN_IF_ERROR(exec.enqueue(sb.input_ptrs, sb.output_ptrs, s));
  QYOLO_CUDA_CHECK(cudaEventRecord(ev_infer.get(), s));
  if (sb.decoder) QYOLO_RETURN_IF_ERROR(sb.decoder->enqueue(s));
  return sb.post->enqueue(sb.nms_input, s);
}

Result<Tensor> GpuPipeline::Impl::download(const cuda::DeviceBuffer& buf, DataType dtype,
                                           const Shape& shape) const {
  Tensor t = Tensor::uninitialized(dtype, shape);
  if (t.nbytes() > buf.size()) return internal_error("GPU pipeline: buffer smaller than " + shape_str(shape));
  QYOLO_CUDA_CHECK(cudaSetDevice(device));
  QYOLO_CUDA_CHECK(cudaMemcpyAsync(t.raw(), buf.get(), t.nbytes(), cudaMemcpyDeviceToHost, stream.get()));
  QYOLO_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
  return t;
}

GpuPipeline::~GpuPipeline() = default;

Result<std::unique_ptr<GpuPipeline>> GpuPipeline::create(ExecutionContext& context, const NmsOptions& nms,
                                                         int num_classes_hint) {
  ExecutionContext::Impl& ctx = context.impl();
  if (ctx.engine == nullptr) return invalid_argument("GPU pipeline: execution context without an engine");
  if (ctx.engine->options.device != Device::kCuda)
    return invalid_argument(std::string("GPU pipeline: the engine runs on ") +
                            device_name(ctx.engine->options.device) + ", not cuda");
  auto p = std::unique_ptr<GpuPipeline>(new GpuPipeline());
  p->impl_ = std::make_unique<Impl>();
  p->impl_->context = &ctx;
  p->impl_->nms = nms;
  p->impl_->head_ctx.nc_hint = num_classes_hint;
  p->impl_->head_ctx.max_stride = ctx.engine->info.stride;
  return p;
}

Status GpuPipeline::set_head(const std::vector<HeadSpec>& specs, const NmsOptions& nms) {
  if (!impl_->shapes.empty()) return internal_error("GPU pipeline: set_head() after the first run");
  impl_->head_specs = specs;
  impl_->nms = nms;
  return Status::ok();
}

Result<std::vector<std::vector<Detection>>> GpuPipeline::run(const std::vector<const Image*>& batch,
                                                             int input_h, int input_w,
                                                             std::vector<LetterboxInfo>* infos_out,
                                                             Times* times) {
  if (batch.empty()) return std::vector<std::vector<Detection>>{};
  const auto t_start = std::chrono::steady_clock::now();
  Impl& im = *impl_;
  // Check the images before anything is enqueued.
  std::vector<size_t> offsets(batch.size());
  size_t total = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i] == nullptr) return invalid_argument("GPU pipeline: image " + std::to_string(i) + " is null");
    const Image& img = *batch[i];
    if (img.rgb.size() < image_bytes(img))
      return invalid_argument("GPU pipeline: image " + std::to_string(i) + " (" + std::to_string(img.width) +
                              "x" + std::to_string(img.height) + ") holds " + std::to_string(img.rgb.size()) +
                              " bytes, " + std::to_string(image_bytes(img)) + " expected");
    offsets[i] = total;
    total += align_up(image_bytes(img));
  }
  const Shape shape{static_cast<int64_t>(batch.size()), 3, input_h, input_w};
  QYOLO_ASSIGN_OR_RETURN(CudaExecutor * exec, im.context->cuda_executor_for(shape));
  QYOLO_RETURN_IF_ERROR(im.init_device(exec->options().device));
  QYOLO_CUDA_CHECK(cudaSetDevice(im.device));
  QYOLO_ASSIGN_OR_RETURN(Impl::ShapeBuffers * sb, im.buffers_for(shape, *exec));
  // The stream is idle between runs (each ends synchronised), so the staging buffers can be replaced.
  if (im.staging.size() < total) {
    const size_t bytes = grown_capacity(total, im.staging.size());
    im.staging.reset();
    QYOLO_ASSIGN_OR_RETURN(im.staging, cuda::HostBuffer::allocate(bytes));
  }
  if (im.images.size() < total) {
    const size_t bytes = grown_capacity(total, im.images.size());
    im.images.reset();
    QYOLO_ASSIGN_OR_RETURN(im.images, cuda::DeviceBuffer::allocate(bytes));
  }
  // Building the executor for a new shape (first run) is set-up, reported apart from network time.
  const double setup_s = seconds_since(t_start);
  const auto t_stage = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(dynamic) if (batch.size() > 1)
  for (size_t i = 0; i < batch.size(); ++i)
    if (image_bytes(*batch[i]) > 0)
      std::memcpy(im.staging.as<uint8_t>() + offsets[i], batch[i]->rgb.data(), image_bytes(*batch[i]));
  const double stage_s = seconds_since(t_stage);

  std::vector<LetterboxInfo> local_infos;
  std::vector<LetterboxInfo>& infos = infos_out ? *infos_out : local_infos;
  infos.assign(batch.size(), LetterboxInfo{});
  im.last = nullptr;
  if (Status st = im.enqueue(batch, offsets, *exec, *sb, input_h, input_w, infos); !st) {
    // Leave the stream idle (the staging buffers may still be read); the error is `st`.
    (void)cudaStreamSynchronize(im.stream.get());
    return st;
  }
  auto dets = sb->post->download(im.stream.get());  // synchronises the stream
  if (!dets) {
    (void)cudaStreamSynchronize(im.stream.get());
    return dets.status().with_context("GPU pipeline at input " + shape_str(shape));
  }
  if (sb->decoder) {
    Status st = sb->decoder->check();  // read after the synchronisation above
    if (!st) return st.with_context(im.context->engine->info.source);
  }
  im.last = sb;
  if (times) {
    float pre_ms = 0, infer_ms = 0;
    QYOLO_CUDA_CHECK(cudaEventElapsedTime(&pre_ms, im.ev_start.get(), im.ev_pre.get()));
    QYOLO_CUDA_CHECK(cudaEventElapsedTime(&infer_ms, im.ev_pre.get(), im.ev_infer.get()));
    times->pre_s = stage_s + pre_ms * 1e-3;
    times->setup_s = setup_s;
    times->infer_s = infer_ms * 1e-3;
    times->post_s = std::max(0.0, seconds_since(t_start) - times->setup_s - times->pre_s - times->infer_s);
  }
  return std::move(dets).value();
}

Result<Tensor> GpuPipeline::last_input() const {
  const Impl::ShapeBuffers* sb = impl_->last;
  if (sb == nullptr) return invalid_argument("GPU pipeline: no successful run to read the input of");
  return impl_->download(sb->input, sb->input_dtype, sb->input_shape);
}

Result<Tensor> GpuPipeline::last_output() const {
  const Impl::ShapeBuffers* sb = impl_->last;
  if (sb == nullptr) return invalid_argument("GPU pipeline: no successful run to read the output of");
  if (sb->decoder) return impl_->download(sb->decoded, DataType::kFloat32, sb->head_shape);
  return impl_->download(sb->outputs[static_cast<size_t>(sb->bound.passthrough_output)], DataType::kFloat32,
                         sb->head_shape);
}

std::string GpuPipeline::last_head_description() const {
  return impl_->last ? impl_->last->bound.describe() : std::string();
}

}  // namespace qyolo

#else  // !QYOLO_HAS_CUDA

namespace qyolo {

struct GpuPipeline::Impl {};

GpuPipeline::~GpuPipeline() = default;

namespace {
Status no_cuda() {
  return unsupported(
      "GPU pre/post-processing needs a qyolo built with CUDA (no nvcc at build time); use --device cpu");
}
}  // namespace

Result<std::unique_ptr<GpuPipeline>> GpuPipeline::create(ExecutionContext&, const NmsOptions&, int) {
  return no_cuda();
}
Result<std::vector<std::vector<Detection>>> GpuPipeline::run(const std::vector<const Image*>&, int, int,
                                                             std::vector<LetterboxInfo>*, Times*) {
  return no_cuda();
}
Result<Tensor> GpuPipeline::last_input() const {
  return no_cuda();
}
Result<Tensor> GpuPipeline::last_output() const {
  return no_cuda();
}
Status GpuPipeline::set_head(const std::vector<HeadSpec>&, const NmsOptions&) {
  return no_cuda();
}
std::string GpuPipeline::last_head_description() const {
  return {};
}

}  // namespace qyolo

#endif  // QYOLO_HAS_CUDA
