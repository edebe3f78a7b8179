#include "backends/cpu/cpu_kernel.h"

namespace qyolo {
// STUB: to be implemented.
Result<std::unique_ptr<CpuKernel>> make_cpu_constant_of_shape(const Node& node) {
  return unsupported(node.describe() + ": no CPU kernel yet");
}
}  // namespace qyolo
