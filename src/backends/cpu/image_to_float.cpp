// QyoloImageToFloat on the CPU: uint8 [N, H, W, C] -> float [N, C, H, W] / 255.f (see
// src/ir/ops/image_to_float.h), the same division the letterbox does, so results are identical.
#include "ir/ops/image_to_float.h"

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class CpuImageToFloat final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    if (inputs.empty() || inputs[0] == nullptr || inputs[0]->dtype != DataType::kUInt8)
      return invalid_argument(node.describe() + ": X must be uint8");
    QYOLO_ASSIGN_OR_RETURN(Shape y, image_to_float_shape(node, inputs[0]->shape));
    if (outputs[0].dtype != DataType::kFloat32 || outputs[0].shape != y)
      return internal_error(node.describe() + ": unexpected output " + shape_str(outputs[0].shape));
    shape_ = inputs[0]->shape;
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const Tensor& x = *inputs[0];
    Tensor& y = *outputs[0];
    if (x.dtype() != DataType::kUInt8 || x.shape() != shape_)
      return invalid_argument("image input must be uint8 " + shape_str(shape_) + ", got " +
                              dtype_name(x.dtype()) + " " + shape_str(x.shape()));
    const int64_t n = shape_[0], h = shape_[1], w = shape_[2], c = shape_[3], plane = h * w;
    const uint8_t* src = x.data<uint8_t>();
    float* dst = y.data<float>();
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < n; ++b)
      for (int64_t row = 0; row < h; ++row) {
        const uint8_t* s = src + (b * plane + row * w) * c;
        float* d = dst + b * c * plane + row * w;
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t col = 0; col < w; ++col)
            d[ch * plane + col] = static_cast<float>(s[col * c + ch]) / 255.f;
      }
    return Status::ok();
  }

 private:
  Shape shape_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_image_to_float(const Node&) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuImageToFloat>());
}

}  // namespace qyolo
