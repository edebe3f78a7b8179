#include "ir/ops/constant_of_shape.h"

#include <cstring>

#include "backends/cpu/binary.h"
#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

template <class T>
void fill(T* p, int64_t n, const void* value) {
  T v;
  std::memcpy(&v, value, sizeof(T));
  cpu::parallel_ranges(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) p[i] = v;
  });
}

class ConstantOfShapeKernel : public CpuKernel {
 public:
  explicit ConstantOfShapeKernel(ConstantOfShapeAttrs a) : a_(std::move(a)) {}

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    Tensor& y = *outputs[0];
    const int64_t n = y.numel();
    switch (dtype_size(y.dtype())) {
      case 1:
        fill(y.data<uint8_t>(), n, a_.value.raw());
        break;
      case 2:
        fill(y.data<uint16_t>(), n, a_.value.raw());
        break;
      case 4:
        fill(y.data<uint32_t>(), n, a_.value.raw());
        break;
      case 8:
        fill(y.data<uint64_t>(), n, a_.value.raw());
        break;
      default:
        return internal_error("unexpected element size");
    }
    return Status::ok();
  }

 private:
  ConstantOfShapeAttrs a_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_constant_of_shape(const Node& node) {
  QYOLO_ASSIGN_OR_RETURN(ConstantOfShapeAttrs a, ConstantOfShapeAttrs::parse(node, 0));
  return std::unique_ptr<CpuKernel>(new ConstantOfShapeKernel(std::move(a)));
}

}  // namespace qyolo
