// MatMul and Gemm: row-major C[m, :] += A[m, k] * B[k, :] loops (the inner loop runs along B's and
// C's contiguous rows, so it vectorises), parallel over output rows. The matrices detector exports
// multiply (attention in C2PSA, a classifier's Gemm) are small; convolutions go to oneDNN.
#include "ir/ops/matmul.h"

#include <algorithm>

#include "backends/cpu/cpu_kernel.h"

namespace qyolo {

namespace {

// C[M, N] = A[M, K] * B[K, N] with element strides (so transposed operands are read in place).
void gemm_rows(const float* a, int64_t a_row, int64_t a_col, const float* b, int64_t b_row, int64_t b_col,
               float* c, int64_t m0, int64_t m1, int64_t k, int64_t n, float alpha) {
  for (int64_t i = m0; i < m1; ++i) {
    float* ci = c + i * n;
    std::fill(ci, ci + n, 0.f);
    for (int64_t kk = 0; kk < k; ++kk) {
      const float av = alpha * a[i * a_row + kk * a_col];
      const float* bk = b + kk * b_row;
      if (b_col == 1) {
        for (int64_t j = 0; j < n; ++j) ci[j] += av * bk[j];
      } else {
        for (int64_t j = 0; j < n; ++j) ci[j] += av * bk[j * b_col];
      }
    }
  }
}

class CpuMatMul final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    gemm_ = node.op_type == "Gemm";
    if (gemm_) {
      QYOLO_ASSIGN_OR_RETURN(g_, GemmAttrs::parse(node, inputs[0]->shape, inputs[1]->shape));
      plan_.m = g_.m, plan_.k = g_.k, plan_.n = g_.n;
      plan_.a_offsets = plan_.b_offsets = {0};
      if (inputs.size() > 2 && inputs[2] != nullptr) c_shape_ = inputs[2]->shape, has_c_ = true;
      return Status::ok();
    }
    QYOLO_ASSIGN_OR_RETURN(plan_, plan_matmul(node, inputs[0]->shape, inputs[1]->shape));
    return Status::ok();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const float* a = inputs[0]->data<float>();
    const float* b = inputs[1]->data<float>();
    float* y = outputs[0]->data<float>();
    const int64_t m = plan_.m, k = plan_.k, n = plan_.n;
    const int64_t batches = static_cast<int64_t>(plan_.a_offsets.size());
    // Element strides of A (rows, cols) and B (rows = the k index, cols = the n index).
    const int64_t a_row = gemm_ && g_.trans_a ? 1 : k, a_col = gemm_ && g_.trans_a ? m : 1;
    const int64_t b_row = gemm_ && g_.trans_b ? 1 : n, b_col = gemm_ && g_.trans_b ? k : 1;
    const float alpha = gemm_ ? g_.alpha : 1.f;
    const int64_t rows = batches * m;
#pragma omp parallel for schedule(static) if (rows * k * n > (1 << 16))
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t bi = r / m, i = r % m;
      gemm_rows(a + plan_.a_offsets[static_cast<size_t>(bi)], a_row, a_col,
                b + plan_.b_offsets[static_cast<size_t>(bi)], b_row, b_col, y + bi * m * n, i, i + 1, k, n,
                alpha);
    }
    if (gemm_ && has_c_ && g_.beta != 0.f) add_c(*inputs[2], y);
    return Status::ok();
  }

 private:
  // y += beta * C, C broadcast from a scalar, [N], [1, N], [M, 1] or [M, N].
  void add_c(const Tensor& c, float* y) const {
    const float* cv = c.data<float>();
    const int64_t m = plan_.m, n = plan_.n;
    const Shape s = c_shape_;
    const int64_t cm = s.size() == 2 ? s[0] : 1;
    const int64_t cn = s.empty() ? 1 : s.back();
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        y[i * n + j] += g_.beta * cv[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)];
  }

  bool gemm_ = false, has_c_ = false;
  GemmAttrs g_;
  MatMulPlan plan_;
  Shape c_shape_;
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_matmul(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuMatMul>());
}

}  // namespace qyolo
