#include <cstring>

#include "backends/cpu/binary.h"
#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

template <class T>
void select(const BroadcastPlan& p, const bool* c, const T* x, const T* y, T* o) {
  cpu::for_each_broadcast<3>(
      p, [&](int64_t oo, const std::array<int64_t, 3>& off, const std::array<int64_t, 3>& st, int64_t n) {
        const bool* cc = c + off[0];
        const T* xx = x + off[1];
        const T* yy = y + off[2];
        T* out = o + oo;
        for (int64_t i = 0; i < n; ++i) out[i] = cc[i * st[0]] ? xx[i * st[1]] : yy[i * st[2]];
      });
}

class WhereKernel : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    plan_ = make_broadcast_plan(outputs[0].shape, {inputs[0]->shape, inputs[1]->shape, inputs[2]->shape});
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const bool* c = inputs[0]->data<bool>();
    Tensor& o = *outputs[0];
    // A select only moves bits: dispatch on the element size.
    switch (dtype_size(o.dtype())) {
      case 1:
        select(plan_, c, inputs[1]->data<uint8_t>(), inputs[2]->data<uint8_t>(), o.data<uint8_t>());
        break;
      case 2:
        select(plan_, c, inputs[1]->data<uint16_t>(), inputs[2]->data<uint16_t>(), o.data<uint16_t>());
        break;
      case 4:
        select(plan_, c, inputs[1]->data<uint32_t>(), inputs[2]->data<uint32_t>(), o.data<uint32_t>());
        break;
      case 8:
        select(plan_, c, inputs[1]->data<uint64_t>(), inputs[2]->data<uint64_t>(), o.data<uint64_t>());
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

Result<std::unique_ptr<CpuKernel>> make_cpu_where(const Node& node) {
  return std::unique_ptr<CpuKernel>(new WhereKernel());
}

}  // namespace qyolo
