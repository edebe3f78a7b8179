// MaxPool (float32, int8, uint8; 1-3 spatial dims): padded positions never win. Int8 values of
// the int8 plan (channels-last, src/quant/int8_dataflow.h) are pooled in place of their layout.
#include "ir/ops/max_pool.h"

#include <array>
#include <limits>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/pool_dims.h"
#include "passes/passes.h"
#include "quant/int8_dataflow.h"

namespace qyolo {

namespace {

using cpu::make_pool_dims;
using cpu::PoolDim;

template <typename T>
void max_pool(const std::array<PoolDim, 3>& d, int64_t planes, const T* x, T* y) {
  const int64_t in_plane = d[0].in * d[1].in * d[2].in, out_plane = d[0].out * d[1].out * d[2].out;
#pragma omp parallel for schedule(static) if (planes * out_plane > (1 << 12))
  for (int64_t p = 0; p < planes; ++p) {
    const T* xp = x + p * in_plane;
    T* yp = y + p * out_plane;
    for (int64_t o0 = 0; o0 < d[0].out; ++o0)
      for (int64_t o1 = 0; o1 < d[1].out; ++o1)
        for (int64_t o2 = 0; o2 < d[2].out; ++o2) {
          T m = std::numeric_limits<T>::lowest();
          for (int64_t t0 = d[0].lo[o0]; t0 < d[0].hi[o0]; ++t0) {
            const int64_t i0 = d[0].start[o0] + t0 * d[0].dil;
            for (int64_t t1 = d[1].lo[o1]; t1 < d[1].hi[o1]; ++t1) {
              const T* row = xp + (i0 * d[1].in + d[1].start[o1] + t1 * d[1].dil) * d[2].in + d[2].start[o2];
              for (int64_t t2 = d[2].lo[o2]; t2 < d[2].hi[o2]; ++t2) {
                const T v = row[t2 * d[2].dil];
                m = v > m ? v : m;
              }
            }
          }
          yp[(o0 * d[1].out + o1) * d[2].out + o2] = m;
        }
  }
}

// Channels-last values (2-D; int8 ones of the int8 plan, float ones of plan_channels_last_float):
// per output pixel, an elementwise max over the window's pixels of C contiguous values.
template <typename T>
void max_pool_channels_last(const std::array<PoolDim, 3>& d, int64_t n, int64_t c, const T* x, T* y) {
  const PoolDim &ph = d[1], &pw = d[2];
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oh = 0; oh < ph.out; ++oh)
      for (int64_t ow = 0; ow < pw.out; ++ow) {
        T* yp = y + ((b * ph.out + oh) * pw.out + ow) * c;
        for (int64_t ch = 0; ch < c; ++ch) yp[ch] = std::numeric_limits<T>::lowest();
        for (int64_t th = ph.lo[oh]; th < ph.hi[oh]; ++th) {
          const int64_t ih = ph.start[oh] + th * ph.dil;
          for (int64_t tw = pw.lo[ow]; tw < pw.hi[ow]; ++tw) {
            const T* xp = x + ((b * ph.in + ih) * pw.in + pw.start[ow] + tw * pw.dil) * c;
            for (int64_t ch = 0; ch < c; ++ch) yp[ch] = xp[ch] > yp[ch] ? xp[ch] : yp[ch];
          }
        }
      }
}

class CpuMaxPool final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    if (outputs.size() > 1) return unsupported(node.describe() + ": the Indices output is not supported");
    const Shape& x = inputs[0]->shape;
    QYOLO_ASSIGN_OR_RETURN(PoolAttrs a, PoolAttrs::parse(node, x));
    dims_ = make_pool_dims(x, a.window);
    planes_ = x[0] * x[1];
    dtype_ = inputs[0]->dtype;
    channels_last_ = node.has_attr(kInt8OutputScaleAttr) || node.has_attr(kChannelsLastOutputAttr);
    if (channels_last_ && (x.size() != 4 || (dtype_ != DataType::kInt8 && dtype_ != DataType::kFloat32) ||
                           outputs[0].dtype != dtype_))
      return internal_error(node.describe() + ": a channels-last MaxPool needs a 2-D int8 or float input");
    batch_ = x[0];
    channels_ = x[1];
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    if (channels_last_ && dtype_ == DataType::kInt8) {
      max_pool_channels_last(dims_, batch_, channels_, inputs[0]->data<int8_t>(), outputs[0]->data<int8_t>());
      return Status::ok();
    }
    if (channels_last_) {
      max_pool_channels_last(dims_, batch_, channels_, inputs[0]->data<float>(), outputs[0]->data<float>());
      return Status::ok();
    }
    switch (dtype_) {
      case DataType::kFloat32:
        max_pool(dims_, planes_, inputs[0]->data<float>(), outputs[0]->data<float>());
        break;
      case DataType::kInt8:
        max_pool(dims_, planes_, inputs[0]->data<int8_t>(), outputs[0]->data<int8_t>());
        break;
      case DataType::kUInt8:
        max_pool(dims_, planes_, inputs[0]->data<uint8_t>(), outputs[0]->data<uint8_t>());
        break;
      default:
        return unsupported(std::string("MaxPool: dtype ") + dtype_name(dtype_) + " is not supported");
    }
    return Status::ok();
  }

 private:
  std::array<PoolDim, 3> dims_;
  int64_t planes_ = 0;
  DataType dtype_ = DataType::kFloat32;
  bool channels_last_ = false;  // int8 plan or channels-last float plan: NHWC
  int64_t batch_ = 0, channels_ = 0;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_max_pool(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuMaxPool>());
}

}  // namespace qyolo
