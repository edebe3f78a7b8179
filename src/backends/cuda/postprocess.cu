#include <cub/cub.cuh>
#include <cub/device/device_segmented_sort.cuh>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/postprocess.h"

namespace qyolo::cuda {

struct GpuPostprocessor::Params {
  int batch = 0, nc = 0, cap = 0, max_det = 0, max_nms = 0;
  int64_t anchors = 0, channels = 0;
  bool v5 = true, multi = false, agnostic = false, filter = false;
  float conf = 0, iou = 0, max_wh = 0;
};

namespace {

struct DecodeArgs {
  const float* out;
  int batch, nc, cap;
  int64_t anchors, channels;
  bool v5, multi, filter;
  float conf;
  const unsigned char* allowed;  // [nc] when filter
  int* counts;                   // [batch]
  int* overflow;
  unsigned long long* keys;      // [batch * cap]
  int* vals;
  float4* boxes;
  float* scores;
  int* classes;
};

__device__ __forceinline__ float at(const DecodeArgs& a, const float* base, int64_t anchor, int64_t c) {
  return a.v5 ? base[anchor * a.channels + c] : base[c * a.anchors + anchor];
}

__device__ __forceinline__ void push(const DecodeArgs& a, int b, float4 box, float score, int cls, unsigned order) {
  const int slot = atomicAdd(&a.counts[b], 1);
  if (slot >= a.cap) {
    atomicAdd(a.overflow, 1);
    return;
  }
  const int64_t i = static_cast<int64_t>(b) * a.cap + slot;
  // Descending key: score (positive, so its bits order like the value), then ascending order.
  a.keys[i] = (static_cast<unsigned long long>(__float_as_uint(score)) << 32) | (0xFFFFFFFFu - order);
  a.vals[i] = slot;
  a.boxes[i] = box;
  a.scores[i] = score;
  a.classes[i] = cls;
}

__global__ void decode_kernel(DecodeArgs a) {
  await_producers();
  const int64_t total = static_cast<int64_t>(a.batch) * a.anchors;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int b = static_cast<int>(t / a.anchors);
    const int64_t an = t % a.anchors;
    const float* base = a.out + static_cast<int64_t>(b) * a.anchors * a.channels;
    const int cls0 = a.v5 ? 5 : 4;
    float obj = 1.0f;
    if (a.v5) {
      obj = at(a, base, an, 4);
      if (!(obj > a.conf)) continue;
    }
    if (!a.v5) {
      float best = -INFINITY;
      for (int c = 0; c < a.nc; ++c) best = fmaxf(best, at(a, base, an, cls0 + c));
      if (!(best > a.conf)) continue;
    }
    const float cx = at(a, base, an, 0), cy = at(a, base, an, 1), w = at(a, base, an, 2), h = at(a, base, an, 3);
    const float hw = __fdiv_rn(w, 2.0f), hh = __fdiv_rn(h, 2.0f);
    const float4 box = make_float4(__fsub_rn(cx, hw), __fsub_rn(cy, hh), __fadd_rn(cx, hw), __fadd_rn(cy, hh));
    if (a.multi) {
      for (int c = 0; c < a.nc; ++c) {
        const float s = a.v5 ? __fmul_rn(at(a, base, an, cls0 + c), obj) : at(a, base, an, cls0 + c);
        if (s > a.conf && (!a.filter || a.allowed[c]))
          push(a, b, box, s, c, static_cast<unsigned>(an * a.nc + c));
      }
    } else {
      float best = a.v5 ? __fmul_rn(at(a, base, an, cls0), obj) : at(a, base, an, cls0);
      int best_c = 0;
      for (int c = 1; c < a.nc && !isnan(best); ++c) {
        const float s = a.v5 ? __fmul_rn(at(a, base, an, cls0 + c), obj) : at(a, base, an, cls0 + c);
        if (s > best || isnan(s)) {
          best = s;
          best_c = c;
        }
      }
      if (best > a.conf && (!a.filter || a.allowed[best_c])) push(a, b, box, best, best_c, static_cast<unsigned>(an));
    }
  }
}

__global__ void segment_ends_kernel(const int* counts, int cap, int batch, int* begin, int* end) {
  await_producers();
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= batch) return;
  begin[b] = b * cap;
  end[b] = b * cap + min(counts[b], cap);
}

struct NmsArgs {
  int cap, max_det, max_nms;
  float iou, max_wh;
  bool agnostic;
  const int* counts;
  const int* order;  // sorted slots
  const float4* boxes;
  const float* scores;
  const int* classes;
  unsigned char* suppressed;  // [batch * cap]
  Detection* dets;            // [batch * max_det]
  int* det_counts;
};

