// ReduceMax/Min/Mean/Sum/SumSquare: each output element folds the input elements that map to it
// (the output index with the reduced dims dropped), accumulated in double for Sum/Mean.
#include "ir/ops/reduce.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {


class CpuReduce final : public CpuKernel {
 public:
  explicit CpuReduce(ReduceKind k) : kind_(k) {}

  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    // The axes' form (attribute or constant input) was validated by infer_reduce for the opset.
    std::vector<int64_t> axes;
    if (node.has_attr("axes")) {
      QYOLO_ASSIGN_OR_RETURN(axes, node.attr_ints("axes"));
    } else if (inputs.size() > 1 && inputs[1] != nullptr) {
      if (!inputs[1]->value) return unsupported(node.describe() + ": axes must be constant");
      axes = inputs[1]->value->to_int64_vector();
    }
    QYOLO_ASSIGN_OR_RETURN(int64_t keepdims, node.attr_int("keepdims", 1));
    QYOLO_ASSIGN_OR_RETURN(int64_t noop, node.attr_int("noop_with_empty_axes", 0));
    QYOLO_ASSIGN_OR_RETURN(plan_, plan_reduce(node, inputs[0]->shape, axes, keepdims != 0, noop != 0));
    // Output element of every input element: strides of the kept dims in the output.
    const size_t rank = plan_.in.size();
    out_strides_.assign(rank, 0);
    int64_t s = 1;
    for (size_t d = rank; d-- > 0;) {
      if (plan_.reduced[d]) continue;
      out_strides_[d] = s;
      s *= plan_.in[d];
    }
    count_ = 1;
    for (size_t d = 0; d < rank; ++d)
      if (plan_.reduced[d]) count_ *= plan_.in[d];
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const Tensor& x = *inputs[0];
    Tensor& y = *outputs[0];
    if (plan_.noop) {
      std::memcpy(y.raw(), x.raw(), x.nbytes());
      return Status::ok();
    }
    const int64_t n_out = y.numel();
    std::vector<double> acc(static_cast<size_t>(n_out));
    const double init = kind_ == ReduceKind::kMax   ? -std::numeric_limits<double>::infinity()
                        : kind_ == ReduceKind::kMin ? std::numeric_limits<double>::infinity()
                                                    : 0.0;
    std::fill(acc.begin(), acc.end(), init);
    const float* xv = x.data<float>();
    const size_t rank = plan_.in.size();
    std::vector<int64_t> idx(rank, 0);
    for (int64_t i = 0, n = x.numel(); i < n; ++i) {
      int64_t o = 0;
      for (size_t d = 0; d < rank; ++d) o += idx[d] * out_strides_[d];
      const double v = xv[i];
      double& a = acc[static_cast<size_t>(o)];
      switch (kind_) {
        case ReduceKind::kMax:
          a = std::max(a, v);
          break;
        case ReduceKind::kMin:
          a = std::min(a, v);
          break;
        case ReduceKind::kSumSquare:
          a += v * v;
          break;
        default:
          a += v;
          break;
      }
      for (size_t d = rank; d-- > 0;) {  // next input index
        if (++idx[d] < plan_.in[d]) break;
        idx[d] = 0;
      }
    }
    float* yv = y.data<float>();
    for (int64_t o = 0; o < n_out; ++o) {
      double v = acc[static_cast<size_t>(o)];
      if (kind_ == ReduceKind::kMean) v /= static_cast<double>(count_);
      yv[o] = static_cast<float>(v);
    }
    return Status::ok();
  }

 private:
  ReduceKind kind_;
  ReducePlan plan_;
  std::vector<int64_t> out_strides_;
  int64_t count_ = 1;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_reduce(const Node& node) {
  QYOLO_ASSIGN_OR_RETURN(const ReduceKind kind, reduce_kind_of(node));
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuReduce>(kind));
}

}  // namespace qyolo
