#include "ir/ops/gather.h"

#include <cstring>

#include "backends/cpu/binary.h"
#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class GatherKernel : public CpuKernel {
 public:
  explicit GatherKernel(GatherAttrs a) : a_(a) {}

  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    const Shape& d = inputs[0]->shape;
    QYOLO_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(a_.axis, static_cast<int64_t>(d.size())));
    outer_ = inner_ = 1;
    for (size_t i = 0; i < d.size(); ++i) {
      if (static_cast<int64_t>(i) < axis)
        outer_ *= d[i];
      else if (static_cast<int64_t>(i) > axis)
        inner_ *= d[i];
    }
    axis_dim_ = d[static_cast<size_t>(axis)];
    node_ = node.describe();
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const Tensor& data = *inputs[0];
    std::vector<int64_t> idx = inputs[1]->to_int64_vector();
    for (auto& i : idx) {
      if (i < -axis_dim_ || i >= axis_dim_)
        return invalid_argument(node_ + ": index " + std::to_string(i) +
                                " is out of range for a dim of size " + std::to_string(axis_dim_));
      if (i < 0) i += axis_dim_;
    }
    const int64_t n = static_cast<int64_t>(idx.size());
    const size_t block = static_cast<size_t>(inner_) * dtype_size(data.dtype());
    const auto* src = static_cast<const std::byte*>(data.raw());
    auto* dst = static_cast<std::byte*>(outputs[0]->raw());
    cpu::parallel_ranges(
        outer_ * n,
        [&](int64_t b, int64_t e) {
          for (int64_t t = b; t < e; ++t) {
            const int64_t o = t / n, j = t % n;
            std::memcpy(dst + static_cast<size_t>(t) * block,
                        src + static_cast<size_t>(o * axis_dim_ + idx[static_cast<size_t>(j)]) * block,
                        block);
          }
        },
        std::max<int64_t>(cpu::kParallelGrain / std::max<int64_t>(inner_, 1), 1));
    return Status::ok();
  }

 private:
  GatherAttrs a_;
  int64_t outer_ = 1, axis_dim_ = 1, inner_ = 1;
  std::string node_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_gather(const Node& node) {
  QYOLO_ASSIGN_OR_RETURN(GatherAttrs a, GatherAttrs::parse(node, 0));
  return std::unique_ptr<CpuKernel>(new GatherKernel(a));
}

}  // namespace qyolo
