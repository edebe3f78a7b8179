// Split: byte copies of contiguous chunks of the input into each output (any dtype).
#include "ir/ops/split.h"

#include <cstring>

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

struct CopyTask {
  size_t output;
  int64_t src_offset, dst_offset, bytes;
};

class CpuSplit final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    std::optional<std::vector<int64_t>> split_input;
    if (inputs.size() > 1 && inputs[1] != nullptr) {
      if (!inputs[1]->value) return unsupported(node.describe() + ": the split input must be a constant");
      split_input = inputs[1]->value->to_int64_vector();
    }
    const Shape& x = inputs[0]->shape;
    QYOLO_ASSIGN_OR_RETURN(SplitAttrs a, SplitAttrs::parse(node, x, split_input));
    const int64_t es = static_cast<int64_t>(dtype_size(inputs[0]->dtype));
    int64_t outer = 1, inner = es;
    for (int64_t d = 0; d < a.axis; ++d) outer *= x[d];
    for (size_t d = static_cast<size_t>(a.axis) + 1; d < x.size(); ++d) inner *= x[d];
    const int64_t in_row = x[a.axis] * inner;
    constexpr int64_t kPiece = 1 << 18;
    int64_t col = 0;
    for (size_t i = 0; i < a.sizes.size(); ++i) {
      const int64_t chunk = a.sizes[i] * inner;
      for (int64_t o = 0; o < outer && chunk > 0; ++o)
        for (int64_t off = 0; off < chunk; off += kPiece)
          tasks_.push_back({i, o * in_row + col + off, o * chunk + off, std::min(kPiece, chunk - off)});
      col += chunk;
    }
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const auto* src = static_cast<const std::byte*>(inputs[0]->raw());
    const int64_t n = static_cast<int64_t>(tasks_.size());
#pragma omp parallel for schedule(static) if (n > 8)
    for (int64_t t = 0; t < n; ++t) {
      const CopyTask& c = tasks_[static_cast<size_t>(t)];
      std::memcpy(static_cast<std::byte*>(outputs[c.output]->raw()) + c.dst_offset, src + c.src_offset,
                  static_cast<size_t>(c.bytes));
    }
    return Status::ok();
  }

 private:
  std::vector<CopyTask> tasks_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_split(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuSplit>());
}

}  // namespace qyolo