// The shifted box (class offset) and its area, as the CPU computes them.
__device__ __forceinline__ float4 shifted_box(const NmsArgs& a, int64_t slot) {
  const float4 b = a.boxes[slot];
  const float off = a.agnostic ? 0.0f : __fmul_rn(static_cast<float>(a.classes[slot]), a.max_wh);
  return make_float4(__fadd_rn(b.x, off), __fadd_rn(b.y, off), __fadd_rn(b.z, off), __fadd_rn(b.w, off));
}
__device__ __forceinline__ float area(float4 b) { return __fmul_rn(__fsub_rn(b.z, b.x), __fsub_rn(b.w, b.y)); }

constexpr int kNmsThreads = 1024;

// Up to this many images, cub's DeviceSegmentedSort (one launch, a block per image: for few
// candidates per image) replaces the segmented radix sort (a launch per 6-7 key bits: ~10 for the
// 64-bit keys). Above it DeviceSegmentedSort partitions the segments with a host round trip,
// which a CUDA graph cannot capture; its smallest partitioning threshold is 300.
constexpr int kSegmentedSortMaxImages = 300;
bool segmented_sort(int batch) { return batch <= kSegmentedSortMaxImages; }

// One block per image: greedy NMS in score order; each round keeps the next unsuppressed box,
// suppresses what overlaps it and finds the next survivor in one pass.
__global__ void __launch_bounds__(kNmsThreads) nms_kernel(NmsArgs a) {
  await_producers();
  const int b = blockIdx.x;
  const int64_t base = static_cast<int64_t>(b) * a.cap;
  const int n = min(min(a.counts[b], a.cap), a.max_nms);
  const int* order = a.order + base;
  unsigned char* sup = a.suppressed + base;
  __shared__ int s_next[kNmsThreads / 32];
  __shared__ int s_i;
  for (int j = threadIdx.x; j < n; j += blockDim.x) sup[j] = 0;
  __syncthreads();
  int i = 0, kept = 0;
  while (i < n && kept < a.max_det) {
    const int64_t si = base + order[i];
    const float4 bi = shifted_box(a, si);
    const float ai = area(bi);
    if (threadIdx.x == 0) {
      const float4 ob = a.boxes[si];
      Detection d;
      d.x1 = ob.x;
      d.y1 = ob.y;
      d.x2 = ob.z;
      d.y2 = ob.w;
      d.score = a.scores[si];
      d.class_id = a.classes[si];
      a.dets[static_cast<int64_t>(b) * a.max_det + kept] = d;
    }
    ++kept;
    int next = INT_MAX;
    for (int j = i + 1 + threadIdx.x; j < n; j += blockDim.x) {
      if (sup[j]) continue;
      const float4 bj = shifted_box(a, base + order[j]);
      const float w = fmaxf(0.0f, __fsub_rn(fminf(bi.z, bj.z), fmaxf(bi.x, bj.x)));
      const float h = fmaxf(0.0f, __fsub_rn(fminf(bi.w, bj.w), fmaxf(bi.y, bj.y)));
      const float inter = __fmul_rn(w, h);
      const float ovr = __fdiv_rn(inter, __fsub_rn(__fadd_rn(ai, area(bj)), inter));
      if (ovr > a.iou) {
        sup[j] = 1;
      } else if (j < next) {
        next = j;
      }
    }
    // Block-wide minimum of the survivors' indices.
    for (int o = 16; o > 0; o >>= 1) next = min(next, __shfl_down_sync(0xFFFFFFFFu, next, o));
    if ((threadIdx.x & 31) == 0) s_next[threadIdx.x >> 5] = next;
    __syncthreads();
    if (threadIdx.x < 32) {
      int v = threadIdx.x < (blockDim.x + 31) / 32 ? s_next[threadIdx.x] : INT_MAX;
      for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_down_sync(0xFFFFFFFFu, v, o));
      if (threadIdx.x == 0) s_i = v;
    }
    __syncthreads();
    i = s_i;
    __syncthreads();
  }
  if (threadIdx.x == 0) a.det_counts[b] = kept;
}

__global__ void head_decode_kernel(const HeadDecodeParams* hp, GpuHeadDecoder::Pointers ptrs, float* decoded, int* bad,
                                   int64_t total) {
  await_producers();
  int local_bad = 0;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x)
    local_bad += head_decode_point(*hp, ptrs.p, t / hp->points, t % hp->points, decoded);
  if (local_bad) atomicAdd(bad, local_bad);
}

}  // namespace

