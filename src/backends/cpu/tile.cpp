// Tile: each output row (all dims but the last) is the matching input row repeated along the last
// dim; rows are located with a modulo per dim (any dtype).
#include "ir/ops/tile.h"

#include <cstring>

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class CpuTile final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    if (!inputs[1]->value) return unsupported(node.describe() + ": repeats must be a constant");
    in_shape_ = inputs[0]->shape;
    QYOLO_ASSIGN_OR_RETURN(TileAttrs a,
                           TileAttrs::parse(node, in_shape_, inputs[1]->value->to_int64_vector()));
    out_shape_ = a.out_shape;
    elem_ = dtype_size(inputs[0]->dtype);
    if (in_shape_.empty()) {  // scalar
      in_shape_ = out_shape_ = {1};
    }
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    if (shape_numel(out_shape_) == 0) return Status::ok();
    const size_t r = in_shape_.size();
    const auto* src = static_cast<const std::byte*>(inputs[0]->raw());
    auto* dst = static_cast<std::byte*>(outputs[0]->raw());
    const int64_t in_last = in_shape_[r - 1], reps = out_shape_[r - 1] / in_last;
    const size_t row_bytes = static_cast<size_t>(in_last) * elem_;
    int64_t rows = 1;
    for (size_t d = 0; d + 1 < r; ++d) rows *= out_shape_[d];
#pragma omp parallel for schedule(static) if (rows * out_shape_[r - 1] > (1 << 15))
    for (int64_t row = 0; row < rows; ++row) {
      int64_t in_row = 0, rem = row, in_stride = 1;
      for (size_t d = r - 1; d-- > 0;) {
        in_row += ((rem % out_shape_[d]) % in_shape_[d]) * in_stride;
        rem /= out_shape_[d];
        in_stride *= in_shape_[d];
      }
      const std::byte* s = src + static_cast<size_t>(in_row) * row_bytes;
      std::byte* o = dst + static_cast<size_t>(row * reps) * row_bytes;
      for (int64_t k = 0; k < reps; ++k) std::memcpy(o + static_cast<size_t>(k) * row_bytes, s, row_bytes);
    }
    return Status::ok();
  }

 private:
  Shape in_shape_, out_shape_;
  size_t elem_ = 4;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_tile(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuTile>());
}

}  // namespace qyolo
