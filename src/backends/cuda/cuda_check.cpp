#include "backends/cuda/cuda_check.h"

#include <filesystem>

namespace qyolo::cuda {

namespace {
std::string where(const char* expr, const char* file, int line) {
  return std::filesystem::path(file).filename().string() + ":" + std::to_string(line) + ": " + expr;
}

const char* cublas_name(cublasStatus_t e) {
  switch (e) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_<unknown>";
  }
}
}  // namespace

Status cuda_status(cudaError_t e, const char* expr, const char* file, int line) {
  return device_error(where(expr, file, line) + " failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

Status cudnn_status(cudnnStatus_t e, const char* expr, const char* file, int line) {
  std::string msg = where(expr, file, line) + " failed: " + cudnnGetErrorString(e);
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  if (detail[0] != 0) msg += std::string(" (") + detail + ")";
  return device_error(msg);
}

Status cublas_status(cublasStatus_t e, const char* expr, const char* file, int line) {
  return device_error(where(expr, file, line) + " failed: " + cublas_name(e));
}

Status last_launch_status(const char* what, const char* file, int line) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return Status::ok();
  return cuda_status(e, what, file, line);
}

Result<Stream> make_stream(bool non_blocking) {
  cudaStream_t s = nullptr;
  QYOLO_CUDA_CHECK(cudaStreamCreateWithFlags(&s, non_blocking ? cudaStreamNonBlocking : cudaStreamDefault));
  return Stream(s);
}

Result<Event> make_event(bool timing) {
  cudaEvent_t e = nullptr;
  QYOLO_CUDA_CHECK(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming));
  return Event(e);
}

Result<float> time_launches(cudaStream_t stream, int warmup, int iters, const std::function<Status()>& launch) {
  QYOLO_ASSIGN_OR_RETURN(Event e0, make_event());
  QYOLO_ASSIGN_OR_RETURN(Event e1, make_event());
  for (int i = 0; i < warmup; ++i) QYOLO_RETURN_IF_ERROR(launch());
  QYOLO_CUDA_CHECK(cudaEventRecord(e0.get(), stream));
  for (int i = 0; i < iters; ++i) QYOLO_RETURN_IF_ERROR(launch());
  QYOLO_CUDA_CHECK(cudaEventRecord(e1.get(), stream));
  QYOLO_CUDA_CHECK(cudaEventSynchronize(e1.get()));
  float ms = 0.f;
  QYOLO_CUDA_CHECK(cudaEventElapsedTime(&ms, e0.get(), e1.get()));
  return ms / static_cast<float>(iters);
}

Result<CublasLtHandle> make_cublaslt() {
  cublasLtHandle_t h = nullptr;
  QYOLO_CUDA_CHECK(cublasLtCreate(&h));
  return CublasLtHandle(h);
}

Result<CudnnHandle> make_cudnn() {
  cudnnHandle_t h = nullptr;
  QYOLO_CUDA_CHECK(cudnnCreate(&h));
  return CudnnHandle(h);
}

Result<TensorDesc> make_tensor_desc() {
  cudnnTensorDescriptor_t d = nullptr;
  QYOLO_CUDA_CHECK(cudnnCreateTensorDescriptor(&d));
  return TensorDesc(d);
}

Result<FilterDesc> make_filter_desc() {
  cudnnFilterDescriptor_t d = nullptr;
  QYOLO_CUDA_CHECK(cudnnCreateFilterDescriptor(&d));
  return FilterDesc(d);
}

Result<ConvDesc> make_conv_desc() {
  cudnnConvolutionDescriptor_t d = nullptr;
  QYOLO_CUDA_CHECK(cudnnCreateConvolutionDescriptor(&d));
  return ConvDesc(d);
}

Result<DeviceBuffer> DeviceBuffer::allocate(size_t bytes) {
  DeviceBuffer b;
  if (bytes == 0) return b;
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free allocation error
    return device_error("cudaMalloc(" + std::to_string(bytes) + " bytes) failed: " + cudaGetErrorString(e));
  }
  b.p_ = p;
  b.n_ = bytes;
  return b;
}

void DeviceBuffer::reset() {
  if (p_ != nullptr) cudaFree(p_);
  p_ = nullptr;
  n_ = 0;
}

Status DeviceBuffer::upload(const void* host, size_t bytes, size_t offset) {
  if (offset + bytes > n_) return internal_error("DeviceBuffer::upload out of range");
  if (bytes == 0) return Status::ok();
  QYOLO_CUDA_CHECK(cudaMemcpy(static_cast<char*>(p_) + offset, host, bytes, cudaMemcpyHostToDevice));
  return Status::ok();
}

Result<HostBuffer> HostBuffer::allocate(size_t bytes) {
  HostBuffer b;
  if (bytes == 0) return b;
  void* p = nullptr;
  QYOLO_CUDA_CHECK(cudaMallocHost(&p, bytes));
  b.p_ = p;
  b.n_ = bytes;
  return b;
}

void HostBuffer::reset() {
  if (p_ != nullptr) cudaFreeHost(p_);
  p_ = nullptr;
  n_ = 0;
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace qyolo::cuda
