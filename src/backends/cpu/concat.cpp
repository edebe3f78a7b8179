// Concat: byte copies of each input's contiguous chunks into the output (any dtype).
// A channels-last float output (passes.h) copies each pixel's channels from its inputs.
// An int8 channels-last output of the int8 plan (src/quant/int8_dataflow.h) takes each pixel's
// channels from int8 inputs of its scale (copies) and from float NCHW inputs, quantised.
#include "ir/ops/concat.h"

#include <omp.h>

#include <cmath>
#include <cstring>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/int8_epilogue.h"
#include "passes/passes.h"
#include "quant/int8_dataflow.h"

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

// `rows` rows of `bytes` from src (pitch sp) to dst (pitch dp): channels-last concat parts. The
// common channel counts copy with a size known here (inline moves, no libc call per pixel).
template <int64_t B>
void copy_rows_fixed(std::byte* d, int64_t dp, const std::byte* s, int64_t sp, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) std::memcpy(d + r * dp, s + r * sp, B);
}
void copy_rows(std::byte* d, int64_t dp, const std::byte* s, int64_t sp, int64_t bytes, int64_t rows) {
  switch (bytes) {
    case 16:
      return copy_rows_fixed<16>(d, dp, s, sp, rows);
    case 32:
      return copy_rows_fixed<32>(d, dp, s, sp, rows);
    case 64:
      return copy_rows_fixed<64>(d, dp, s, sp, rows);
    case 128:
      return copy_rows_fixed<128>(d, dp, s, sp, rows);
    default:
      for (int64_t r = 0; r < rows; ++r) std::memcpy(d + r * dp, s + r * sp, static_cast<size_t>(bytes));
  }
}

// Rows [0, rows) split into one block per OpenMP thread (when worth it).
template <typename F>
void parallel_row_blocks(int64_t rows, int64_t bytes_per_row, F&& f) {
  const bool par = rows * bytes_per_row > (1 << 15);
#pragma omp parallel if (par)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
    if (r1 > r0) f(r0, r1 - r0);
  }
}

