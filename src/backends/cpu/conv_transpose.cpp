// ConvTranspose by scattering: every input element adds x * w[k] to the output position
// in * stride - pad + k * dilation of each kernel tap (plain loops; detector heads use it rarely and
// small, e.g. a segmentation proto upsample).
#include "ir/ops/conv_transpose.h"

#include <algorithm>

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

class CpuConvTranspose final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    x_ = inputs[0]->shape;
    w_ = inputs[1]->shape;
    QYOLO_ASSIGN_OR_RETURN(p_, plan_conv_transpose(node, x_, w_));
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const float* x = inputs[0]->data<float>();
    const float* w = inputs[1]->data<float>();
    const float* b = inputs.size() > 2 && inputs[2] ? inputs[2]->data<float>() : nullptr;
    float* y = outputs[0]->data<float>();
    const size_t sp = x_.size() - 2;
    const int64_t cin = x_[1], cout = p_.out[1], cin_g = cin / p_.group, cout_g = cout / p_.group;
    int64_t in_sp = 1, out_sp = 1, k_sp = 1;
    for (size_t i = 0; i < sp; ++i) in_sp *= x_[i + 2], out_sp *= p_.out[i + 2], k_sp *= p_.kernel[i];
    for (int64_t n = 0; n < x_[0]; ++n)
      for (int64_t c = 0; c < cout; ++c)
        std::fill(y + (n * cout + c) * out_sp, y + (n * cout + c + 1) * out_sp, b ? b[c] : 0.f);
    std::vector<int64_t> ip(sp), kp(sp);
    for (int64_t n = 0; n < x_[0]; ++n)
      for (int64_t ci = 0; ci < cin; ++ci) {
        const int64_t g = ci / cin_g;
        const float* xc = x + (n * cin + ci) * in_sp;
        for (int64_t i = 0; i < in_sp; ++i) {
          unravel(i, x_, ip);
          for (int64_t k = 0; k < k_sp; ++k) {
            unravel_kernel(k, kp);
            int64_t o = 0;
            bool inside = true;
            for (size_t d = 0; d < sp && inside; ++d) {
              const int64_t pos = ip[d] * p_.strides[d] - p_.pad_begin[d] + kp[d] * p_.dilations[d];
              inside = pos >= 0 && pos < p_.out[d + 2];
              o = o * p_.out[d + 2] + pos;
            }
            if (!inside) continue;
            for (int64_t co = 0; co < cout_g; ++co) {
              const int64_t oc = g * cout_g + co;
              y[(n * cout + oc) * out_sp + o] += xc[i] * w[(ci * cout_g + co) * k_sp + k];
            }
          }
        }
      }
    return Status::ok();
  }

 private:
  static void unravel(int64_t i, const Shape& s, std::vector<int64_t>& idx) {
    for (size_t d = idx.size(); d-- > 0;) {
      idx[d] = i % s[d + 2];
      i /= s[d + 2];
    }
  }
  void unravel_kernel(int64_t k, std::vector<int64_t>& idx) const {
    for (size_t d = idx.size(); d-- > 0;) {
      idx[d] = k % p_.kernel[d];
      k /= p_.kernel[d];
    }
  }

  Shape x_, w_;
  ConvTransposePlan p_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_conv_transpose(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuConvTranspose>());
}

}  // namespace qyolo
