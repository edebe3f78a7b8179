#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/nd_copy.h"

namespace qyolo::cuda {

namespace {

template <typename Td, typename Ts> __device__ __forceinline__ Td convert_elem(Ts v) {
  if constexpr (std::is_same_v<Td, Ts>) {
    return v;
  } else {
    return from_f<Td>(to_f(v));
  }
}

template <typename Td, typename Ts, typename I>
__global__ void nd_copy_kernel(NdPlan<2, I> p, Td* __restrict__ dst, const Ts* __restrict__ src) {
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.numel;
       i += static_cast<I>(gridDim.x) * blockDim.x) {
    I off[2];
    nd_offsets(p, i, off);
    dst[off[0]] = convert_elem<Td>(src[off[1]]);
  }
}

template <typename Td, typename Ts>
Status launch(const NdCopy& c, const void* src, void* dst, cudaStream_t stream) {
  Td* d = static_cast<Td*>(dst) + c.dst_offset;
  const Ts* s = static_cast<const Ts*>(src) + c.src_offset;
  constexpr int kThreads = 256;
  if (c.narrow) {
    nd_copy_kernel<Td, Ts, int32_t><<<grid_for(c.numel, kThreads), kThreads, 0, stream>>>(c.p32, d, s);
  } else {
    nd_copy_kernel<Td, Ts, int64_t><<<grid_for(c.numel, kThreads), kThreads, 0, stream>>>(c.p64, d, s);
  }
  QYOLO_CUDA_CHECK_LAUNCH("nd_copy_kernel");
  return Status::ok();
}

bool is_float(DataType t) { return t == DataType::kFloat32 || t == DataType::kFloat16; }

}  // namespace

Result<NdCopy> make_nd_copy(const Shape& shape, const std::vector<int64_t>& dst_strides, int64_t dst_offset,
                            DataType dst_type, const std::vector<int64_t>& src_strides, int64_t src_offset,
                            DataType src_type) {
  NdCopy c;
  c.dst_type = dst_type;
  c.src_type = src_type;
  c.dst_offset = dst_offset;
  c.src_offset = src_offset;
  c.numel = shape_numel(shape);
  if (dst_type != src_type && !(is_float(dst_type) && is_float(src_type)))
    return unsupported(std::string("CUDA copy from ") + dtype_name(src_type) + " to " + dtype_name(dst_type));
  const std::vector<int64_t> st[2] = {dst_strides, src_strides};
  NdPlan<4, int64_t> p;
  if (!make_nd_plan(shape, st, 2, p))
    return unsupported("CUDA copy of shape " + shape_str(shape) + ": more than 8 non-mergeable dims");
  c.narrow = narrow_plan<2>(p, c.p32);
  copy_plan<2>(p, c.p64);
  c.memcpy_ok = dst_type == src_type && p.rank == 1 && p.strides[0][0] == 1 && p.strides[1][0] == 1;
  return c;
}

Status enqueue_nd_copy(const NdCopy& c, const void* src, void* dst, cudaStream_t stream) {
  if (c.numel == 0) return Status::ok();
  if (c.memcpy_ok) {
    const size_t es = dtype_size(c.dst_type);
    QYOLO_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + c.dst_offset * es,
                                     static_cast<const char*>(src) + c.src_offset * es, c.numel * es,
                                     cudaMemcpyDeviceToDevice, stream));
    return Status::ok();
  }
  if (c.dst_type == DataType::kFloat32 && c.src_type == DataType::kFloat16) return launch<float, __half>(c, src, dst, stream);
  if (c.dst_type == DataType::kFloat16 && c.src_type == DataType::kFloat32) return launch<__half, float>(c, src, dst, stream);
  switch (dtype_size(c.dst_type)) {
    case 1: return launch<uint8_t, uint8_t>(c, src, dst, stream);
    case 2: return launch<uint16_t, uint16_t>(c, src, dst, stream);
    case 4: return launch<uint32_t, uint32_t>(c, src, dst, stream);
    case 8: return launch<uint64_t, uint64_t>(c, src, dst, stream);
  }
  return internal_error("nd copy: unexpected element size");
}

}  // namespace qyolo::cuda
