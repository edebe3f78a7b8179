// CPU backend: one kernel class per op stem (src/backends/cpu/<stem>.cpp).
// Build phase: the factory + prepare() see final shapes and constant inputs (pack weights, create
// oneDNN primitives). Run phase: run() reads inputs and writes outputs that the executor allocated
// with the inferred shapes; it must not change their shapes.
#pragma once

#include <memory>
#include <span>

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
};

using CpuKernelFactory = Result<std::unique_ptr<CpuKernel>> (*)(const Node& node);

// nullptr if the CPU backend has no kernel for this op type.
CpuKernelFactory find_cpu_kernel(std::string_view op_type);

#define QYOLO_OP(name, stem, ...) Result<std::unique_ptr<CpuKernel>> make_cpu_##stem(const Node& node);
#include "ir/ops.def"
#undef QYOLO_OP

}  // namespace qyolo
