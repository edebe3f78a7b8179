#include <cstring>

#include "backends/cpu/binary.h"
#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

template <class T>
void expand(const BroadcastPlan& p, const T* x, T* o) {
  cpu::for_each_broadcast<1>(
      p, [&](int64_t oo, const std::array<int64_t, 1>& off, const std::array<int64_t, 1>& st, int64_t n) {
        if (st[0] != 0) {
          std::memcpy(o + oo, x + off[0], static_cast<size_t>(n) * sizeof(T));
        } else {
          const T v = x[off[0]];
          for (int64_t i = 0; i < n; ++i) o[oo + i] = v;
        }
      });
}

class ExpandKernel : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    plan_ = make_broadcast_plan(outputs[0].shape, {inputs[0]->shape});
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    Tensor& o = *outputs[0];
    switch (dtype_size(o.dtype())) {
      case 1:
        expand(plan_, inputs[0]->data<uint8_t>(), o.data<uint8_t>());
        break;
      case 2:
        expand(plan_, inputs[0]->data<uint16_t>(), o.data<uint16_t>());
        break;
      case 4:
        expand(plan_, inputs[0]->data<uint32_t>(), o.data<uint32_t>());
        break;
      case 8:
        expand(plan_, inputs[0]->data<uint64_t>(), o.data<uint64_t>());
        break;
      default:
        return internal_error("unexpected element size");
    }
    return Status::ok();
  }

 private:
  BroadcastPlan plan_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_expand(const Node& node) {
  return std::unique_ptr<CpuKernel>(new ExpandKernel());
}

}  // namespace qyolo
