// ReduceMax / ReduceMin / ReduceMean / ReduceSum / ReduceSumSquare over any set of axes of a plain
// float/half value, accumulated in float. A warp per output element: its lanes walk the reduced
// elements (dims merged where contiguous, so the usual "last axes" case reads coalesced runs) and
// combine with shuffles. Empty axes with noop_with_empty_axes copy the input.
#include <cstring>

#include "backends/cuda/cuda_op_factories.h"
#include "backends/cuda/nd.h"
#include "backends/cuda/reduce_util.cuh"
#include "ir/ops/reduce.h"

namespace qyolo::cuda {

namespace {


// Input offsets of the kept (output) and the reduced index spaces, row-major over each.
struct ReduceParams {
  int kind = 0;
  int out_rank = 0, red_rank = 0;
  int64_t out_dims[kMaxNd] = {}, out_strides[kMaxNd] = {};
  int64_t red_dims[kMaxNd] = {}, red_strides[kMaxNd] = {};
  int64_t n_out = 0, count = 0;
};

__device__ __forceinline__ int64_t offset_of(int64_t idx, int rank, const int64_t* dims,
                                             const int64_t* strides) {
  int64_t off = 0;
  for (int d = rank - 1; d >= 0; --d) {
    const int64_t q = idx / dims[d];
    off += (idx - q * dims[d]) * strides[d];
    idx = q;
  }
  return off;
}

template <typename T>
__global__ void reduce_kernel(ReduceParams p, T* __restrict__ y, const T* __restrict__ x) {
  await_producers();
  const int lane = threadIdx.x & 31;
  const ReduceKind kind = static_cast<ReduceKind>(p.kind);
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); o < p.n_out;
       o += warps) {
    const T* base = x + offset_of(o, p.out_rank, p.out_dims, p.out_strides);
    const bool extreme = kind == ReduceKind::kMax || kind == ReduceKind::kMin;
    float acc = kind == ReduceKind::kMax ? -INFINITY : (kind == ReduceKind::kMin ? INFINITY : 0.f);
    for (int64_t r = lane; r < p.count; r += 32) {
      const float v = to_f(base[offset_of(r, p.red_rank, p.red_dims, p.red_strides)]);
      if (kind == ReduceKind::kMax)
        acc = fmaxf(acc, v);
      else if (kind == ReduceKind::kMin)
        acc = fminf(acc, v);
      else if (kind == ReduceKind::kSumSquare)
        acc += v * v;
      else
        acc += v;
    }
    if (kind == ReduceKind::kMin)
      acc = -warp_max(-acc);
    else if (extreme)
      acc = warp_max(acc);
    else
      acc = warp_sum(acc);
    if (kind == ReduceKind::kMean) acc /= static_cast<float>(p.count);
    if (lane == 0) y[o] = from_f<T>(acc);
  }
}

// Appends dim (size, stride) to (dims, strides), merging it into the previous one when contiguous.
void push_dim(int& rank, int64_t* dims, int64_t* strides, int64_t size, int64_t stride) {
  if (size == 1) return;
  if (rank > 0 && strides[rank - 1] == size * stride) {
    dims[rank - 1] *= size;
    strides[rank - 1] = stride;
    return;
  }
  dims[rank] = size;
  strides[rank] = stride;
  ++rank;
}

class ReduceKernel final : public CudaKernel {
 public:
  explicit ReduceKernel(ReduceKind k) { p_.kind = static_cast<int>(k); }

  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    // The axes' form (attribute or constant input) was validated by infer_reduce for the opset.
    std::vector<int64_t> axes;
    if (node.has_attr("axes")) {
      QYOLO_ASSIGN_OR_RETURN(axes, node.attr_ints("axes"));
    } else if (in.size() > 1 && in[1] != nullptr) {
      if (in[1]->constant == nullptr) return unsupported(node.describe() + ": axes must be constant");
      axes = in[1]->constant->to_int64_vector();
    }
    QYOLO_ASSIGN_OR_RETURN(int64_t keepdims, node.attr_int("keepdims", 1));
    QYOLO_ASSIGN_OR_RETURN(int64_t noop, node.attr_int("noop_with_empty_axes", 0));
    QYOLO_ASSIGN_OR_RETURN(ReducePlan plan, plan_reduce(node, in[0]->shape, axes, keepdims != 0, noop != 0));
    if (in[0]->dtype != out[0].dtype || in[0]->layout != Layout::kPlain || out[0].layout != Layout::kPlain)
      return internal_error(node.describe() + ": reduce expects plain inputs of the output's type");
    if (plan.in.size() > static_cast<size_t>(kMaxNd))
      return unsupported(node.describe() + ": the CUDA reduce takes at most " + std::to_string(kMaxNd) +
                         " dims");
    half_ = out[0].dtype == DataType::kFloat16;
    noop_ = plan.noop;
    bytes_ = out[0].nbytes();
    const std::vector<int64_t> st = plain_strides(plan.in);
    int rank_out = 0, rank_red = 0;
    p_.count = 1;
    for (size_t d = 0; d < plan.in.size(); ++d) {
      if (plan.reduced[d]) {
        push_dim(rank_red, p_.red_dims, p_.red_strides, plan.in[d], st[d]);
        p_.count *= plan.in[d];
      } else {
        push_dim(rank_out, p_.out_dims, p_.out_strides, plan.in[d], st[d]);
      }
    }
    p_.out_rank = rank_out;
    p_.red_rank = rank_red;
    p_.n_out = out[0].numel();
    return Status::ok();
  }

  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in,
                 std::span<void* const> out) override {
    if (p_.n_out == 0) return Status::ok();
    if (noop_) {
      QYOLO_CUDA_CHECK(cudaMemcpyAsync(out[0], in[0], bytes_, cudaMemcpyDeviceToDevice, ctx.stream));
      return Status::ok();
    }
    constexpr int kThreads = 256;
    const unsigned grid = grid_for(p_.n_out * 32, kThreads);
    if (half_)
      launch_kernel(reduce_kernel<__half>, grid, kThreads, 0, ctx.stream, ctx.programmatic, p_,
                    static_cast<__half*>(out[0]), static_cast<const __half*>(in[0]));
    else
      launch_kernel(reduce_kernel<float>, grid, kThreads, 0, ctx.stream, ctx.programmatic, p_,
                    static_cast<float*>(out[0]), static_cast<const float*>(in[0]));
    QYOLO_CUDA_CHECK_LAUNCH("reduce kernel");
    return Status::ok();
  }

  std::string info() const override {
    return noop_ ? "copy"
                 : std::to_string(p_.count) + " per output, " + std::to_string(p_.red_rank) + " dims";
  }

 private:
  ReduceParams p_;
  bool half_ = false, noop_ = false;
  size_t bytes_ = 0;
};

}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_reduce(const Node& node) {
  QYOLO_ASSIGN_OR_RETURN(const ReduceKind kind, reduce_kind_of(node));
  return std::unique_ptr<CudaKernel>(new ReduceKernel(kind));
}

}  // namespace qyolo::cuda
