// The CPU channels-last Concat (the int8 plan's int8 concat, the channels-last float plan's):
// each output pixel holds its inputs' channels in order, here against the hand rule for channel
// counts the kernel copies with a fixed size (16, 32, 64, 128 bytes) and others, 1 and 2 images.
#include <gtest/gtest.h>

#include <vector>

#include "backends/cpu/cpu_kernel.h"
#include "passes/passes.h"
#include "quant/int8_dataflow.h"

namespace qyolo {
namespace {

template <typename T>
void check_concat(DataType dt, int64_t n, int64_t h, int64_t w, const std::vector<int64_t>& channels) {
  Node node;
  node.name = "cat";
  node.op_type = "Concat";
  node.outputs = {"y"};
  node.attrs["axis"] = int64_t{1};
  if (dt == DataType::kInt8)
    node.attrs[kInt8OutputScaleAttr] = 0.1f;
  else
    node.attrs[kChannelsLastOutputAttr] = int64_t{1};
  std::vector<ValueDesc> descs;
  std::vector<Tensor> xs;
  int64_t c_out = 0;
  for (size_t i = 0; i < channels.size(); ++i) {
    node.inputs.push_back("x" + std::to_string(i));
    descs.push_back({dt, {n, channels[i], h, w}, std::nullopt});
    xs.emplace_back(dt, Shape{n, channels[i], h, w});  // bytes NHWC
    for (int64_t j = 0; j < xs.back().numel(); ++j)
      xs.back().data<T>()[j] = static_cast<T>((j * 7 + static_cast<int64_t>(i) * 31) % 251 - 125);
    c_out += channels[i];
  }
  InferContext ctx{node, 13, {}, {}};
  for (auto& d : descs) ctx.inputs.push_back(&d);
  ASSERT_TRUE(infer_node(ctx).is_ok());
  auto kernel = make_cpu_concat(node);
  ASSERT_TRUE(kernel.is_ok());
  const Status st = (*kernel)->prepare(node, ctx.inputs, ctx.outputs);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  Tensor ws = give_own_workspace(**kernel);
  Tensor y(dt, ctx.outputs[0].shape);
  std::vector<const Tensor*> in;
  for (auto& x : xs) in.push_back(&x);
  Tensor* out = &y;
  ASSERT_TRUE((*kernel)->run(in, std::span<Tensor* const>(&out, 1)).is_ok());
  size_t wrong = 0;
  for (int64_t px = 0; px < n * h * w; ++px) {
    int64_t col = 0;
    for (size_t i = 0; i < channels.size(); ++i)
      for (int64_t c = 0; c < channels[i]; ++c, ++col)
        wrong += y.data<T>()[px * c_out + col] != xs[i].data<T>()[px * channels[i] + c];
  }
  EXPECT_EQ(wrong, 0u) << "parts " << channels.size() << ", batch " << n;
}

TEST(ConcatChannelsLast, EachPixelTakesItsInputsChannelsInOrder) {
  check_concat<int8_t>(DataType::kInt8, 1, 40, 41, {32, 32});  // big enough for both threads
  check_concat<int8_t>(DataType::kInt8, 2, 5, 7, {16, 64, 128, 5});
  check_concat<float>(DataType::kFloat32, 1, 40, 41, {16, 16});
  check_concat<float>(DataType::kFloat32, 2, 5, 7, {4, 8, 32, 3});
}

}  // namespace
}  // namespace qyolo
