// CUDA backend: error checks that turn cudaError_t / cudnnStatus_t / cublasStatus_t into
// qyolo::Status (kDevice, with file:line and the failing call's text), and RAII owners for device
// memory, streams, events, the cuDNN handle and cuDNN descriptors. No exceptions, no globals.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <functional>
#include <string>
#include <utility>

#include "qyolo/status.h"

namespace qyolo::cuda {

Status cuda_status(cudaError_t e, const char* expr, const char* file, int line);
Status cudnn_status(cudnnStatus_t e, const char* expr, const char* file, int line);
Status cublas_status(cublasStatus_t e, const char* expr, const char* file, int line);

inline Status to_status(cudaError_t e, const char* expr, const char* file, int line) {
  return e == cudaSuccess ? Status::ok() : cuda_status(e, expr, file, line);
}
inline Status to_status(cudnnStatus_t e, const char* expr, const char* file, int line) {
  return e == CUDNN_STATUS_SUCCESS ? Status::ok() : cudnn_status(e, expr, file, line);
}
inline Status to_status(cublasStatus_t e, const char* expr, const char* file, int line) {
  return e == CUBLAS_STATUS_SUCCESS ? Status::ok() : cublas_status(e, expr, file, line);
}

// The Status of a launch just made: cudaGetLastError() (does not synchronise).
Status last_launch_status(const char* what, const char* file, int line);

}  // namespace qyolo::cuda

// Evaluates a CUDA runtime / cuDNN / cuBLAS(Lt) call; returns a kDevice Status from the enclosing
// function when it fails: "file.cu:123: cudnnConvolutionForward(...) failed: CUDNN_STATUS_BAD_PARAM".
#define QYOLO_CUDA_CHECK(expr)                                                                   \
  do {                                                                                           \
    ::qyolo::Status qyolo_cuda_status_ = ::qyolo::cuda::to_status((expr), #expr, __FILE__, __LINE__); \
    if (!qyolo_cuda_status_.is_ok()) return qyolo_cuda_status_;                                  \
  } while (0)

// After a <<<...>>> launch: returns the launch error (bad configuration, no kernel image, ...).
#define QYOLO_CUDA_CHECK_LAUNCH(what)                                                            \
  do {                                                                                           \
    ::qyolo::Status qyolo_cuda_status_ = ::qyolo::cuda::last_launch_status((what), __FILE__, __LINE__); \
    if (!qyolo_cuda_status_.is_ok()) return qyolo_cuda_status_;                                  \
  } while (0)

namespace qyolo::cuda {

// Move-only owner of a handle with a destroy function.
template <typename H, typename Traits>
class Owner {
 public:
  Owner() = default;
  explicit Owner(H h) : h_(h) {}
  Owner(const Owner&) = delete;
  Owner& operator=(const Owner&) = delete;
  Owner(Owner&& o) noexcept : h_(std::exchange(o.h_, H{})) {}
  Owner& operator=(Owner&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, H{});
    }
    return *this;
  }
  ~Owner() { reset(); }
  void reset() {
    if (h_ != H{}) Traits::destroy(h_);
    h_ = H{};
  }
  H get() const { return h_; }
  explicit operator bool() const { return h_ != H{}; }

 private:
  H h_{};
};

struct StreamTraits { static void destroy(cudaStream_t s) { cudaStreamDestroy(s); } };
struct EventTraits { static void destroy(cudaEvent_t e) { cudaEventDestroy(e); } };
struct CudnnTraits { static void destroy(cudnnHandle_t h) { cudnnDestroy(h); } };
struct CublasLtTraits { static void destroy(cublasLtHandle_t h) { cublasLtDestroy(h); } };
struct TensorDescTraits { static void destroy(cudnnTensorDescriptor_t d) { cudnnDestroyTensorDescriptor(d); } };
struct FilterDescTraits { static void destroy(cudnnFilterDescriptor_t d) { cudnnDestroyFilterDescriptor(d); } };
struct ConvDescTraits { static void destroy(cudnnConvolutionDescriptor_t d) { cudnnDestroyConvolutionDescriptor(d); } };
struct ActDescTraits { static void destroy(cudnnActivationDescriptor_t d) { cudnnDestroyActivationDescriptor(d); } };
struct GraphTraits { static void destroy(cudaGraph_t g) { cudaGraphDestroy(g); } };
struct GraphExecTraits { static void destroy(cudaGraphExec_t g) { cudaGraphExecDestroy(g); } };

using Stream = Owner<cudaStream_t, StreamTraits>;
using Event = Owner<cudaEvent_t, EventTraits>;
using CudnnHandle = Owner<cudnnHandle_t, CudnnTraits>;
using CublasLtHandle = Owner<cublasLtHandle_t, CublasLtTraits>;
using TensorDesc = Owner<cudnnTensorDescriptor_t, TensorDescTraits>;
using FilterDesc = Owner<cudnnFilterDescriptor_t, FilterDescTraits>;
using ConvDesc = Owner<cudnnConvolutionDescriptor_t, ConvDescTraits>;
using ActDesc = Owner<cudnnActivationDescriptor_t, ActDescTraits>;
using Graph = Owner<cudaGraph_t, GraphTraits>;
using GraphExec = Owner<cudaGraphExec_t, GraphExecTraits>;

Result<Stream> make_stream(bool non_blocking = true);
Result<Event> make_event(bool timing = true);
// Time in ms of one `launch` on `stream` (build-time tuning): `warmup` (at least one) eager launches
// first, then `iters` or more launches captured into a CUDA graph, the best of three replays per
// launch (eager between two events where the launches cannot be captured). A failing launch ends
// the timing with its status.
Result<float> time_launches(cudaStream_t stream, int warmup, int iters, const std::function<Status()>& launch);
Result<CudnnHandle> make_cudnn();
Result<CublasLtHandle> make_cublaslt();
Result<TensorDesc> make_tensor_desc();
Result<FilterDesc> make_filter_desc();
Result<ConvDesc> make_conv_desc();

// Device memory (cudaMalloc). Zero-size buffers hold nullptr.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  static Result<DeviceBuffer> allocate(size_t bytes);
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  ~DeviceBuffer() { reset(); }
  void reset();
  void* get() const { return p_; }
  template <typename T> T* as() const { return static_cast<T*>(p_); }
  size_t size() const { return n_; }
  // Synchronous upload (build time only).
  Status upload(const void* host, size_t bytes, size_t offset = 0);

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

// Pinned host memory (cudaMallocHost).
class HostBuffer {
 public:
  HostBuffer() = default;
  static Result<HostBuffer> allocate(size_t bytes);
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  HostBuffer(HostBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  HostBuffer& operator=(HostBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  ~HostBuffer() { reset(); }
  void reset();
  void* get() const { return p_; }
  template <typename T> T* as() const { return static_cast<T*>(p_); }
  size_t size() const { return n_; }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

// Number of CUDA devices (0 when there is no driver / no GPU; never an error).
int device_count();

}  // namespace qyolo::cuda