GpuHeadDecoder::~GpuHeadDecoder() = default;

Result<std::unique_ptr<GpuHeadDecoder>> GpuHeadDecoder::create(const BoundHead& head,
                                                               const std::vector<const float*>& outputs, float* decoded) {
  QYOLO_ASSIGN_OR_RETURN(HeadDecodeParams params, make_decode_params(head));
  if (outputs.size() > static_cast<size_t>(kMaxOutputs))
    return unsupported("the GPU head decode reads at most " + std::to_string(kMaxOutputs) + " outputs, the model has " +
                       std::to_string(outputs.size()));
  for (int o : head.outputs_used)
    if (o < 0 || static_cast<size_t>(o) >= outputs.size() || outputs[static_cast<size_t>(o)] == nullptr)
      return invalid_argument("GPU head decode: output " + std::to_string(o) + " has no buffer");
  if (decoded == nullptr) return invalid_argument("GPU head decode: no buffer for the decoded head");
  auto d = std::unique_ptr<GpuHeadDecoder>(new GpuHeadDecoder());
  d->name_ = head.spec_name;
  d->total_ = head.batch * head.points;
  for (size_t i = 0; i < outputs.size(); ++i) d->ptrs_.p[i] = outputs[i];
  d->decoded_ = decoded;
  QYOLO_ASSIGN_OR_RETURN(d->params_, DeviceBuffer::allocate(sizeof(HeadDecodeParams)));
  QYOLO_RETURN_IF_ERROR(d->params_.upload(&params, sizeof(HeadDecodeParams)));
  QYOLO_ASSIGN_OR_RETURN(d->bad_, DeviceBuffer::allocate(sizeof(int)));
  QYOLO_ASSIGN_OR_RETURN(d->bad_host_, HostBuffer::allocate(sizeof(int)));
  *d->bad_host_.as<int>() = 0;
  return Result<std::unique_ptr<GpuHeadDecoder>>(std::move(d));
}

Status GpuHeadDecoder::enqueue(cudaStream_t stream) {
  QYOLO_CUDA_CHECK(cudaMemsetAsync(bad_.get(), 0, sizeof(int), stream));
  if (total_ > 0) {
    const int threads = 256;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((total_ + threads - 1) / threads, 65535 * 8));
    head_decode_kernel<<<blocks, threads, 0, stream>>>(params_.as<HeadDecodeParams>(), ptrs_, decoded_, bad_.as<int>(),
                                                      total_);
    QYOLO_CUDA_CHECK_LAUNCH("head_decode_kernel");
  }
  QYOLO_CUDA_CHECK(cudaMemcpyAsync(bad_host_.get(), bad_.get(), sizeof(int), cudaMemcpyDeviceToHost, stream));
  return Status::ok();
}

Status GpuHeadDecoder::check() const {
  const int bad = *bad_host_.as<int>();
  if (bad > 0)
    return invalid_argument("head '" + name_ + "': " + std::to_string(bad) +
                            " score values that the description takes as probabilities lie outside [0, 1]: the "
                            "scores are logits (set \"scores\": \"logits\" in the head description) or the "
                            "description does not fit the model");
  return Status::ok();
}

GpuPostprocessor::~GpuPostprocessor() = default;

