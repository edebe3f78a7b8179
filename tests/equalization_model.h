// The small model of the activation-equalisation tests (CPU: test_activation_equalization.cpp,
// GPU: gpu/test_cuda_equalization.cpp).
#pragma once

#include <string>
#include <vector>

#include "onnx_builder.h"

namespace qyolo::testing {

// x [1,4,8,8] -> conv0 1x1 (+ SiLU) -> t -> { convA 3x3 (4 -> 2), convB 1x1 group 2 (4 -> 2) } -> y = a + b.
// conv0's output channel c has gain gains[c] (a diagonal 1x1 conv), so t's channel ranges differ
// by those factors.
inline std::string two_reader_model(const std::vector<float>& gains, const std::vector<float>& wa,
                                    const std::vector<float>& wb, const std::string& act = "silu") {
  OnnxBuilder b;
  b.input("x", {1, 4, 8, 8});
  b.output("y", {1, 2, 8, 8});
  std::vector<float> w0(16, 0.f);
  for (int c = 0; c < 4; ++c) w0[static_cast<size_t>(c * 4 + c)] = gains[static_cast<size_t>(c)];
  b.initializer("w0", {4, 4, 1, 1}, w0);
  b.initializer("b0", {4}, {0.1f, -0.2f, 0.05f, 0.3f});
  if (act == "silu") {
    b.node("Conv", {"x", "w0", "b0"}, {"c0"}, "conv0");
    b.node("Sigmoid", {"c0"}, {"s0"});
    b.node("Mul", {"c0", "s0"}, {"t"});
  } else if (act == "relu") {
    b.node("Conv", {"x", "w0", "b0"}, {"c0"}, "conv0");
    b.node("Relu", {"c0"}, {"t"});
  } else {
    b.node("Conv", {"x", "w0", "b0"}, {"t"}, "conv0");
  }
  b.initializer("wa", {2, 4, 3, 3}, wa);
  auto* ca = b.node("Conv", {"t", "wa"}, {"a"}, "convA");
  OnnxBuilder::attr_ints(ca, "pads", {1, 1, 1, 1});
  b.initializer("wb", {2, 2, 1, 1}, wb);
  auto* cb = b.node("Conv", {"t", "wb"}, {"bb"}, "convB");
  auto* g = cb->add_attribute();
  g->set_name("group");
  g->set_type(onnx::AttributeProto::INT);
  g->set_i(2);
  b.node("Add", {"a", "bb"}, {"y"});
  return b.bytes();
}

}  // namespace qyolo::testing
