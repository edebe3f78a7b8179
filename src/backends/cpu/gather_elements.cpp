// GatherElements (any data dtype): walks the output index, swapping in the gathered index on axis.
// An index outside [-n, n) is an error naming the node, never an out-of-bounds read.
#include <cstring>

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class CpuGatherElements final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    QYOLO_ASSIGN_OR_RETURN(int64_t axis_attr, node.attr_int("axis", 0));
    QYOLO_ASSIGN_OR_RETURN(axis_, normalize_axis(axis_attr, static_cast<int64_t>(inputs[0]->shape.size())));
    data_ = inputs[0]->shape;
    idx_ = inputs[1]->shape;
    what_ = node.describe();
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const Tensor& data = *inputs[0];
    const Tensor& ind = *inputs[1];
    const std::vector<int64_t> index = ind.to_int64_vector();
    const size_t rank = data_.size(), es = dtype_size(data.dtype());
    std::vector<int64_t> stride(rank, 1);
    for (size_t d = rank; d-- > 1;) stride[d - 1] = stride[d] * data_[d];
    const int64_t n_axis = data_[static_cast<size_t>(axis_)];
    std::vector<int64_t> pos(rank, 0);
    const auto* src = static_cast<const std::byte*>(data.raw());
    auto* dst = static_cast<std::byte*>(outputs[0]->raw());
    for (size_t i = 0; i < index.size(); ++i) {
      int64_t j = index[i];
      if (j < -n_axis || j >= n_axis)
        return invalid_argument(what_ + ": index " + std::to_string(j) + " is outside [-" +
                                std::to_string(n_axis) + ", " + std::to_string(n_axis) + ")");
      if (j < 0) j += n_axis;
      int64_t off = 0;
      for (size_t d = 0; d < rank; ++d) {
        const int64_t p = static_cast<int64_t>(d) == axis_ ? j : pos[d];
        if (p >= data_[d])
          return invalid_argument(what_ + ": indices " + shape_str(idx_) + " exceed data " +
                                  shape_str(data_));
        off += p * stride[d];
      }
      std::memcpy(dst + i * es, src + static_cast<size_t>(off) * es, es);
      for (size_t d = rank; d-- > 0;) {
        if (++pos[d] < idx_[d]) break;
        pos[d] = 0;
      }
    }
    return Status::ok();
  }

 private:
  int64_t axis_ = 0;
  Shape data_, idx_;
  std::string what_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_gather_elements(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuGatherElements>());
}

}  // namespace qyolo
