// CPU elementwise binary family. Every op runs through one broadcast walker whose inner loop is
// specialised on the operands' inner strides (both varying / scalar-first / scalar-second), which
// covers the hot float32 cases (same shape, tensor-by-scalar, per-channel) with vectorisable loops.
#include "backends/cpu/binary.h"

#include <cmath>
#include <cstring>
#include <optional>
#include <type_traits>

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

using cpu::for_each_broadcast;
using cpu::visit_dtype;

template <class TO, class TA, class TB, class Op>
inline void inner_loop(TO* __restrict o, const TA* __restrict a, int64_t sa, const TB* __restrict b,
                       int64_t sb, int64_t n, Op op) {
  if (sa != 0 && sb != 0) {
    for (int64_t i = 0; i < n; ++i) o[i] = op(a[i], b[i]);
  } else if (sb != 0) {
    const TA x = *a;
    for (int64_t i = 0; i < n; ++i) o[i] = op(x, b[i]);
  } else if (sa != 0) {
    const TB y = *b;
    for (int64_t i = 0; i < n; ++i) o[i] = op(a[i], y);
  } else {
    const TO v = op(*a, *b);
    for (int64_t i = 0; i < n; ++i) o[i] = v;
  }
}

// In-place variant (o may equal a) for the variadic Max/Min accumulation.
template <class T, class Op>
inline void inner_loop_inplace(T* o, const T* a, int64_t sa, const T* __restrict b, int64_t sb, int64_t n,
                               Op op) {
  if (sa != 0 && sb != 0) {
    for (int64_t i = 0; i < n; ++i) o[i] = op(a[i], b[i]);
  } else if (sb != 0) {
    const T x = *a;
    for (int64_t i = 0; i < n; ++i) o[i] = op(x, b[i]);
  } else if (sa != 0) {
    const T y = *b;
    for (int64_t i = 0; i < n; ++i) o[i] = op(a[i], y);
  } else {
    const T v = op(*a, *b);
    for (int64_t i = 0; i < n; ++i) o[i] = v;
  }
}

template <class TO, class TA, class TB, class Op>
void apply(const BroadcastPlan& p, const TA* a, const TB* b, TO* o, Op op) {
  for_each_broadcast<2>(
      p, [&](int64_t oo, const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& st, int64_t n) {
        if constexpr (std::is_same_v<TO, TA> && std::is_same_v<TA, TB>) {
          if (static_cast<const void*>(o) == static_cast<const void*>(a)) {
            inner_loop_inplace(o + oo, a + off[0], st[0], b + off[1], st[1], n, op);
            return;
          }
        }
        inner_loop(o + oo, a + off[0], st[0], b + off[1], st[1], n, op);
      });
}

// Arithmetic in T (small integer types wrap like numpy); integer division truncates (like
// ONNX Runtime) and a zero divisor gives 0 instead of trapping.
template <class T>
Status arithmetic(BinaryOp op, const BroadcastPlan& p, const T* a, const T* b, T* o) {
  switch (op) {
    case BinaryOp::kAdd:
      apply(p, a, b, o, [](T x, T y) { return static_cast<T>(x + y); });
      break;
    case BinaryOp::kSub:
      apply(p, a, b, o, [](T x, T y) { return static_cast<T>(x - y); });
      break;
    case BinaryOp::kMul:
      apply(p, a, b, o, [](T x, T y) { return static_cast<T>(x * y); });
      break;
    case BinaryOp::kDiv:
      if constexpr (std::is_floating_point_v<T>) {
        apply(p, a, b, o, [](T x, T y) { return x / y; });
      } else {
        apply(p, a, b, o, [](T x, T y) { return y == 0 ? T{0} : static_cast<T>(x / y); });
      }
      break;
    case BinaryOp::kMax:
      apply(p, a, b, o, [](T x, T y) { return x < y ? y : x; });
      break;
    case BinaryOp::kMin:
      apply(p, a, b, o, [](T x, T y) { return y < x ? y : x; });
      break;
    default:
      return internal_error("not an arithmetic op");
  }
  return Status::ok();
}

template <class T>
Status compare(BinaryOp op, const BroadcastPlan& p, const T* a, const T* b, bool* o) {
  switch (op) {
    case BinaryOp::kEqual:
      apply(p, a, b, o, [](T x, T y) { return x == y; });
      break;
    case BinaryOp::kLess:
      apply(p, a, b, o, [](T x, T y) { return x < y; });
      break;
    case BinaryOp::kGreater:
      apply(p, a, b, o, [](T x, T y) { return x > y; });
      break;
    case BinaryOp::kAnd:
      apply(p, a, b, o, [](T x, T y) { return static_cast<bool>(x) && static_cast<bool>(y); });
      break;
    case BinaryOp::kOr:
      apply(p, a, b, o, [](T x, T y) { return static_cast<bool>(x) || static_cast<bool>(y); });
      break;
    default:
      return internal_error("not a comparison op");
  }
  return Status::ok();
}

template <class TO>
TO from_double(double v) {
  if constexpr (std::is_floating_point_v<TO>) {
    return static_cast<TO>(v);
  } else {
    if (!(v == v)) return TO{0};
    v = std::clamp(v, -9.2233720368547748e18, 9.2233720368547748e18);
    return static_cast<TO>(static_cast<int64_t>(v));
  }
}

