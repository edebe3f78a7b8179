// Times the CPU INT8 epilogues (src/backends/cpu/int8_epilogue.h) on one thread, the CPU's widest
// (AVX-512 or AVX2) against the scalar reference, on a yolov5n-sized layer (160 x 160 pixels x 32
// channels) of SiLU pre-activations drawn like a conv's (normal, sd 3, a tail to +-40), and checks
// that both give the same integers (exit status 1 where not). Prints ns per value (best of `runs`).
// PIXELS=2048 makes the layer small enough for the L2: the same ns per value there says the
// epilogue is bound by its arithmetic, not by reading the float pre-activation (docs/cpu-int8.md,
// session 16).
//   [PIXELS=N] bench_int8_epilogue [runs]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "backends/cpu/int8_epilogue.h"

using namespace qyolo;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename F>
double best_ns_per_value(F&& f, int64_t n, int runs) {
  double best = 1e30;
  for (int r = 0; r <= runs; ++r) {
    const double t0 = now();
    f();
    if (r > 0) best = std::min(best, now() - t0);
  }
  return best * 1e9 / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::atoi(argv[1]) : 20;
  constexpr int64_t kChannels = 32;
  const int64_t kPixels = std::getenv("PIXELS") ? std::atoll(std::getenv("PIXELS")) : 160 * 160,
                n = kChannels * kPixels;
  std::mt19937 rng(7);
  std::normal_distribution<float> pre(0.f, 3.f);
  std::vector<float> v(n), m_ext(kChannels + 16), residual(n);
  for (auto& x : v) x = std::clamp(pre(rng), -40.f, 40.f);
  for (auto& x : residual) x = pre(rng);
  std::uniform_real_distribution<float> mult(0.5f, 2.f);
  for (int64_t c = 0; c < kChannels; ++c) m_ext[c] = mult(rng);
  for (int64_t k = kChannels; k < kChannels + 16; ++k) m_ext[k] = m_ext[k % kChannels];
  std::vector<int8_t> r8(n);
  for (auto& x : r8) x = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  const float s_y = 0.09f;
  const int32_t zp = -125;
  const cpu::Int8Epilogue fast = cpu::best_int8_epilogue(), ref = cpu::scalar_int8_epilogue();
  std::printf("epilogue %s vs %s, %lld values, one thread, best of %d\n", fast.isa, ref.isa,
              static_cast<long long>(n), runs);
  std::vector<int8_t> q_fast(n), q_ref(n);
  struct Case {
    const char* what;
    bool silu, multiply, float_residual, int8_residual, quantize = false, planes = false;
  };
  const Case cases[] = {{"requantize silu", true, false, false, false},
                        {"requantize silu + int8 residual", true, false, false, true},
                        {"activation_quantize silu x m", true, true, false, false},
                        {"activation_quantize silu + float residual", true, false, true, false},
                        {"requantize sigmoid", false, false, false, false},
                        {"quantize (a conv's input)", false, false, false, false, true},
                        {"quantize_3planes (the image, per value)", false, false, false, false, true, true}};
  int mismatched = 0;
  for (const Case& c : cases) {
    auto run = [&](const cpu::Int8Epilogue& e, std::vector<int8_t>& q) {
      if (c.planes)
        e.quantize_3planes(v.data(), n / 3, 0.3f, q.data(), n / 3);
      else if (c.quantize)
        e.quantize(v.data(), 0.3f, zp, q.data(), n);
      else if (c.multiply || c.float_residual)
        e.activation_quantize(v.data(), c.float_residual ? residual.data() : nullptr,
                              c.multiply ? m_ext.data() : nullptr, kChannels, 0, s_y, zp, c.silu, q.data(),
                              n);
      else
        e.requantize_activation(v.data(), c.int8_residual ? r8.data() : nullptr, 0.05f, s_y, zp, c.silu,
                                q.data(), n);
    };
    const double t_fast = best_ns_per_value([&] { run(fast, q_fast); }, n, runs);
    const double t_ref = best_ns_per_value([&] { run(ref, q_ref); }, n, std::max(1, runs / 10));
    const int64_t diff = std::inner_product(q_fast.begin(), q_fast.end(), q_ref.begin(), int64_t{0},
                                            std::plus<>(), [](int8_t a, int8_t b) { return a != b; });
    mismatched += diff != 0;
    std::printf("%-45s %s %.3f ns/value   %s %.3f ns/value   %lld codes differ\n", c.what, fast.isa, t_fast,
                ref.isa, t_ref, static_cast<long long>(diff));
  }
  return mismatched ? 1 : 0;
}
