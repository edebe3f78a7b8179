// QuantizeLinear: y = saturate(round_half_even(x / scale) + zero_point), per tensor or per axis;
// a NaN quotient gives the zero point (as quantize_int8, src/quant/quant_params.h).
// On the QDQ models this runs on every activation, so the float32 loop is parallel and vectorisable.
#include "ir/ops/quantize_linear.h"

#include <type_traits>

#include "backends/cpu/binary.h"
#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

// Bounds of the clamps; passed in (not constants) so the loop vectorises (see cpu::opaque).
struct QBounds {
  float qmin, qmax, limit;
};

template <class Q>
QBounds qbounds() {
  return {cpu::opaque(std::is_signed_v<Q> ? -128.f : 0.f), cpu::opaque(std::is_signed_v<Q> ? 127.f : 255.f),
          cpu::opaque(4194304.f)};  // 2^22: anything larger saturates anyway
}

template <class Q>
void quantize_block(const float* __restrict x, Q* __restrict y, int64_t n, float scale, float zp,
                    QBounds qb) {
  constexpr float kMagic = 12582912.f;  // 1.5 * 2^23: adding it rounds to an integer, ties to even
  const float qmin = qb.qmin, qmax = qb.qmax, limit = qb.limit;
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i] / scale;
    v = v == v ? v : 0.f;  // NaN (a NaN input, 0 / 0): the zero point, not an undefined cast
    v = v < -limit ? -limit : v;
    v = v > limit ? limit : v;
    v = (v + kMagic) - kMagic;
    v += zp;
    v = v < qmin ? qmin : v;
    v = v > qmax ? qmax : v;
    y[i] = static_cast<Q>(static_cast<int32_t>(v));
  }
}

class QuantizeKernel : public CpuKernel {
 public:
  explicit QuantizeKernel(QLinearAttrs a) : a_(a) {}

  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    layout_ = qlinear_layout(inputs[0]->shape, inputs[1]->shape, a_.axis);
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    Tensor x32;
    const Tensor* x = inputs[0];
    if (x->dtype() == DataType::kFloat16) {
      x32 = cpu::to_float32(*x);
      x = &x32;
    } else if (x->dtype() == DataType::kInt32) {
      x32 = Tensor::from_vector<float>(x->shape(), x->to_float_vector());
      x = &x32;
    }
    const std::vector<float> scale = inputs[1]->to_float_vector();
    const Tensor* zp_t = inputs.size() > 2 ? inputs[2] : nullptr;
    const std::vector<float> zp = zp_t ? zp_t->to_float_vector() : std::vector<float>(scale.size(), 0.f);
    Tensor& y = *outputs[0];
    if (y.dtype() == DataType::kInt8)
      run_typed(x->data<float>(), y.data<int8_t>(), scale, zp);
    else
      run_typed(x->data<float>(), y.data<uint8_t>(), scale, zp);
    return Status::ok();
  }

 private:
  template <class Q>
  void run_typed(const float* x, Q* y, const std::vector<float>& scale, const std::vector<float>& zp) {
    const QLinearLayout& l = layout_;
    const QBounds qb = qbounds<Q>();
    if (!l.per_axis) {
      cpu::parallel_ranges(
          l.inner, [&](int64_t b, int64_t e) { quantize_block(x + b, y + b, e - b, scale[0], zp[0], qb); });
      return;
    }
    cpu::parallel_ranges(
        l.outer * l.channels,
        [&](int64_t b, int64_t e) {
          for (int64_t blk = b; blk < e; ++blk) {
            const size_t c = static_cast<size_t>(blk % l.channels);
            quantize_block(x + blk * l.inner, y + blk * l.inner, l.inner, scale[c], zp[c], qb);
          }
        },
        std::max<int64_t>(cpu::kParallelGrain / std::max<int64_t>(l.inner, 1), 1));
  }

  QLinearAttrs a_;
  QLinearLayout layout_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_quantize_linear(const Node& node) {
  // Kernels see no opset; infer_quantize_linear validated the node.
  QYOLO_ASSIGN_OR_RETURN(QLinearAttrs a, QLinearAttrs::parse(node, 13));
  return std::unique_ptr<CpuKernel>(new QuantizeKernel(a));
}

}  // namespace qyolo
