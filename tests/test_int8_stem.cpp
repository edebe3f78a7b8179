// The CPU INT8 image stem (src/backends/cpu/int8_stem.h: a 6x6 stride-2 conv on 3 channels as a
// 3x3 conv on the 2x2 space-to-depth image, AVX512-VNNI): its float pre-activation against a
// scalar reference computed here, and the INT8 Conv kernel's int8 output with it against the
// same kernel on oneDNN (QYOLO_CPU_INT8_STEM=0), bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "backends/cpu/conv2d_int8.h"
#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/int8_epilogue.h"
#include "backends/cpu/int8_stem.h"
#include "quant/int8_dataflow.h"
#include "quant/quant_params.h"

namespace qyolo {
namespace {

bool have_stem() {
  const int64_t pads[4] = {2, 2, 2, 2};
  return cpu::Int8Stem::supported(3, 16, 6, 6, 2, 2, pads, 1, 1, 1, 8, 8);
}

// Images with negative values too (the kernel feeds VNNI unsigned bytes, q + 128) and values next
// to the quantisation's half-integers.
std::vector<float> stem_image(int64_t n, int64_t h, int64_t w, float s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-0.6f, 1.1f);
  std::uniform_int_distribution<int> k(-127, 127);
  std::vector<float> x(static_cast<size_t>(n * 3 * h * w));
  for (size_t i = 0; i < x.size(); ++i) x[i] = i % 5 == 0 ? (static_cast<float>(k(rng)) + 0.5f) * s : d(rng);
  return x;
}

TEST(Int8Stem, PreActivationIsTheAccumulatorsBiasAndScale) {
  if (!have_stem()) GTEST_SKIP() << "no AVX512-VNNI";
  for (int64_t cout : {16, 32}) {
    const int64_t h = 14, w = 38;  // w / 2 = 19: a block of 16 output pixels and 3 alone
    const float s_x = 1.f / 127;
    std::mt19937 rng(static_cast<uint32_t>(cout));
    std::uniform_int_distribution<int> wq(-127, 127);
    std::uniform_real_distribution<float> u(-3.f, 3.f);
    std::vector<int8_t> wts(static_cast<size_t>(cout * 3 * 36));
    for (auto& v : wts) v = static_cast<int8_t>(wq(rng));
    std::vector<float> bias(static_cast<size_t>(cout)), scale(static_cast<size_t>(cout));
    for (int64_t c = 0; c < cout; ++c) {
      bias[static_cast<size_t>(c)] = u(rng) * 1000.f;
      scale[static_cast<size_t>(c)] = std::fabs(u(rng)) * 1e-4f + 1e-6f;
    }
    cpu::Int8Stem stem;
    stem.prepare(wts.data(), cout, bias.data(), scale.data(), h, w);
    Tensor ws = Tensor::uninitialized(DataType::kUInt8, {static_cast<int64_t>(stem.workspace_bytes())});
    const std::vector<float> x = stem_image(1, h, w, s_x, 3);
    const int64_t oh = h / 2, ow = w / 2;
    std::vector<float> got(static_cast<size_t>(oh * ow * cout), std::nanf(""));
    stem.run(x.data(), s_x, cpu::best_int8_epilogue(), static_cast<std::byte*>(ws.raw()),
             [&](int64_t oy, const float* v) {
               std::memcpy(got.data() + oy * ow * cout, v, static_cast<size_t>(ow * cout) * sizeof(float));
             });
    size_t wrong = 0;
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t c = 0; c < cout; ++c) {
          int32_t acc = 0;
          for (int64_t ci = 0; ci < 3; ++ci)
            for (int64_t ky = 0; ky < 6; ++ky)
              for (int64_t kx = 0; kx < 6; ++kx) {
                const int64_t iy = 2 * oy - 2 + ky, ix = 2 * ox - 2 + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                acc += quantize_int8(x[static_cast<size_t>((ci * h + iy) * w + ix)], s_x) *
                       wts[static_cast<size_t>(((c * 3 + ci) * 6 + ky) * 6 + kx)];
              }
          const float want =
              (static_cast<float>(acc) + bias[static_cast<size_t>(c)]) * scale[static_cast<size_t>(c)];
          const float have = got[static_cast<size_t>((oy * ow + ox) * cout + c)];
          wrong += std::memcmp(&want, &have, sizeof(float)) != 0;
        }
    EXPECT_EQ(wrong, 0u) << "cout " << cout;
  }
}

