// CPU elementwise unary family. float32 loops are OpenMP-parallel and written to vectorise; Sigmoid
// (YOLOv5's SiLU = x * Sigmoid(x), on every activation) uses a polynomial exp that vectorises
// without -ffast-math (max error ~2 ulp vs std::exp, see tests/test_elementwise.cpp).
#include "ir/ops/unary.h"

#include <cmath>
#include <cstring>
#include <type_traits>

#include "backends/cpu/binary.h"
#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/float_math.h"

namespace qyolo {

namespace {

using cpu::clampf;
using cpu::exp_poly;

template <class Op>
void map_f32(const float* __restrict x, float* __restrict y, int64_t n, Op op) {
  cpu::parallel_ranges(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = op(x[i]);
  });
}

void run_f32(const UnaryAttrs& a, const float* x, float* y, int64_t n) {
  const float alpha = a.alpha, beta = a.beta;
  const float zero = cpu::opaque(0.f), one = cpu::opaque(1.f);
  switch (a.op) {
    case UnaryOp::kSigmoid: {
      const float lo = cpu::opaque(-87.3f), hi = cpu::opaque(88.f);
      map_f32(x, y, n, [=](float v) { return 1.f / (1.f + exp_poly(-v, lo, hi)); });
      break;
    }
    case UnaryOp::kRelu:
      map_f32(x, y, n, [](float v) { return v > 0.f ? v : 0.f; });
      break;
    case UnaryOp::kLeakyRelu:
      map_f32(x, y, n, [=](float v) { return v < 0.f ? v * alpha : v; });
      break;
    case UnaryOp::kHardSigmoid:
      map_f32(x, y, n, [=](float v) { return clampf(alpha * v + beta, zero, one); });
      break;
    case UnaryOp::kHardSwish:
      map_f32(x, y, n, [=](float v) { return v * clampf(alpha * v + beta, zero, one); });
      break;
    case UnaryOp::kTanh:
      map_f32(x, y, n, [](float v) { return std::tanh(v); });
      break;
    case UnaryOp::kExp:
      map_f32(x, y, n, [](float v) { return std::exp(v); });
      break;
    case UnaryOp::kLog:
      map_f32(x, y, n, [](float v) { return std::log(v); });
      break;
    case UnaryOp::kSqrt:
      map_f32(x, y, n, [](float v) { return std::sqrt(v); });
      break;
    case UnaryOp::kNeg:
      map_f32(x, y, n, [](float v) { return -v; });
      break;
    case UnaryOp::kAbs:
      map_f32(x, y, n, [](float v) { return std::fabs(v); });
      break;
    case UnaryOp::kSoftplus:
      // log(1 + exp(x)) without overflow for large x.
      map_f32(x, y, n, [](float v) { return v > 20.f ? v : std::log1p(std::exp(v)); });
      break;
    case UnaryOp::kElu:
      map_f32(x, y, n, [=](float v) { return v < 0.f ? alpha * std::expm1(v) : v; });
      break;
    case UnaryOp::kNot:
      break;  // bool only (validated by infer)
  }
}

template <class T>
Status run_int(const UnaryAttrs& a, const T* x, T* y, int64_t n) {
  switch (a.op) {
    case UnaryOp::kRelu:
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0 ? x[i] : T{0};
      break;
    case UnaryOp::kNeg:
      for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(-x[i]);
      break;
    case UnaryOp::kAbs:
      if constexpr (std::is_signed_v<T>) {
        for (int64_t i = 0; i < n; ++i) y[i] = x[i] < 0 ? static_cast<T>(-x[i]) : x[i];
      } else {
        std::memcpy(y, x, static_cast<size_t>(n) * sizeof(T));
      }
      break;
    default:
      return internal_error("integer input for a float-only unary op");
  }
  return Status::ok();
}

class UnaryKernel : public CpuKernel {
 public:
  explicit UnaryKernel(UnaryAttrs a) : a_(a) {}

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const Tensor& x = *inputs[0];
    Tensor& y = *outputs[0];
    const int64_t n = x.numel();
    switch (x.dtype()) {
      case DataType::kFloat32:
        run_f32(a_, x.data<float>(), y.data<float>(), n);
        return Status::ok();
      case DataType::kFloat16: {
        Tensor x32 = cpu::to_float32(x);
        Tensor y32 = Tensor::uninitialized(DataType::kFloat32, y.shape());
        run_f32(a_, x32.data<float>(), y32.data<float>(), n);
        cpu::store_float32(y32, y);
        return Status::ok();
      }
      case DataType::kBool: {
        const bool* xb = x.data<bool>();
        bool* yb = y.data<bool>();
        for (int64_t i = 0; i < n; ++i) yb[i] = !xb[i];
        return Status::ok();
      }
      case DataType::kInt8:
        return run_int(a_, x.data<int8_t>(), y.data<int8_t>(), n);
      case DataType::kUInt8:
        return run_int(a_, x.data<uint8_t>(), y.data<uint8_t>(), n);
      case DataType::kInt32:
        return run_int(a_, x.data<int32_t>(), y.data<int32_t>(), n);
      case DataType::kInt64:
        return run_int(a_, x.data<int64_t>(), y.data<int64_t>(), n);
    }
    return internal_error("unexpected element type");
  }

 private:
  UnaryAttrs a_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_unary(const Node& node) {
  QYOLO_ASSIGN_OR_RETURN(UnaryAttrs a, UnaryAttrs::parse(node, 0));
  return std::unique_ptr<CpuKernel>(new UnaryKernel(a));
}

}  // namespace qyolo
