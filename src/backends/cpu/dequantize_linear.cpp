// DequantizeLinear: y = (x - zero_point) * scale, per tensor or per axis.
#include "ir/ops/dequantize_linear.h"

#include "backends/cpu/binary.h"
#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

template <class Q>
void dequantize_block(const Q* __restrict x, float* __restrict y, int64_t n, float scale, float zp) {
  for (int64_t i = 0; i < n; ++i) y[i] = (static_cast<float>(x[i]) - zp) * scale;
}

class DequantizeKernel : public CpuKernel {
 public:
  explicit DequantizeKernel(DequantizeLinearAttrs a) : a_(a) {}

  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    layout_ = qlinear_layout(inputs[0]->shape, inputs[1]->shape, a_.axis);
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const Tensor& x = *inputs[0];
    const std::vector<float> scale = inputs[1]->to_float_vector();
    const Tensor* zp_t = inputs.size() > 2 ? inputs[2] : nullptr;
    const std::vector<float> zp = zp_t ? zp_t->to_float_vector() : std::vector<float>(scale.size(), 0.f);
    Tensor& y = *outputs[0];
    Tensor y32;
    Tensor* out = &y;
    if (y.dtype() == DataType::kFloat16) {
      y32 = Tensor::uninitialized(DataType::kFloat32, y.shape());
      out = &y32;
    }
    switch (x.dtype()) {
      case DataType::kInt8:
        run_typed(x.data<int8_t>(), out->data<float>(), scale, zp);
        break;
      case DataType::kUInt8:
        run_typed(x.data<uint8_t>(), out->data<float>(), scale, zp);
        break;
      case DataType::kInt32:
        run_typed(x.data<int32_t>(), out->data<float>(), scale, zp);
        break;
      default:
        return internal_error("unexpected DequantizeLinear input type");
    }
    if (out != &y) cpu::store_float32(y32, y);
    return Status::ok();
  }

 private:
  template <class Q>
  void run_typed(const Q* x, float* y, const std::vector<float>& scale, const std::vector<float>& zp) {
    const QLinearLayout& l = layout_;
    if (!l.per_axis) {
      cpu::parallel_ranges(
          l.inner, [&](int64_t b, int64_t e) { dequantize_block(x + b, y + b, e - b, scale[0], zp[0]); });
      return;
    }
    cpu::parallel_ranges(
        l.outer * l.channels,
        [&](int64_t b, int64_t e) {
          for (int64_t blk = b; blk < e; ++blk) {
            const size_t c = static_cast<size_t>(blk % l.channels);
            dequantize_block(x + blk * l.inner, y + blk * l.inner, l.inner, scale[c], zp[c]);
          }
        },
        std::max<int64_t>(cpu::kParallelGrain / std::max<int64_t>(l.inner, 1), 1));
  }

  DequantizeLinearAttrs a_;
  QLinearLayout layout_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_dequantize_linear(const Node& node) {
  QYOLO_ASSIGN_OR_RETURN(DequantizeLinearAttrs a, DequantizeLinearAttrs::parse(node, 13));
  return std::unique_ptr<CpuKernel>(new DequantizeKernel(a));
}

}  // namespace qyolo
