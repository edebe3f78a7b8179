// AveragePool (float32; 1-3 spatial dims): the divisor counts the taps inside the input, or with
// count_include_pad those inside the padded input (never the ceil_mode overhang).
#include "ir/ops/avg_pool.h"

#include <array>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/pool_dims.h"

namespace qyolo {

namespace {

using cpu::make_pool_dims;
using cpu::PoolDim;

class CpuAvgPool final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    const Shape& x = inputs[0]->shape;
    QYOLO_ASSIGN_OR_RETURN(PoolAttrs a, PoolAttrs::parse(node, x));
    dims_ = make_pool_dims(x, a.window);
    planes_ = x[0] * x[1];
    count_include_pad_ = a.count_include_pad;
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const auto& d = dims_;
    const float* x = inputs[0]->data<float>();
    float* y = outputs[0]->data<float>();
    const int64_t in_plane = d[0].in * d[1].in * d[2].in, out_plane = d[0].out * d[1].out * d[2].out;
    const bool incl = count_include_pad_;
#pragma omp parallel for schedule(static) if (planes_ * out_plane > (1 << 12))
    for (int64_t p = 0; p < planes_; ++p) {
      const float* xp = x + p * in_plane;
      float* yp = y + p * out_plane;
      for (int64_t o0 = 0; o0 < d[0].out; ++o0)
        for (int64_t o1 = 0; o1 < d[1].out; ++o1)
          for (int64_t o2 = 0; o2 < d[2].out; ++o2) {
            float s = 0.f;
            for (int64_t t0 = d[0].lo[o0]; t0 < d[0].hi[o0]; ++t0) {
              const int64_t i0 = d[0].start[o0] + t0 * d[0].dil;
              for (int64_t t1 = d[1].lo[o1]; t1 < d[1].hi[o1]; ++t1) {
                const float* row =
                    xp + (i0 * d[1].in + d[1].start[o1] + t1 * d[1].dil) * d[2].in + d[2].start[o2];
                for (int64_t t2 = d[2].lo[o2]; t2 < d[2].hi[o2]; ++t2) s += row[t2 * d[2].dil];
              }
            }
            const int64_t n = incl ? d[0].padded_count[o0] * d[1].padded_count[o1] * d[2].padded_count[o2]
                                   : (d[0].hi[o0] - d[0].lo[o0]) * (d[1].hi[o1] - d[1].lo[o1]) *
                                         (d[2].hi[o2] - d[2].lo[o2]);
            yp[(o0 * d[1].out + o1) * d[2].out + o2] = n > 0 ? s / static_cast<float>(n) : 0.f;
          }
    }
    return Status::ok();
  }

 private:
  std::array<PoolDim, 3> dims_;
  int64_t planes_ = 0;
  bool count_include_pad_ = false;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_avg_pool(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuAvgPool>());
}

}  // namespace qyolo
