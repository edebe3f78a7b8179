#include "ir/ops/clip.h"

#include <limits>
#include <type_traits>

#include "backends/cpu/binary.h"
#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class ClipKernel : public CpuKernel {
 public:
  explicit ClipKernel(ClipAttrs a) : a_(a) {}

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const Tensor* x = inputs[0];
    Tensor& y = *outputs[0];
    Tensor x32, y32, lo32, hi32;
    const Tensor* lo_t = inputs.size() > 1 ? inputs[1] : nullptr;
    const Tensor* hi_t = inputs.size() > 2 ? inputs[2] : nullptr;
    Tensor* out = &y;
    if (x->dtype() == DataType::kFloat16) {
      x32 = cpu::to_float32(*x);
      x = &x32;
      if (lo_t) lo_t = &(lo32 = cpu::to_float32(*lo_t));
      if (hi_t) hi_t = &(hi32 = cpu::to_float32(*hi_t));
      y32 = Tensor::uninitialized(DataType::kFloat32, y.shape());
      out = &y32;
    }
    bool ok = cpu::visit_dtype(x->dtype(), [&](auto tag) {
      using T = decltype(tag);
      if constexpr (!std::is_same_v<T, bool>) {
        T lo = std::numeric_limits<T>::lowest(), hi = std::numeric_limits<T>::max();
        if (a_.bounds_are_inputs) {
          if (lo_t) lo = lo_t->data<T>()[0];
          if (hi_t) hi = hi_t->data<T>()[0];
        } else {
          if (a_.min) lo = static_cast<T>(*a_.min);
          if (a_.max) hi = static_cast<T>(*a_.max);
        }
        const T* xp = x->data<T>();
        T* yp = out->data<T>();
        // max then min: when min > max every value becomes max (the ONNX rule).
        cpu::parallel_ranges(x->numel(), [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) {
            T v = xp[i] < lo ? lo : xp[i];
            yp[i] = v > hi ? hi : v;
          }
        });
      }
    });
    if (!ok) return internal_error("unexpected element type");
    if (out != &y) cpu::store_float32(y32, y);
    return Status::ok();
  }

 private:
  ClipAttrs a_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_clip(const Node& node) {
  // Kernels see no opset: the attribute form (opset < 11) is the one with min/max attributes.
  const int64_t opset = node.has_attr("min") || node.has_attr("max") ? 6 : 11;
  QYOLO_ASSIGN_OR_RETURN(ClipAttrs a, ClipAttrs::parse(node, opset));
  return std::unique_ptr<CpuKernel>(new ClipKernel(a));
}

}  // namespace qyolo
