// AveragePool (float32; 1-3 spatial dims): the divisor counts the taps inside the input, or with
// count_include_pad those inside the padded input (never the ceil_mode overhang).
#include "ir/ops/avg_pool.h"

#include <array>

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

// Per spatial dim (always 3: missing leading dims have size 1), per output index: the first input
// position of the window and the valid kernel taps [lo, hi) (taps inside the input), plus the number
// of taps inside the padded input (count_include_pad divisor).
struct PoolDim {
  int64_t in = 1, out = 1, dil = 1;
  std::vector<int64_t> start, lo, hi, padded_count;
};

std::array<PoolDim, 3> make_pool_dims(const Shape& x, const WindowGeometry& w) {
  std::array<PoolDim, 3> dims;
  const size_t k = x.size() - 2, skip = 3 - k;
  for (size_t i = 0; i < 3; ++i) {
    PoolDim& p = dims[i];
    int64_t kernel = 1, stride = 1, pb = 0, pe = 0;
    if (i >= skip) {
      const size_t j = i - skip;
      p.in = x[2 + j];
      p.out = w.out[j];
      p.dil = w.dilations[j];
      kernel = w.kernel[j];
      stride = w.strides[j];
      pb = w.pads_begin[j];
      pe = w.pads_end[j];
    }
    for (int64_t o = 0; o < p.out; ++o) {
      const int64_t s = o * stride - pb;
      int64_t lo = 0, hi = 0, padded = 0;
      bool any = false;
      for (int64_t t = 0; t < kernel; ++t) {
        const int64_t pos = s + t * p.dil;
        if (pos >= -pb && pos < p.in + pe) ++padded;
        if (pos >= 0 && pos < p.in) {
          if (!any) lo = t;
          hi = t + 1;
          any = true;
        }
      }
      p.start.push_back(s);
      p.lo.push_back(lo);
      p.hi.push_back(hi);
      p.padded_count.push_back(padded);
    }
  }
  return dims;
}

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
