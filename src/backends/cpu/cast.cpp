#include "ir/ops/cast.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "backends/cpu/binary.h"
#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

// float -> integer saturates (NaN -> 0; ONNX leaves out-of-range casts undefined); integer ->
// integer wraps like numpy's astype; anything -> bool is "!= 0".
template <class D, class S>
inline D convert(S v) {
  if constexpr (std::is_same_v<D, bool>) {
    return v != S{0};
  } else if constexpr (std::is_floating_point_v<D> || !std::is_floating_point_v<S>) {
    return static_cast<D>(v);
  } else {
    if (v != v) return D{0};
    if (v <= static_cast<S>(std::numeric_limits<D>::lowest())) return std::numeric_limits<D>::lowest();
    if (v >= static_cast<S>(std::numeric_limits<D>::max())) return std::numeric_limits<D>::max();
    return static_cast<D>(v);
  }
}

class CastKernel : public CpuKernel {
 public:
  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const Tensor* x = inputs[0];
    Tensor& y = *outputs[0];
    if (x->dtype() == y.dtype()) {
      if (y.nbytes()) std::memcpy(y.raw(), x->raw(), y.nbytes());
      return Status::ok();
    }
    Tensor x32, y32;
    if (x->dtype() == DataType::kFloat16) {
      x32 = cpu::to_float32(*x);
      x = &x32;
    }
    Tensor* out = &y;
    if (y.dtype() == DataType::kFloat16) {
      y32 = Tensor::uninitialized(DataType::kFloat32, y.shape());
      out = &y32;
    }
    if (x->dtype() == out->dtype()) {
      if (out->nbytes()) std::memcpy(out->raw(), x->raw(), out->nbytes());
    } else {
      cpu::visit_dtype(x->dtype(), [&](auto s) {
        using S = decltype(s);
        cpu::visit_dtype(out->dtype(), [&](auto d) {
          using D = decltype(d);
          const S* xp = x->data<S>();
          D* yp = out->data<D>();
          cpu::parallel_ranges(x->numel(), [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) yp[i] = convert<D>(xp[i]);
          });
        });
      });
    }
    if (out != &y) cpu::store_float32(y32, y);
    return Status::ok();
  }
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_cast(const Node& node) {
  QYOLO_RETURN_IF_ERROR(CastAttrs::parse(node, 0).status());
  return std::unique_ptr<CpuKernel>(new CastKernel());
}

}  // namespace qyolo