Result<std::unique_ptr<GpuPostprocessor>> GpuPostprocessor::create(const Shape& shape, HeadKind kind,
                                                                  const NmsOptions& opt, int max_candidates) {
  QYOLO_ASSIGN_OR_RETURN(const int nc, head_num_classes(shape, kind));
  if (!(opt.conf >= 0.0f && opt.conf <= 1.0f)) return invalid_argument("NMS conf threshold must be in [0, 1]");
  if (!(opt.iou >= 0.0f && opt.iou <= 1.0f)) return invalid_argument("NMS IoU threshold must be in [0, 1]");
  if (opt.max_det < 0 || opt.max_nms <= 0 || opt.max_wh < 0) return invalid_argument("bad NMS limits");
  auto pp = std::unique_ptr<GpuPostprocessor>(new GpuPostprocessor());
  pp->p_ = std::make_unique<Params>();
  Params& p = *pp->p_;
  p.v5 = kind == HeadKind::kYoloV5;
  p.batch = static_cast<int>(shape[0]);
  p.anchors = p.v5 ? shape[1] : shape[2];
  p.channels = p.v5 ? shape[2] : shape[1];
  p.nc = nc;
  p.multi = opt.multi_label && nc > 1;
  p.agnostic = opt.agnostic;
  p.conf = opt.conf;
  p.iou = opt.iou;
  p.max_wh = static_cast<float>(opt.max_wh);
  p.max_det = opt.max_det;
  p.max_nms = opt.max_nms;
  int64_t cap = max_candidates > 0 ? max_candidates : (p.multi ? std::min<int64_t>(p.anchors * nc, 1 << 20) : p.anchors);
  cap = std::max<int64_t>(cap, 1);
  if (cap * std::max(p.batch, 1) > INT32_MAX) return invalid_argument("NMS candidate buffer too large");
  p.cap = static_cast<int>(cap);
  if (p.anchors * (p.multi ? nc : 1) > 0xFFFFFFFFll) return invalid_argument("too many anchors");
  p.filter = !opt.classes.empty();
  std::vector<unsigned char> allowed(static_cast<size_t>(nc), 0);
  for (int c : opt.classes)
    if (c >= 0 && c < nc) allowed[static_cast<size_t>(c)] = 1;

  const size_t n = static_cast<size_t>(p.batch) * p.cap;
  const size_t nb = static_cast<size_t>(std::max(p.batch, 1));
  QYOLO_ASSIGN_OR_RETURN(pp->counts_, DeviceBuffer::allocate(nb * sizeof(int) * 2));
  QYOLO_ASSIGN_OR_RETURN(pp->overflow_, DeviceBuffer::allocate(sizeof(int)));
  QYOLO_ASSIGN_OR_RETURN(pp->keys_, DeviceBuffer::allocate(n * 8));
  QYOLO_ASSIGN_OR_RETURN(pp->keys_sorted_, DeviceBuffer::allocate(n * 8));
  QYOLO_ASSIGN_OR_RETURN(pp->vals_, DeviceBuffer::allocate(n * 4));
  QYOLO_ASSIGN_OR_RETURN(pp->vals_sorted_, DeviceBuffer::allocate(n * 4));
  QYOLO_ASSIGN_OR_RETURN(pp->boxes_, DeviceBuffer::allocate(n * 16));
  QYOLO_ASSIGN_OR_RETURN(pp->scores_, DeviceBuffer::allocate(n * 4));
  QYOLO_ASSIGN_OR_RETURN(pp->classes_, DeviceBuffer::allocate(n * 4));
  QYOLO_ASSIGN_OR_RETURN(pp->suppressed_, DeviceBuffer::allocate(n));
  QYOLO_ASSIGN_OR_RETURN(pp->begin_, DeviceBuffer::allocate(nb * sizeof(int)));
  QYOLO_ASSIGN_OR_RETURN(pp->end_, DeviceBuffer::allocate(nb * sizeof(int)));
  QYOLO_ASSIGN_OR_RETURN(pp->dets_, DeviceBuffer::allocate(nb * std::max(p.max_det, 1) * sizeof(Detection)));
  QYOLO_ASSIGN_OR_RETURN(pp->allowed_, DeviceBuffer::allocate(allowed.size()));
  QYOLO_RETURN_IF_ERROR(pp->allowed_.upload(allowed.data(), allowed.size()));
  size_t temp = 0;
  if (segmented_sort(p.batch)) {
    QYOLO_CUDA_CHECK(cub::DeviceSegmentedSort::SortPairsDescending(
        nullptr, temp, pp->keys_.as<unsigned long long>(), pp->keys_sorted_.as<unsigned long long>(),
        pp->vals_.as<int>(), pp->vals_sorted_.as<int>(), static_cast<int64_t>(n), p.batch, pp->begin_.as<int>(),
        pp->end_.as<int>()));
  } else {
    QYOLO_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
        nullptr, temp, pp->keys_.as<unsigned long long>(), pp->keys_sorted_.as<unsigned long long>(),
        pp->vals_.as<int>(), pp->vals_sorted_.as<int>(), static_cast<int>(n), p.batch, pp->begin_.as<int>(),
        pp->end_.as<int>()));
  }
  pp->temp_bytes_ = std::max<size_t>(temp, 1);
  QYOLO_ASSIGN_OR_RETURN(pp->temp_, DeviceBuffer::allocate(pp->temp_bytes_));
  return Result<std::unique_ptr<GpuPostprocessor>>(std::move(pp));
}

