// The CPU nearest Resize on channels-last values (the int8 plan's int8 values, the channels-last
// float plan's floats): each output pixel's channels are its nearest input pixel's, here against
// the hand rule for a 2x upsampling (output (h, w) reads input (h / 2, w / 2)) and a 3x / 1.5x
// one (asymmetric, floor: input floor(o / scale)), whose channel dim is copied whole.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "backends/cpu/cpu_kernel.h"
#include "passes/passes.h"
#include "quant/int8_dataflow.h"

namespace qyolo {
namespace {

template <typename T>
void check_resize(DataType dt, int64_t c, int64_t h, int64_t w, float sh, float sw, bool asymmetric) {
  Node node;
  node.name = "up";
  node.op_type = "Resize";
  node.inputs = {"x", "roi", "scales"};
  node.outputs = {"y"};
  node.attrs["mode"] = std::string("nearest");
  if (asymmetric) {
    node.attrs["coordinate_transformation_mode"] = std::string("asymmetric");
    node.attrs["nearest_mode"] = std::string("floor");
  }
  if (dt == DataType::kInt8)
    node.attrs[kInt8OutputScaleAttr] = 0.1f;
  else
    node.attrs[kChannelsLastOutputAttr] = int64_t{1};
  Tensor roi(DataType::kFloat32, {0});
  Tensor scales = Tensor::from_vector<float>({4}, {1.f, 1.f, sh, sw});
  std::vector<ValueDesc> descs = {{dt, {1, c, h, w}, std::nullopt},
                                  {DataType::kFloat32, roi.shape(), roi},
                                  {DataType::kFloat32, scales.shape(), scales}};
  InferContext ctx{node, 13, {}, {}};
  for (auto& d : descs) ctx.inputs.push_back(&d);
  ASSERT_TRUE(infer_node(ctx).is_ok());
  const int64_t oh = ctx.outputs[0].shape[2], ow = ctx.outputs[0].shape[3];
  auto kernel = make_cpu_resize(node);
  ASSERT_TRUE(kernel.is_ok());
  const Status st = (*kernel)->prepare(node, ctx.inputs, ctx.outputs);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  Tensor x(dt, {1, c, h, w}), y(dt, ctx.outputs[0].shape);  // bytes NHWC
  for (int64_t i = 0; i < x.numel(); ++i) x.data<T>()[i] = static_cast<T>(i % 251 - 125);
  const Tensor* in[] = {&x, &roi, &scales};
  Tensor* out = &y;
  ASSERT_TRUE((*kernel)->run(in, std::span<Tensor* const>(&out, 1)).is_ok());
  size_t wrong = 0;
  for (int64_t oy = 0; oy < oh; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox) {
      const int64_t iy = asymmetric ? static_cast<int64_t>(std::floor(oy / sh)) : oy / 2;
      const int64_t ix = asymmetric ? static_cast<int64_t>(std::floor(ox / sw)) : ox / 2;
      for (int64_t ch = 0; ch < c; ++ch)
        wrong += y.data<T>()[(oy * ow + ox) * c + ch] != x.data<T>()[(iy * w + ix) * c + ch];
    }
  EXPECT_EQ(wrong, 0u) << "c " << c << " scales " << sh << " " << sw;
}

TEST(ResizeChannelsLast, NearestCopiesEachPixelsChannels) {
  check_resize<float>(DataType::kFloat32, 64, 5, 7, 2.f, 2.f, false);
  check_resize<float>(DataType::kFloat32, 3, 4, 6, 3.f, 1.5f, true);
  check_resize<int8_t>(DataType::kInt8, 32, 6, 5, 2.f, 2.f, false);
  check_resize<int8_t>(DataType::kInt8, 5, 4, 4, 3.f, 1.5f, true);
}

}  // namespace
}  // namespace qyolo