class BinaryKernel : public CpuKernel {
 public:
  explicit BinaryKernel(BinaryAttrs a) : a_(a) {}

  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    const Shape& out = outputs[0].shape;
    if (inputs.size() == 1) return Status::ok();
    plans_.push_back(make_broadcast_plan(out, {inputs[0]->shape, inputs[1]->shape}));
    for (size_t i = 2; i < inputs.size(); ++i)
      plans_.push_back(make_broadcast_plan(out, {out, inputs[i]->shape}));
    // Pow by a constant scalar 2 (YOLOv5's (2*sigmoid)^2 box decode) or 1: no pow() call.
    if (a_.op == BinaryOp::kPow && inputs[0]->dtype == DataType::kFloat32 && inputs[1]->value &&
        inputs[1]->value->numel() == 1) {
      double e = inputs[1]->value->to_float_vector()[0];
      if (inputs[1]->dtype == DataType::kFloat32 || inputs[1]->dtype == DataType::kFloat16 ||
          std::fabs(e) < 16777216.0)
        pow_exponent_ = e;
    }
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    Tensor& out = *outputs[0];
    if (inputs.size() == 1) {  // Max/Min of one input
      if (out.nbytes()) std::memcpy(out.raw(), inputs[0]->raw(), out.nbytes());
      return Status::ok();
    }
    // float16: compute in float32.
    std::vector<Tensor> staged;
    std::vector<const Tensor*> in(inputs.begin(), inputs.end());
    staged.reserve(in.size());  // keeps &staged.back() valid
    for (auto& t : in)
      if (t->dtype() == DataType::kFloat16) {
        staged.push_back(cpu::to_float32(*t));
        t = &staged.back();
      }
    Tensor* o = &out;
    Tensor out32;
    if (out.dtype() == DataType::kFloat16) {
      out32 = Tensor::uninitialized(DataType::kFloat32, out.shape());
      o = &out32;
    }
    Status st = compute(in, *o);
    if (!st.is_ok()) return st;
    if (o != &out) cpu::store_float32(out32, out);
    return Status::ok();
  }

 private:
  Status compute(const std::vector<const Tensor*>& in, Tensor& out) {
    const DataType ta = in[0]->dtype();
    Status st;
    if (a_.op == BinaryOp::kPow) return pow(*in[0], *in[1], out);
    if (a_.bool_output()) {
      visit_dtype(ta, [&](auto tag) {
        using T = decltype(tag);
        st = compare<T>(a_.op, plans_[0], in[0]->data<T>(), in[1]->data<T>(), out.data<bool>());
      });
      return st;
    }
    bool ok = visit_dtype(ta, [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, bool>) {
        st = internal_error("bool arithmetic");
      } else {
        st = arithmetic<T>(a_.op, plans_[0], in[0]->data<T>(), in[1]->data<T>(), out.data<T>());
        for (size_t i = 2; i < in.size() && st.is_ok(); ++i)
          st = arithmetic<T>(a_.op, plans_[i - 1], out.data<T>(), in[i]->data<T>(), out.data<T>());
      }
    });
    if (!ok) return internal_error("unexpected element type");
    return st;
  }

  Status pow(const Tensor& base, const Tensor& expo, Tensor& out) {
    const BroadcastPlan& p = plans_[0];
    if (base.dtype() == DataType::kFloat32 && pow_exponent_) {
      const float* x = base.data<float>();
      float* o = out.data<float>();
      const double e = *pow_exponent_;
      if (e == 2.0) {
        cpu::parallel_ranges(out.numel(), [&](int64_t b, int64_t end) {
          for (int64_t i = b; i < end; ++i) o[i] = x[i] * x[i];
        });
        return Status::ok();
      }
      if (e == 1.0) {
        std::memcpy(o, x, out.nbytes());
        return Status::ok();
      }
    }
    if (base.dtype() == DataType::kFloat32 && expo.dtype() == DataType::kFloat32) {
      apply(p, base.data<float>(), expo.data<float>(), out.data<float>(),
            [](float x, float y) { return std::pow(x, y); });
      return Status::ok();
    }
    bool ok = visit_dtype(base.dtype(), [&](auto ta) {
      using TA = decltype(ta);
      visit_dtype(expo.dtype(), [&](auto tb) {
        using TB = decltype(tb);
        apply(p, base.data<TA>(), expo.data<TB>(), out.data<TA>(), [](TA x, TB y) {
          return from_double<TA>(std::pow(static_cast<double>(x), static_cast<double>(y)));
        });
      });
    });
    if (!ok) return internal_error("unexpected element type");
    return Status::ok();
  }

  BinaryAttrs a_;
  std::vector<BroadcastPlan> plans_;
  std::optional<double> pow_exponent_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_binary(const Node& node) {
  // Kernels see no opset; infer_binary already validated the node, and parse does not depend on it.
  QYOLO_ASSIGN_OR_RETURN(BinaryAttrs a, BinaryAttrs::parse(node, 0));
  return std::unique_ptr<CpuKernel>(new BinaryKernel(a));
}

}  // namespace qyolo