Status GpuPostprocessor::enqueue(const float* output, cudaStream_t stream) {
  const Params& p = *p_;
  if (p.batch == 0) return Status::ok();
  int* counts = counts_.as<int>();
  int* det_counts = counts + p.batch;
  QYOLO_CUDA_CHECK(cudaMemsetAsync(counts_.get(), 0, counts_.size(), stream));
  QYOLO_CUDA_CHECK(cudaMemsetAsync(overflow_.get(), 0, sizeof(int), stream));
  DecodeArgs da{output, p.batch, p.nc, p.cap, p.anchors, p.channels, p.v5, p.multi, p.filter, p.conf,
                allowed_.as<unsigned char>(), counts, overflow_.as<int>(), keys_.as<unsigned long long>(),
                vals_.as<int>(), boxes_.as<float4>(), scores_.as<float>(), classes_.as<int>()};
  const int64_t total = static_cast<int64_t>(p.batch) * p.anchors;
  if (total > 0) {
    const int threads = 256;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((total + threads - 1) / threads, 65535 * 8));
    decode_kernel<<<blocks, threads, 0, stream>>>(da);
    QYOLO_CUDA_CHECK_LAUNCH("decode_kernel");
  }
  segment_ends_kernel<<<(p.batch + 255) / 256, 256, 0, stream>>>(counts, p.cap, p.batch, begin_.as<int>(), end_.as<int>());
  QYOLO_CUDA_CHECK_LAUNCH("segment_ends_kernel");
  size_t temp = temp_bytes_;
  if (segmented_sort(p.batch)) {
    QYOLO_CUDA_CHECK(cub::DeviceSegmentedSort::SortPairsDescending(
        temp_.get(), temp, keys_.as<unsigned long long>(), keys_sorted_.as<unsigned long long>(), vals_.as<int>(),
        vals_sorted_.as<int>(), static_cast<int64_t>(p.batch) * p.cap, p.batch, begin_.as<int>(), end_.as<int>(),
        stream));
  } else {
    QYOLO_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
        temp_.get(), temp, keys_.as<unsigned long long>(), keys_sorted_.as<unsigned long long>(), vals_.as<int>(),
        vals_sorted_.as<int>(), static_cast<int>(static_cast<size_t>(p.batch) * p.cap), p.batch, begin_.as<int>(),
        end_.as<int>(), 0, 64, stream));
  }
  NmsArgs na{p.cap, p.max_det, p.max_nms, p.iou, p.max_wh, p.agnostic, counts, vals_sorted_.as<int>(),
             boxes_.as<float4>(), scores_.as<float>(), classes_.as<int>(), suppressed_.as<unsigned char>(),
             dets_.as<Detection>(), det_counts};
  nms_kernel<<<p.batch, kNmsThreads, 0, stream>>>(na);
  QYOLO_CUDA_CHECK_LAUNCH("nms_kernel");
  return Status::ok();
}

Result<std::vector<std::vector<Detection>>> GpuPostprocessor::download(cudaStream_t stream) {
  const Params& p = *p_;
  std::vector<int> counts(static_cast<size_t>(p.batch) * 2);
  int overflow = 0;
  std::vector<Detection> dets(static_cast<size_t>(p.batch) * std::max(p.max_det, 1));
  if (p.batch > 0) {
    QYOLO_CUDA_CHECK(cudaMemcpyAsync(counts.data(), counts_.get(), counts.size() * sizeof(int), cudaMemcpyDeviceToHost, stream));
    QYOLO_CUDA_CHECK(cudaMemcpyAsync(&overflow, overflow_.get(), sizeof(int), cudaMemcpyDeviceToHost, stream));
    QYOLO_CUDA_CHECK(cudaMemcpyAsync(dets.data(), dets_.get(), dets.size() * sizeof(Detection), cudaMemcpyDeviceToHost, stream));
  }
  QYOLO_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (overflow > 0)
    return invalid_argument("GPU NMS: " + std::to_string(overflow) + " candidates exceeded the buffer of " +
                            std::to_string(p.cap) + " per image; raise max_candidates");
  std::vector<std::vector<Detection>> out(static_cast<size_t>(p.batch));
  for (int b = 0; b < p.batch; ++b) {
    const int k = counts[static_cast<size_t>(p.batch + b)];
    out[static_cast<size_t>(b)].assign(dets.begin() + static_cast<int64_t>(b) * std::max(p.max_det, 1),
                                       dets.begin() + static_cast<int64_t>(b) * std::max(p.max_det, 1) + k);
  }
  return out;
}

}  // namespace qyolo::cuda
