// Concat: byte copies of each input's contiguous chunks into the output (any dtype).
#include "ir/ops/concat.h"

#include <cstring>

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

// One memcpy: input `input`, byte offsets in that input and in the output.
struct CopyTask {
  size_t input;
  int64_t src_offset, dst_offset, bytes;
};

// Splits copies into pieces of about `piece` bytes so that OpenMP threads share big chunks.
void add_task(std::vector<CopyTask>& tasks, CopyTask t, int64_t piece) {
  for (int64_t off = 0; off < t.bytes; off += piece)
    tasks.push_back({t.input, t.src_offset + off, t.dst_offset + off, std::min(piece, t.bytes - off)});
}

class CpuConcat final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    std::vector<Shape> shapes;
    for (const auto* d : inputs) shapes.push_back(d->shape);
    QYOLO_ASSIGN_OR_RETURN(ConcatAttrs a, ConcatAttrs::parse(node, shapes));
    const int64_t es = static_cast<int64_t>(dtype_size(outputs[0].dtype));
    int64_t outer = 1, inner = es;
    for (int64_t d = 0; d < a.axis; ++d) outer *= a.out_shape[d];
    for (size_t d = static_cast<size_t>(a.axis) + 1; d < a.out_shape.size(); ++d) inner *= a.out_shape[d];
    const int64_t out_row = a.out_shape[a.axis] * inner;
    constexpr int64_t kPiece = 1 << 18;
    int64_t col = 0;
    for (size_t i = 0; i < shapes.size(); ++i) {
      const int64_t chunk = shapes[i][a.axis] * inner;
      if (chunk > 0)
        for (int64_t o = 0; o < outer; ++o)
          add_task(tasks_, {i, o * chunk, o * out_row + col, chunk}, kPiece);
      col += chunk;
    }
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    auto* dst = static_cast<std::byte*>(outputs[0]->raw());
    const int64_t n = static_cast<int64_t>(tasks_.size());
#pragma omp parallel for schedule(static) if (n > 8)
    for (int64_t t = 0; t < n; ++t) {
      const CopyTask& c = tasks_[static_cast<size_t>(t)];
      std::memcpy(dst + c.dst_offset, static_cast<const std::byte*>(inputs[c.input]->raw()) + c.src_offset,
                  static_cast<size_t>(c.bytes));
    }
    return Status::ok();
  }

 private:
  std::vector<CopyTask> tasks_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_concat(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuConcat>());
}

}  // namespace qyolo