class CpuConcat final : public CpuKernel {
 public:
  Status prepare(const Node& node, std::span<const ValueDesc* const> inputs,
                 std::span<const ValueDesc> outputs) override {
    std::vector<Shape> shapes;
    for (const auto* d : inputs) shapes.push_back(d->shape);
    QYOLO_ASSIGN_OR_RETURN(ConcatAttrs a, ConcatAttrs::parse(node, shapes));
    if (node.has_attr(kInt8OutputScaleAttr)) return prepare_channels_last(node, inputs, outputs[0], a);
    if (node.has_attr(kChannelsLastOutputAttr))
      return prepare_channels_last_float(node, inputs, outputs[0], a);
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
    if (channels_last_ && float_) {
      run_channels_last_float(inputs, outputs[0]->data<float>());
      return Status::ok();
    }
    if (channels_last_) {
      run_channels_last(inputs, outputs[0]->data<int8_t>());
      return Status::ok();
    }
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
  Status prepare_channels_last(const Node& node, std::span<const ValueDesc* const> inputs,
                               const ValueDesc& out, const ConcatAttrs& a) {
    if (a.axis != 1 || out.shape.size() != 4 || out.dtype != DataType::kInt8)
      return internal_error(node.describe() +
                            ": a channels-last Concat must join the channels of int8 NCHW values");
    channels_last_ = true;
    float_inputs_channels_last_ = node.has_attr(kChannelsLastInputAttr);
    epilogue_ = cpu::best_int8_epilogue();
    QYOLO_ASSIGN_OR_RETURN(scale_, node.attr_float(kInt8OutputScaleAttr));
    QYOLO_ASSIGN_OR_RETURN(const int64_t zp, node.attr_int(kInt8OutputZeroPointAttr, 0));
    if (zp < -128 || zp > 127)
      return invalid_argument(node.describe() + ": zero point " + std::to_string(zp));
    zero_point_ = static_cast<int32_t>(zp);
    batch_ = out.shape[0];
    pixels_ = out.shape[2] * out.shape[3];
    out_channels_ = out.shape[1];
    for (const auto* in : inputs) {
      // The plan gives int8 inputs the concat's scale.
      const bool int8 = in->dtype == DataType::kInt8;
      if (!int8 && in->dtype != DataType::kFloat32)
        return unsupported(node.describe() + ": int8 Concat: inputs must be int8 channels-last or float32");
      parts_.push_back({in->shape[1], int8, int8 ? 0 : quantized_bytes_});
      if (!int8) quantized_bytes_ += align64(static_cast<size_t>(batch_ * in->shape[1] * pixels_));
    }
    return Status::ok();
  }

  // Channels-last float plan (passes.h): every input is channels-last float too.
  Status prepare_channels_last_float(const Node& node, std::span<const ValueDesc* const> inputs,
                                     const ValueDesc& out, const ConcatAttrs& a) {
    if (a.axis != 1 || out.shape.size() != 4 || out.dtype != DataType::kFloat32)
      return internal_error(node.describe() +
                            ": a channels-last float Concat must join the channels of 4-D values");
    channels_last_ = float_ = true;
    batch_ = out.shape[0];
    pixels_ = out.shape[2] * out.shape[3];
    out_channels_ = out.shape[1];
    for (const auto* in : inputs) {
      if (in->dtype != DataType::kFloat32)
        return internal_error(node.describe() + ": a channels-last float Concat reads float inputs");
      parts_.push_back({in->shape[1], true, 0});
    }
    return Status::ok();
  }

 public:
  size_t workspace_bytes() const override {
    return quantized_bytes_;
  }
  void set_workspace(std::byte* workspace) override {
    workspace_ = workspace;
  }

 private:
  // Float inputs are first quantised as they are (NCHW, contiguous: the vector path) into the
  // workspace; then every output pixel gathers its channels.
  void run_channels_last(std::span<const Tensor* const> inputs, int8_t* y) const {
    const int64_t rows = batch_ * pixels_, c_out = out_channels_, hw = pixels_;
    for (size_t i = 0; i < parts_.size(); ++i) {
      if (parts_[i].int8) continue;
      const float* x = inputs[i]->data<float>();
      int8_t* q = reinterpret_cast<int8_t*>(workspace_ + parts_[i].workspace_offset);
      cpu::parallel_chunks(inputs[i]->numel(), [&](int64_t b, int64_t len) {
        epilogue_.quantize(x + b, scale_, zero_point_, q + b, len);
      });
    }
    parallel_row_blocks(rows, c_out, [&](int64_t r0, int64_t n) {
      int64_t col = 0;
      for (size_t i = 0; i < parts_.size(); ++i) {
        const int64_t c = parts_[i].channels;
        auto* yp = reinterpret_cast<std::byte*>(y + r0 * c_out + col);
        if (parts_[i].int8 || float_inputs_channels_last_) {  // (float ones quantised in their nhwc layout)
          const std::byte* src = parts_[i].int8 ? static_cast<const std::byte*>(inputs[i]->raw())
                                                : workspace_ + parts_[i].workspace_offset;
          copy_rows(yp, c_out, src + r0 * c, c, c, n);
        } else {
          for (int64_t row = r0; row < r0 + n; ++row) {
            const int64_t b = row / hw, p = row % hw;
            const int8_t* q =
                reinterpret_cast<const int8_t*>(workspace_ + parts_[i].workspace_offset) + b * c * hw + p;
            int8_t* o = y + row * c_out + col;
            for (int64_t ch = 0; ch < c; ++ch) o[ch] = q[ch * hw];
          }
        }
        col += c;
      }
    });
  }

  // Each output pixel's channels are its inputs' pixels, one after the other.
  void run_channels_last_float(std::span<const Tensor* const> inputs, float* y) const {
    const int64_t rows = batch_ * pixels_, c_out = out_channels_;
    constexpr int64_t f = sizeof(float);
    parallel_row_blocks(rows, c_out * f, [&](int64_t r0, int64_t n) {
      int64_t col = 0;
      for (size_t i = 0; i < parts_.size(); ++i) {
        const int64_t c = parts_[i].channels;
        copy_rows(reinterpret_cast<std::byte*>(y + r0 * c_out + col), c_out * f,
                  static_cast<const std::byte*>(inputs[i]->raw()) + r0 * c * f, c * f, c * f, n);
        col += c;
      }
    });
  }

  struct Part {
    int64_t channels;
    bool int8;                // int8 channels-last (else float NCHW)
    size_t workspace_offset;  // float parts: their int8 NCHW copy in the workspace
  };
  std::vector<CopyTask> tasks_;
  bool channels_last_ = false;
  bool float_ = false;                       // channels-last float (else the int8 plan's int8 output)
  bool float_inputs_channels_last_ = false;  // int8 output: its float inputs are nhwc (passes.h)
  float scale_ = 0.f;
  int32_t zero_point_ = 0;  // of the int8 output (float inputs quantised onto its grid)
  int64_t batch_ = 0, pixels_ = 0, out_channels_ = 0;
  std::vector<Part> parts_;
  size_t quantized_bytes_ = 0;
  std::byte* workspace_ = nullptr;
  cpu::Int8Epilogue epilogue_ = cpu::scalar_int8_epilogue();
};

}  // namespace

Result<std::unique_ptr<CpuKernel>> make_cpu_concat(const Node& node) {
  return std::unique_ptr<CpuKernel>(std::make_unique<CpuConcat>());
}

}  // namespace qyolo
