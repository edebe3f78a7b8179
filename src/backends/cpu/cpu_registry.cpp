#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {
struct CpuEntry {
  std::string_view op_type;
  CpuKernelFactory factory;
};
constexpr CpuEntry kCpuKernels[] = {
#define QYOLO_OP(name, stem, ...) {#name, &make_cpu_##stem},
#include "ir/ops.def"
#undef QYOLO_OP
};
}  // namespace

CpuKernelFactory find_cpu_kernel(std::string_view op_type) {
  for (const auto& e : kCpuKernels)
    if (e.op_type == op_type) return e.factory;
  return nullptr;
}

}  // namespace qyolo
