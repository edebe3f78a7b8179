// CPU backend: one kernel class per op stem (src/backends/cpu/<stem>.cpp).
// Build phase: the factory + prepare() see final shapes and constant inputs (pack weights, create
// oneDNN primitives). Run phase: run() reads inputs and writes outputs that the executor allocated
// with the inferred shapes; it must not change their shapes.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "ir/op_registry.h"

namespace qyolo {

class CpuKernel {
 public:
  virtual ~CpuKernel() = default;
  virtual Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                         std::span<const ValueDesc> outputs) {
    return Status::ok();
  }
  virtual Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) = 0;

  // Scratch memory: after prepare(), the executor allocates one workspace of the largest
  // workspace_bytes() of its kernels (64-byte aligned) and hands it to every kernel; kernels of an
  // executor run one at a time, so they share it. Valid for the executor's lifetime.
  virtual size_t workspace_bytes() const { return 0; }
  // True when run() replaces its output by a view of input 0 (Reshape & co.): the executor then
  // plans no memory for the output and keeps the input's alive as long as the view.
  virtual bool output_aliases_input() const { return false; }
  // The library implementation prepared, where one runs (oneDNN's impl_info_str: "jit:avx2",
  // "ref:any", ...); empty otherwise. For profiles and tests.
  virtual std::string implementation() const { return {}; }
  virtual void set_workspace(std::byte* workspace) {}
  // Output 0 as a slice of a larger tensor (the executor's Concat in place): batch item n is
  // written `elements` after item n - 1 instead of right after it. Only where supported.
  virtual bool supports_output_batch_stride() const { return false; }
  virtual void set_output_batch_stride(int64_t elements) {}

  // Row bands (CpuExecutor::fuse_bands): a kernel whose output 0 is a channels-last float
  // [N, C, H, W] and which can compute any band of consecutive (n, h) rows alone returns the rows
  // per band it prepared for (a divisor of H; 0: none), and run_band writes rows [r0, r0 + rows)
  // into `band` (rows * W * C floats), reading its inputs whole.
  virtual int64_t band_rows() const { return 0; }
  virtual Status run_band(std::span<const Tensor* const> inputs, float* band, int64_t r0) {
    return internal_error("run_band: not supported");
  }
  // A reader of such a producer's output (its input 0) that can take it band by band: consumes
  // rows [r0, r0 + rows) from `band`; inputs[0] is not given.
  virtual bool reads_bands() const { return false; }
  virtual Status run_band_reader(std::span<const Tensor* const> inputs, const float* band, int64_t r0,
                                 int64_t rows, std::span<Tensor* const> outputs) {
    return internal_error("run_band_reader: not supported");
  }
};

inline size_t align64(size_t n) {
  return (n + 63) / 64 * 64;
}

// For a kernel used on its own (constant folding, tests, benchmarks): allocates its workspace and
// hands it over; keep the returned tensor alive while the kernel runs.
inline Tensor give_own_workspace(CpuKernel& kernel) {
  Tensor ws = Tensor::uninitialized(DataType::kUInt8, {static_cast<int64_t>(kernel.workspace_bytes())});
  kernel.set_workspace(static_cast<std::byte*>(ws.raw()));
  return ws;
}

using CpuKernelFactory = Result<std::unique_ptr<CpuKernel>> (*)(const Node& node);

// nullptr if the CPU backend has no kernel for this op type.
CpuKernelFactory find_cpu_kernel(std::string_view op_type);

#define QYOLO_OP(name, stem, ...) Result<std::unique_ptr<CpuKernel>> make_cpu_##stem(const Node& node);
#include "ir/ops.def"
#undef QYOLO_OP

}  // namespace qyolo
