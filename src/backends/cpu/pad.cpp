// Pad (any dtype): each output element copies the input element its index maps to per dim, or the
// constant value where constant padding leaves the input.
#include "ir/ops/pad.h"

#include <cstring>

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class CpuPad final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    // The pads' form for the opset was validated by infer_pad: an attribute, or constant inputs.
    std::vector<int64_t> pads, axes;
    if (node.has_attr("pads")) {
      QYOLO_ASSIGN_OR_RETURN(pads, node.attr_ints("pads"));
      QYOLO_ASSIGN_OR_RETURN(attr_value_, node.attr_float("value", 0.f));
    } else {
      pads = inputs[1]->value->to_int64_vector();
      if (inputs.size() > 3 && inputs[3] != nullptr) axes = inputs[3]->value->to_int64_vector();
    }
    QYOLO_ASSIGN_OR_RETURN(plan_, plan_pad(node, inputs[0]->shape, pads, axes));
    in_ = inputs[0]->shape;
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const Tensor& x = *inputs[0];
    Tensor& y = *outputs[0];
    const size_t es = dtype_size(x.dtype()), rank = in_.size();
    // The fill value in y's dtype: the constant_value input, else the (float) attribute, else 0.
    std::vector<std::byte> fill(es);
    if (inputs.size() > 2 && inputs[2] != nullptr) {
      std::memcpy(fill.data(), inputs[2]->raw(), es);
    } else if (attr_value_ != 0.f && x.dtype() == DataType::kFloat32) {
      std::memcpy(fill.data(), &attr_value_, es);
    }
    std::vector<int64_t> stride(rank, 1);
    for (size_t d = rank; d-- > 1;) stride[d - 1] = stride[d] * in_[d];
    std::vector<int64_t> pos(rank, 0);
    const auto* src = static_cast<const std::byte*>(x.raw());
    auto* dst = static_cast<std::byte*>(y.raw());
    for (int64_t i = 0, n = y.numel(); i < n; ++i) {
      int64_t off = 0;
      bool inside = true;
      for (size_t d = 0; d < rank && inside; ++d) {
        int64_t s = pos[d] - plan_.begin[d];
        const int64_t len = in_[d];
        if (s < 0 || s >= len) {
          switch (plan_.mode) {
            case PadMode::kConstant:
              inside = false;
              break;
            case PadMode::kEdge:
              s = s < 0 ? 0 : len - 1;
              break;
            case PadMode::kReflect:
              s = s < 0 ? -s : 2 * (len - 1) - s;
              break;
            case PadMode::kWrap:
              s = ((s % len) + len) % len;
              break;
          }
        }
        off += s * stride[d];
      }
      std::memcpy(dst + i * es, inside ? src + off * es : fill.data(), es);
      for (size_t d = rank; d-- > 0;) {
        if (++pos[d] < plan_.out[d]) break;
        pos[d] = 0;
      }
    }
    return Status::ok();
  }

 private:
  PadPlan plan_;
  Shape in_;
  float attr_value_ = 0.f;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_pad(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuPad>());
}

}  // namespace qyolo
