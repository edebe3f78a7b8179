// GatherElements on plain values: a thread per output element reads its index (int32 or int64,
// negative counts from the end) and copies data at the output's position with that index on `axis`.
// Float data may change type on the way (the output's float type can differ from data's); other
// types move as raw elements. An index outside [-n, n) cannot be reported from the device: its
// element is written as 0 (the CPU backend returns an error) and nothing outside data is read.
#include "backends/cuda/cuda_op_factories.h"
#include "backends/cuda/nd.h"
#include "backends/cuda/reduce_util.cuh"
#include "ir/op_registry.h"

namespace qyolo::cuda {

namespace {

struct GatherElementsParams {
  int rank = 0, axis = 0;
  int64_t idx_dims[kMaxNd] = {}, data_strides[kMaxNd] = {};
  int64_t n_axis = 0, numel = 0;
  int idx64 = 1;
  int convert = 0;  // float <-> half through float
  int in_half = 0, out_half = 0;
  int elem_bytes = 4;
};

template <typename E>
__device__ __forceinline__ void move_elem(void* y, int64_t i, const void* x, int64_t j) {
  static_cast<E*>(y)[i] = static_cast<const E*>(x)[j];
}

__global__ void gather_elements_kernel(GatherElementsParams p, void* __restrict__ y,
                                       const void* __restrict__ data, const void* __restrict__ index) {
  await_producers();
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t j = p.idx64 ? static_cast<const int64_t*>(index)[i] : static_cast<const int32_t*>(index)[i];
    const bool valid = j >= -p.n_axis && j < p.n_axis;
    if (j < 0) j += p.n_axis;
    int64_t rem = i, off = 0;
    for (int d = p.rank - 1; d >= 0; --d) {
      const int64_t q = rem / p.idx_dims[d];
      off += (d == p.axis ? j : rem - q * p.idx_dims[d]) * p.data_strides[d];
      rem = q;
    }
    if (p.convert) {
      store_f(y, i, valid ? load_f(data, off, p.in_half) : 0.f, p.out_half);
    } else if (!valid) {
      for (int b = 0; b < p.elem_bytes; ++b) static_cast<uint8_t*>(y)[i * p.elem_bytes + b] = 0;
    } else {
      switch (p.elem_bytes) {
        case 1:
          move_elem<uint8_t>(y, i, data, off);
          break;
        case 2:
          move_elem<uint16_t>(y, i, data, off);
          break;
        case 8:
          move_elem<uint64_t>(y, i, data, off);
          break;
        default:
          move_elem<uint32_t>(y, i, data, off);
          break;
      }
    }
  }
}

class GatherElementsKernel final : public CudaKernel {
 public:
  Status prepare(PrepareContext&, const Node& node, std::span<const TensorInfo* const> in,
                 std::span<const TensorInfo> out) override {
    const TensorInfo& data = *in[0];
    const TensorInfo& idx = *in[1];
    QYOLO_ASSIGN_OR_RETURN(int64_t axis_attr, node.attr_int("axis", 0));
    QYOLO_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(axis_attr, static_cast<int64_t>(data.shape.size())));
    if (data.layout != Layout::kPlain || idx.layout != Layout::kPlain || out[0].layout != Layout::kPlain)
      return internal_error(node.describe() + ": gather_elements expects plain values");
    if (idx.dtype != DataType::kInt64 && idx.dtype != DataType::kInt32)
      return unsupported(node.describe() + ": indices must be int32 or int64");
    if (data.shape.size() > static_cast<size_t>(kMaxNd) || idx.shape.size() != data.shape.size())
      return unsupported(node.describe() + ": indices and data must have one rank of at most " +
                         std::to_string(kMaxNd));
    for (size_t d = 0; d < data.shape.size(); ++d)
      if (static_cast<int64_t>(d) != axis && idx.shape[d] > data.shape[d])
        return invalid_argument(node.describe() + ": indices " + shape_str(idx.shape) + " exceed data " +
                                shape_str(data.shape));
    const bool fd = is_float_dtype(data.dtype), fo = is_float_dtype(out[0].dtype);
    if (data.dtype != out[0].dtype && !(fd && fo))
      return internal_error(node.describe() + ": data is " + dtype_name(data.dtype) + ", output " +
                            dtype_name(out[0].dtype));
    p_.convert = data.dtype != out[0].dtype;
    p_.in_half = data.dtype == DataType::kFloat16;
    p_.out_half = out[0].dtype == DataType::kFloat16;
    p_.elem_bytes = static_cast<int>(dtype_size(out[0].dtype));
    p_.idx64 = idx.dtype == DataType::kInt64;
    p_.rank = static_cast<int>(data.shape.size());
    p_.axis = static_cast<int>(axis);
    p_.n_axis = data.shape[static_cast<size_t>(axis)];
    const std::vector<int64_t> st = plain_strides(data.shape);
    for (size_t d = 0; d < data.shape.size(); ++d) {
      p_.idx_dims[d] = idx.shape[d];
      p_.data_strides[d] = st[d];
    }
    p_.numel = out[0].numel();
    return Status::ok();
  }

  Status enqueue(const LaunchContext& ctx, std::span<const void* const> in,
                 std::span<void* const> out) override {
    if (p_.numel == 0) return Status::ok();
    constexpr int kThreads = 256;
    launch_kernel(gather_elements_kernel, grid_for(p_.numel, kThreads), kThreads, 0, ctx.stream,
                  ctx.programmatic, p_, out[0], in[0], in[1]);
    QYOLO_CUDA_CHECK_LAUNCH("gather_elements kernel");
    return Status::ok();
  }

 private:
  GatherElementsParams p_;
};

}  // namespace

Result<std::unique_ptr<CudaKernel>> make_cuda_gather_elements(const Node&) {
  return std::unique_ptr<CudaKernel>(new GatherElementsKernel());
}

}  // namespace qyolo::cuda
