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
  await_producers();
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.numel;
       i += static_cast<I>(gridDim.x) * blockDim.x) {
    I off[2];
    nd_offsets(p, i, off);
    dst[off[0]] = convert_elem<Td>(src[off[1]]);
  }
}

template <typename Td, typename Ts>
Status launch(const NdCopy& c, const void* src, void* dst, cudaStream_t stream, bool pdl) {
  Td* d = static_cast<Td*>(dst) + c.dst_offset;
  const Ts* s = static_cast<const Ts*>(src) + c.src_offset;
  constexpr int kThreads = 256;
  if (c.narrow) {
    launch_kernel(nd_copy_kernel<Td, Ts, int32_t>, grid_for(c.numel, kThreads), kThreads, 0, stream, pdl, c.p32, d, s);
  } else {
    launch_kernel(nd_copy_kernel<Td, Ts, int64_t>, grid_for(c.numel, kThreads), kThreads, 0, stream, pdl, c.p64, d, s);
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
  const int64_t es = static_cast<int64_t>(dtype_size(dst_type));
  const int in = p.rank - 1;
  if (!c.memcpy_ok && dst_type == src_type && p.rank == 2 && p.strides[0][1] == 1 && p.strides[1][1] == 1 &&
      p.dims[1] * es >= 512 && p.strides[0][0] >= p.dims[1] && p.strides[1][0] >= p.dims[1]) {
    c.memcpy2d_ok = true;
    c.row_bytes = static_cast<size_t>(p.dims[1] * es);
    c.rows = static_cast<size_t>(p.dims[0]);
    c.dst_pitch = static_cast<size_t>(p.strides[0][0] * es);
    c.src_pitch = static_cast<size_t>(p.strides[1][0] * es);
  }
  if (!c.memcpy_ok && dst_type == src_type && p.strides[0][in] == 1 && p.strides[1][in] == 1) {
    for (int vb : {16, 8, 4}) {
      if (vb <= es) break;
      bool ok = (p.dims[in] * es) % vb == 0 && (dst_offset * es) % vb == 0 && (src_offset * es) % vb == 0;
      for (int d = 0; ok && d < in; ++d)
        ok = (p.strides[0][d] * es) % vb == 0 && (p.strides[1][d] * es) % vb == 0;
      if (!ok) continue;
      NdPlan<4, int64_t> v = p;
      const int64_t f = vb / es;
      v.dims[in] = p.dims[in] / f;
      for (int d = 0; d < in; ++d) {
        v.strides[0][d] = p.strides[0][d] / f;
        v.strides[1][d] = p.strides[1][d] / f;
      }
      v.numel = p.numel / f;
      c.vec_bytes = vb;
      c.vec_narrow = narrow_plan<2>(v, c.v32);
      copy_plan<2>(v, c.v64);
      c.vec_dst_offset = dst_offset / f;
      c.vec_src_offset = src_offset / f;
      c.vec_numel = v.numel;
      break;
    }
  }
  return c;
}

Status enqueue_nd_copy(const NdCopy& c, const void* src, void* dst, cudaStream_t stream, bool programmatic) {
  if (c.numel == 0) return Status::ok();
  if (c.memcpy_ok) {
    const size_t es = dtype_size(c.dst_type);
    QYOLO_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + c.dst_offset * es,
                                     static_cast<const char*>(src) + c.src_offset * es, c.numel * es,
                                     cudaMemcpyDeviceToDevice, stream));
    return Status::ok();
  }
  if (c.memcpy2d_ok) {
    const size_t es = dtype_size(c.dst_type);
    QYOLO_CUDA_CHECK(cudaMemcpy2DAsync(static_cast<char*>(dst) + c.dst_offset * es, c.dst_pitch,
                                       static_cast<const char*>(src) + c.src_offset * es, c.src_pitch, c.row_bytes,
                                       c.rows, cudaMemcpyDeviceToDevice, stream));
    return Status::ok();
  }
  if (c.vec_bytes > 0 && (reinterpret_cast<uintptr_t>(src) | reinterpret_cast<uintptr_t>(dst)) % c.vec_bytes == 0) {
    NdCopy v = c;
    v.narrow = c.vec_narrow;
    v.p32 = c.v32;
    v.p64 = c.v64;
    v.dst_offset = c.vec_dst_offset;
    v.src_offset = c.vec_src_offset;
    v.numel = c.vec_numel;
    if (c.vec_bytes == 16) return launch<uint4, uint4>(v, src, dst, stream, programmatic);
    if (c.vec_bytes == 8) return launch<uint2, uint2>(v, src, dst, stream, programmatic);
    return launch<uint32_t, uint32_t>(v, src, dst, stream, programmatic);
  }
  if (c.dst_type == DataType::kFloat32 && c.src_type == DataType::kFloat16) return launch<float, __half>(c, src, dst, stream, programmatic);
  if (c.dst_type == DataType::kFloat16 && c.src_type == DataType::kFloat32) return launch<__half, float>(c, src, dst, stream, programmatic);
  switch (dtype_size(c.dst_type)) {
    case 1: return launch<uint8_t, uint8_t>(c, src, dst, stream, programmatic);
    case 2: return launch<uint16_t, uint16_t>(c, src, dst, stream, programmatic);
    case 4: return launch<uint32_t, uint32_t>(c, src, dst, stream, programmatic);
    case 8: return launch<uint64_t, uint64_t>(c, src, dst, stream, programmatic);
  }
  return internal_error("nd copy: unexpected element size");
}

}  // namespace qyolo::cuda