// The INT8 Conv kernel on a stem-shaped conv (float NCHW image in, int8 channels-last out,
// SiLU or sigmoid through our epilogue, with and without the equalisation multiplier, batch 1
// and 2) writes the same int8 with the stem kernel as with oneDNN's.
TEST(Int8Stem, ConvKernelMatchesOneDnnBitForBit) {
  if (!have_stem()) GTEST_SKIP() << "no AVX512-VNNI";
  struct Case {
    int64_t n, h, w, cout;
    const char* act;
    bool multiplier;
  };
  for (const Case& k : {Case{1, 64, 96, 16, "silu", true}, Case{2, 34, 70, 32, "silu", false},
                        Case{1, 20, 36, 48, "sigmoid", true}, Case{1, 40, 40, 16, "sigmoid", false}}) {
    Node node;
    node.name = "stem";
    node.op_type = "Conv";
    node.inputs = {"x", "w", "b"};
    node.outputs = {"y"};
    node.attrs["kernel_shape"] = std::vector<int64_t>{6, 6};
    node.attrs["strides"] = std::vector<int64_t>{2, 2};
    node.attrs["pads"] = std::vector<int64_t>{2, 2, 2, 2};
    node.attrs["qyolo_activation"] = std::string(k.act);
    node.attrs["qyolo_input_scale"] = 1.f / 127;
    node.attrs[kInt8OutputScaleAttr] = std::string(k.act) == "silu" ? 0.047f : 0.0041f;
    std::mt19937 rng(static_cast<uint32_t>(k.cout + k.h));
    std::uniform_real_distribution<float> u(-0.4f, 0.4f), mul(0.5f, 2.f);
    if (k.multiplier) {
      std::vector<float> m(static_cast<size_t>(k.cout));
      for (auto& v : m) v = mul(rng);
      node.attrs["qyolo_output_multiplier"] = m;
    }
    Tensor x(DataType::kFloat32, {k.n, 3, k.h, k.w}), wt(DataType::kFloat32, {k.cout, 3, 6, 6}),
        b(DataType::kFloat32, {k.cout});
    const std::vector<float> img = stem_image(k.n, k.h, k.w, 1.f / 127, 9);
    std::memcpy(x.data<float>(), img.data(), img.size() * sizeof(float));
    for (int64_t i = 0; i < wt.numel(); ++i) wt.data<float>()[i] = u(rng);
    for (int64_t i = 0; i < b.numel(); ++i) b.data<float>()[i] = 4.f * u(rng);
    std::vector<ValueDesc> descs = {{DataType::kFloat32, x.shape(), std::nullopt},
                                    {DataType::kFloat32, wt.shape(), wt},
                                    {DataType::kFloat32, b.shape(), b}};
    InferContext ctx{node, 13, {}, {}};
    for (auto& d : descs) ctx.inputs.push_back(&d);
    ASSERT_TRUE(infer_node(ctx).is_ok());
    ctx.outputs[0].dtype = DataType::kInt8;
    Tensor y[2];
    for (int stem : {0, 1}) {
      setenv("QYOLO_CPU_INT8_STEM", stem ? "1" : "0", 1);
      auto kernel = make_cpu_conv2d_int8(node);
      ASSERT_TRUE(kernel.is_ok());
      const Status st = (*kernel)->prepare(node, ctx.inputs, ctx.outputs);
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      Tensor ws = give_own_workspace(**kernel);
      if (stem) {  // the stem kernel was chosen: the workspace is its own
        cpu::Int8Stem probe;
        const std::vector<int8_t> w0(static_cast<size_t>(k.cout * 108));
        const std::vector<float> f0(static_cast<size_t>(k.cout));
        probe.prepare(w0.data(), k.cout, f0.data(), f0.data(), k.h, k.w);
        EXPECT_EQ((*kernel)->workspace_bytes(), probe.workspace_bytes());
      }
      y[stem] = Tensor(DataType::kInt8, ctx.outputs[0].shape);
      const Tensor* in[] = {&x, &wt, &b};
      Tensor* out = &y[stem];
      ASSERT_TRUE((*kernel)->run(in, std::span<Tensor* const>(&out, 1)).is_ok());
    }
    unsetenv("QYOLO_CPU_INT8_STEM");
    size_t differ = 0, nonzero = 0;
    for (int64_t i = 0; i < y[0].numel(); ++i) {
      differ += y[0].data<int8_t>()[i] != y[1].data<int8_t>()[i];
      nonzero += y[0].data<int8_t>()[i] != 0;
    }
    EXPECT_EQ(differ, 0u) << k.act << " cout " << k.cout << " batch " << k.n;
    EXPECT_GT(nonzero, static_cast<size_t>(y[0].numel() / 4));  // the outputs say something
  }
}

}  // namespace
}  // namespace qyolo
