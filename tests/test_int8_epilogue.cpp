// The CPU INT8 epilogues (src/backends/cpu/int8_epilogue.h) against the float path's formula:
// every implementation must give exactly clamp(nearbyint(act(v) / s_y)) with act computed by
// expf, including on values placed next to rounding boundaries, and ONNX QuantizeLinear's
// round-half-to-even on exact ties.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/int8_epilogue.h"

namespace qyolo {
namespace {

// clamp(nearbyint(y / s) + zp) to [-127, 127] (zp 0, symmetric) or [-128, 127] (asymmetric).
int8_t reference_quantize(float y, float s, int32_t zp) {
  const float t = std::nearbyint(y / s);
  if (zp == 0) return static_cast<int8_t>(std::min(127.f, std::max(-127.f, t)));
  return static_cast<int8_t>(std::min(127.f, std::max(-128.f, t + static_cast<float>(zp))));
}

int8_t reference_requantize(float v, const int8_t* r, size_t j, float s_r, float s_y, int32_t zp, bool silu) {
  float y = silu ? v / (1.0f + std::exp(-v)) : 1.0f / (1.0f + std::exp(-v));
  if (r) y += s_r * static_cast<float>(r[j]);
  return reference_quantize(y, s_y, zp);
}

// Pre-activations whose SiLU (plus `offset`, a residual's s_r * r) lands within a few ulps of
// (k + 0.5) * s_y: found by bisection on v for each k, then the float neighbours of the crossing.
// (k_max: the largest k for SiLU, 120 by default; 260 reaches the top of an asymmetric grid.)
std::vector<float> boundary_inputs(float s_y, bool silu, float offset = 0.f, int silu_k_max = 120) {
  std::vector<float> out;
  auto act = [&](float v) { return silu ? v / (1.0f + std::exp(-v)) : 1.0f / (1.0f + std::exp(-v)); };
  const int k_max = silu ? silu_k_max : static_cast<int>(1.f / s_y) - 1;
  for (int k = 0; k < k_max; k += 3) {
    const float target = (static_cast<float>(k) + 0.5f) * s_y;
    float lo = silu ? 0.f : -30.f, hi = silu ? 200.f : 30.f;  // act is increasing on these ranges
    if (act(hi) + offset < target || act(lo) + offset >= target) continue;
    for (int it = 0; it < 60; ++it) {
      const float mid = 0.5f * (lo + hi);
      (act(mid) + offset < target ? lo : hi) = mid;
    }
    float v = lo;
    for (int d = 0; d < 4; ++d) v = std::nextafter(v, -1e9f);
    for (int d = 0; d < 9; ++d, v = std::nextafter(v, 1e9f)) out.push_back(v);
  }
  return out;
}

void expect_requantize_exact(const cpu::Int8Epilogue& e, const std::vector<float>& v,
                             const std::vector<int8_t>* r, float s_r, float s_y, bool silu, int32_t zp = 0) {
  std::vector<int8_t> q(v.size(), 99);
  e.requantize_activation(v.data(), r ? r->data() : nullptr, s_r, s_y, zp, silu, q.data(),
                          static_cast<int64_t>(v.size()));
  size_t wrong = 0, first = v.size();
  for (size_t j = 0; j < v.size(); ++j)
    if (q[j] != reference_requantize(v[j], r ? r->data() : nullptr, j, s_r, s_y, zp, silu) && wrong++ == 0)
      first = j;
  EXPECT_EQ(wrong, 0u) << e.isa << (silu ? " silu" : " sigmoid") << (r ? " +residual" : "") << " zp " << zp
                       << ": first at v = " << (first < v.size() ? v[first] : 0.f) << " of " << v.size();
}

TEST(Int8Epilogue, RequantizeGivesTheFloatPathsIntegers) {
  std::mt19937 rng(7);
  for (const cpu::Int8Epilogue& e : cpu::int8_epilogues()) {
    for (bool silu : {true, false}) {
      const float s_y = silu ? 0.0731f : 0.00391f;
      std::vector<float> v = boundary_inputs(s_y, silu);
      ASSERT_GT(v.size(), 200u);
      // Far beyond any conv's range (where a range reduction without a clamp loses the exp), in
      // the vector loops, not their tails.
      for (float x : {1e15f, 1e20f, 1e30f, 3e38f, -1e15f, -1e30f}) v.push_back(x);
      std::uniform_real_distribution<float> wide(-120.f, 120.f), narrow(-6.f, 6.f);
      for (int i = 0; i < 5000; ++i) v.push_back(i % 2 ? wide(rng) : narrow(rng));
      v.push_back(-200.f);  // exp overflows in the float path: 0
      v.push_back(200.f);   // saturates at 127
      expect_requantize_exact(e, v, nullptr, 0.f, s_y, silu);
      std::vector<int8_t> r(v.size());
      std::uniform_int_distribution<int> q(-127, 127);
      for (auto& x : r) x = static_cast<int8_t>(q(rng));
      expect_requantize_exact(e, v, &r, 0.0213f, s_y, silu);
      // An asymmetric grid (the SiLU output's, lo at -128): the boundaries up to its top code.
      for (int32_t zp : {-127, -128, 5}) {
        std::vector<float> va = boundary_inputs(s_y, silu, 0.f, 260);
        va.insert(va.end(), v.begin(), v.end());
        expect_requantize_exact(e, va, nullptr, 0.f, s_y, silu, zp);
      }
      // With a residual, on its boundaries: y = act(v) + s_r * r must be rounded as the float
      // path adds it (no multiply-add contracted into one FMA).
      std::vector<float> vb;
      std::vector<int8_t> rb;
      for (int8_t rq : {-105, -40, -7, 9, 63}) {
        const float s_r = 0.0213f;
        for (float x : boundary_inputs(s_y, silu, s_r * static_cast<float>(rq))) {
          vb.push_back(x);
          rb.push_back(rq);
        }
      }
      ASSERT_GT(vb.size(), 200u);
      expect_requantize_exact(e, vb, &rb, 0.0213f, s_y, silu);
    }
  }
}

// A NaN pre-activation gives the zero point (the float path's NaN, quantised), with or without a
// residual: the vector loops must not clamp it into a number (a sigmoid's t would then be finite).
TEST(Int8Epilogue, RequantizeNanGivesTheZeroPoint) {
  std::vector<float> v(67, 1.5f);
  for (size_t i = 0; i < v.size(); i += 3) v[i] = std::nanf("");
  const std::vector<int8_t> r(v.size(), 37);
  for (const cpu::Int8Epilogue& e : cpu::int8_epilogues()) {
    for (bool silu : {true, false}) {
      for (const int8_t* rp : {static_cast<const int8_t*>(nullptr), r.data()}) {
        for (int32_t zp : {0, -128, 9}) {
          std::vector<int8_t> q(v.size());
          e.requantize_activation(v.data(), rp, 0.0213f, 0.0731f, zp, silu, q.data(),
                                  static_cast<int64_t>(v.size()));
          size_t wrong = 0;
          for (size_t i = 0; i < v.size(); i += 3) wrong += q[i] != zp;
          EXPECT_EQ(wrong, 0u) << e.isa << (silu ? " silu" : " sigmoid") << (rp ? " +residual" : "") << " zp "
                               << zp;
        }
      }
    }
  }
}

TEST(Int8Epilogue, QuantizeRoundsHalfToEvenAndSaturates) {
  const float s = 0.25f;  // (k + 0.5) * s is exact in float: true ties
  std::vector<float> x;
  for (int k = -140; k <= 140; ++k) {
    x.push_back((static_cast<float>(k) + 0.5f) * s);
    x.push_back(static_cast<float>(k) * s);
  }
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-40.f, 40.f);
  for (int i = 0; i < 3000; ++i) x.push_back(d(rng));
  // NaN -> 0, like quantize_int8 (quant_params.h); these in the vector loops (first) and the tails.
  const float special[] = {std::nanf(""), std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::infinity()};
  x.insert(x.begin(), std::begin(special), std::end(special));
  x.insert(x.end(), std::begin(special), std::end(special));
  for (const cpu::Int8Epilogue& e : cpu::int8_epilogues()) {
    for (int32_t zp : {0, -100, -128, 60}) {
      std::vector<int8_t> q(x.size());
      e.quantize(x.data(), s, zp, q.data(), static_cast<int64_t>(x.size()));
      for (size_t i = 0; i < x.size(); ++i) {
        if (std::isnan(x[i])) {
          ASSERT_EQ(q[i], zp) << e.isa << ": NaN (real 0 is the zero point)";
          continue;
        }
        // Hand rule: half to even, + zp, then [-127, 127] (symmetric) or [-128, 127].
        const double t = static_cast<double>(x[i]) / s;
        double want = std::floor(t);
        const double frac = t - want;
        if (frac > 0.5 || (frac == 0.5 && std::fmod(want, 2.0) != 0.0)) want += 1.0;
        want = std::min(127.0, std::max(zp == 0 ? -127.0 : -128.0, want + zp));
        ASSERT_EQ(q[i], static_cast<int8_t>(want)) << e.isa << ": x = " << x[i] << " zp " << zp;
      }
    }
  }
  // The widest vector path the CPU has must be the one chosen.
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  EXPECT_STREQ(cpu::best_int8_epilogue().isa,
               __builtin_cpu_supports("avx512f") ? "avx512" : (avx2 ? "avx2" : "scalar"));
  EXPECT_STREQ(cpu::int8_epilogues().front().isa, "scalar");
}

// Next to the half-integers of x / s for a scale that is no power of two, x / s and x * (1 / s)
// can round apart: every path must round x / s (ONNX QuantizeLinear).
TEST(Int8Epilogue, QuantizeDividesNextToHalfIntegers) {
  for (float s : {0.0731f, 0.0039215689f, 1.7f}) {
    std::vector<float> x;
    for (int k = -130; k <= 130; ++k) {
      float v = (static_cast<float>(k) + 0.5f) * s;
      for (int d = 0; d < 4; ++d) v = std::nextafter(v, -1e9f);
      for (int d = 0; d < 9; ++d, v = std::nextafter(v, 1e9f)) x.push_back(v);
    }
    for (const cpu::Int8Epilogue& e : cpu::int8_epilogues()) {
      std::vector<int8_t> q(x.size());
      e.quantize(x.data(), s, 0, q.data(), static_cast<int64_t>(x.size()));
      size_t wrong = 0;
      for (size_t i = 0; i < x.size(); ++i)
        wrong += q[i] != static_cast<int8_t>(std::min(127.f, std::max(-127.f, std::nearbyint(x[i] / s))));
      EXPECT_EQ(wrong, 0u) << e.isa << ": scale " << s << ", " << x.size() << " values";
    }
  }
}

// Three NCHW planes into nhwc (the image for the stem): q[3 i + c] = quantize(plane c, pixel i),
// on values next to half-integers and a pixel count that is no multiple of 16.
TEST(Int8Epilogue, QuantizeThreePlanesInterleavesChannels) {
  const float s = 0.0078740157f;  // 1 / 127
  const int64_t n = 16 * 40 + 7;
  std::vector<float> x(static_cast<size_t>(3 * n));
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> k(-130, 130);
  for (size_t i = 0; i < x.size(); ++i) {
    float v = (static_cast<float>(k(rng)) + 0.5f) * s;
    for (int d = static_cast<int>(i % 7); d > 3; --d) v = std::nextafter(v, 1e9f);
    for (int d = static_cast<int>(i % 7); d < 3; ++d) v = std::nextafter(v, -1e9f);
    x[i] = v;
  }
  for (const cpu::Int8Epilogue& e : cpu::int8_epilogues()) {
    std::vector<int8_t> q(x.size(), 99);
    e.quantize_3planes(x.data(), n, s, q.data(), n);
    size_t wrong = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < 3; ++c) {
        const float want =
            std::min(127.f, std::max(-127.f, std::nearbyint(x[static_cast<size_t>(c * n + i)] / s)));
        wrong += q[static_cast<size_t>(3 * i + c)] != static_cast<int8_t>(want);
      }
    EXPECT_EQ(wrong, 0u) << e.isa;
  }
}

TEST(Int8Epilogue, FloatActivationIsWithinTwoUlpsOfExpfFormula) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> d(-90.f, 90.f), near(-4.f, 4.f);
  std::vector<float> v, r;
  for (int i = 0; i < 4099; ++i) {  // not a multiple of 16: the tail path too
    v.push_back(i % 3 ? near(rng) : d(rng));
    r.push_back(near(rng));
  }
  for (const cpu::Int8Epilogue& e : cpu::int8_epilogues()) {
    for (bool silu : {true, false}) {
      const std::vector<float>* with_residual = &r;
      for (const std::vector<float>* res : {static_cast<const std::vector<float>*>(nullptr), with_residual}) {
        std::vector<float> y(v.size());
        e.activation_float(v.data(), res ? res->data() : nullptr, silu, y.data(),
                           static_cast<int64_t>(v.size()));
        for (size_t i = 0; i < v.size(); ++i) {
          const float act = silu ? v[i] / (1.0f + std::exp(-v[i])) : 1.0f / (1.0f + std::exp(-v[i]));
          const float want = res ? act + (*res)[i] : act;
          // Two ulps of the activation, carried through the residual's addition; below v = -88
          // (exp clamped) SiLU's value, under 1e-36, may be off by its own size.
          const float tol = 1e-36f + 2.f * (std::nextafter(std::fabs(act), 1e30f) - std::fabs(act)) +
                            (res ? std::nextafter(std::fabs(want), 1e30f) - std::fabs(want) : 0.f);
          ASSERT_NEAR(y[i], want, tol) << e.isa << (silu ? " silu" : " sigmoid") << " v = " << v[i];
        }
      }
    }
  }
}

// The fused pass of an equalised (or float-residual) SiLU/sigmoid conv with an int8 output must
// give, bit for bit, what the passes it replaces give in turn on the same ISA: activation_float
// (+ residual), the per-channel multiplier (channels-last), quantize. On random values, on values
// placed next to the quantisation's half-integers, for channel counts below, at and above one
// vector, chunks starting mid-pixel and a length that is no multiple of 16.
TEST(Int8Epilogue, ActivationQuantizeEqualsThePassesInTurn) {
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> wide(-90.f, 90.f), narrow(-6.f, 6.f), mul(0.3f, 3.f);
  for (const cpu::Int8Epilogue& e : cpu::int8_epilogues()) {
    for (bool silu : {true, false}) {
      const float s_y = silu ? 0.0731f : 0.00391f;
      for (int64_t channels : {3, 16, 24, 64}) {
        for (bool equal_m : {true, false}) {
          std::vector<float> m(static_cast<size_t>(channels), 1.37f);
          if (!equal_m)
            for (auto& x : m) x = mul(rng);
          std::vector<float> m_ext(static_cast<size_t>(channels + 16));
          for (size_t k = 0; k < m_ext.size(); ++k) m_ext[k] = m[k % static_cast<size_t>(channels)];
          // With one multiplier, act(v) * m on the half-integers of s_y.
          std::vector<float> v = boundary_inputs(s_y / 1.37f, silu, 0.f, 260);
          ASSERT_GT(v.size(), 200u);
          // Where the vector path's first decision does not hold (exp clamped below -88 on the
          // exact path, saturation, NaN, infinities), one value per vector of 16.
          for (float x :
               {-87.f, -87.5f, -88.5f, -100.f, -1e30f, -3e38f, 3e38f, 1e5f, 150.f, 88.5f, std::nanf(""),
                std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
            v.push_back(x);
            for (int i = 0; i < 15; ++i) v.push_back(narrow(rng));
          }
          while (v.size() % 16 != 9) v.push_back(narrow(rng));
          for (int i = 0; i < 4000; ++i) v.push_back(i % 2 ? wide(rng) : narrow(rng));
          std::vector<float> r(v.size());
          for (auto& x : r) x = narrow(rng);
          const int64_t n = static_cast<int64_t>(v.size());
          for (int64_t first : {int64_t{0}, int64_t{5}, channels + 1}) {
            for (bool residual : {false, true}) {
              const float* rp = residual ? r.data() : nullptr;
              const float* mp = residual ? nullptr : m_ext.data();
              std::vector<float> y(v.size());
              e.activation_float(v.data(), rp, silu, y.data(), n);
              if (mp)
                for (int64_t i = 0; i < n; ++i)
                  y[static_cast<size_t>(i)] *= m[static_cast<size_t>((first + i) % channels)];
              for (int32_t zp : {0, -127}) {
                std::vector<int8_t> want(v.size()), got(v.size(), 99);
                e.quantize(y.data(), s_y, zp, want.data(), n);
                e.activation_quantize(v.data(), rp, mp, channels, first, s_y, zp, silu, got.data(), n);
                size_t wrong = 0;
                for (size_t i = 0; i < v.size(); ++i) wrong += got[i] != want[i];
                EXPECT_EQ(wrong, 0u) << e.isa << (silu ? " silu" : " sigmoid") << " channels " << channels
                                     << " first " << first << (residual ? " +residual" : " *m") << " zp "
                                     << zp;
              }
            }
          }
        }
      }
    }
  }
}

// A float residual (a SiLU conv writing int8 with a fused float residual): act(v) + r on the
// half-integers of s_y, for residuals that leave the sum small while the activation is large (the
// fast decision's error is relative to the activation, not to the sum).
TEST(Int8Epilogue, ActivationQuantizeWithAResidualOnItsBoundaries) {
  for (const cpu::Int8Epilogue& e : cpu::int8_epilogues()) {
    for (bool silu : {true, false}) {
      const float s_y = silu ? 0.0731f : 0.00391f;
      std::vector<float> v, r;
      for (float offset : {-9.5f, -3.1f, -0.6f, 0.2f, 1.7f, 6.3f}) {
        for (float x : boundary_inputs(s_y, silu, offset, 260)) {
          v.push_back(x);
          r.push_back(offset);
        }
      }
      ASSERT_GT(v.size(), 400u);
      const int64_t n = static_cast<int64_t>(v.size());
      std::vector<float> y(v.size());
      e.activation_float(v.data(), r.data(), silu, y.data(), n);
      for (int32_t zp : {0, -127, 40}) {
        std::vector<int8_t> want(v.size()), got(v.size(), 99);
        e.quantize(y.data(), s_y, zp, want.data(), n);
        e.activation_quantize(v.data(), r.data(), nullptr, 16, 0, s_y, zp, silu, got.data(), n);
        size_t wrong = 0;
        for (size_t i = 0; i < v.size(); ++i) wrong += got[i] != want[i];
        EXPECT_EQ(wrong, 0u) << e.isa << (silu ? " silu" : " sigmoid") << " zp " << zp;
      }
    }
  }
}

// Off AVX-512 (scalar, AVX2) activation_float is the expf formula, bit for bit, so that every
// function gives the scalar path's results (activation_quantize the integers of activation_float
// and quantize, the test above) and a network the scalar build's detections.
TEST(Int8Epilogue, ActivationFloatOffAvx512IsTheScalarFormulaBitForBit) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> d(-100.f, 100.f), near(-8.f, 8.f);
  std::vector<float> v, r;
  for (int i = 0; i < 20011; ++i) {
    v.push_back(i % 3 ? near(rng) : d(rng));
    r.push_back(near(rng));
  }
  const int64_t n = static_cast<int64_t>(v.size());
  for (const cpu::Int8Epilogue& e : cpu::int8_epilogues()) {
    if (std::string(e.isa) == "avx512") continue;
    for (bool silu : {true, false}) {
      for (const float* res : {static_cast<const float*>(nullptr), static_cast<const float*>(r.data())}) {
        std::vector<float> want(v.size()), got(v.size());
        cpu::scalar_int8_epilogue().activation_float(v.data(), res, silu, want.data(), n);
        e.activation_float(v.data(), res, silu, got.data(), n);
        EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
            << e.isa << (silu ? " silu" : " sigmoid") << (res ? " +residual" : "");
      }
    }
  }
}

// The AVX-512 activation_float is Cephes' polynomial with FMAs (int8_epilogue.cpp's poly_exp16),
// whose 2^n it takes from scalef: its floats must be the polynomial's with 2^n built in the
// exponent bits (as it was first written, and as the integers of the equalised convs were
// measured), bit for bit, here on a sweep over all float bit patterns. (The only vector
// activation_float: AVX2's is the scalar formula, the test above.)
TEST(Int8Epilogue, VectorActivationIsTheFmaPolynomialBitForBit) {
  const cpu::Int8Epilogue e = cpu::best_int8_epilogue();
  if (std::string(e.isa) != "avx512") GTEST_SKIP() << "no AVX-512 (the only polynomial activation_float)";
  auto exp_bits = [](float x) {  // poly_exp16 lane by lane, std::fma for each fused multiply-add
    x = std::min(88.f, std::max(-88.f, x));
    const float n = std::floor(std::fma(x, 1.44269504f, 0.5f));
    float r = std::fma(-n, 0.693359375f, x);
    r = std::fma(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    for (float k : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f})
      p = std::fma(p, r, k);
    p = std::fma(p * r, r, r + 1.f);
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float two_n;
    std::memcpy(&two_n, &bits, sizeof(two_n));
    return p * two_n;
  };
  std::vector<float> v;
  for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 4093) {
    float x;
    const uint32_t u = static_cast<uint32_t>(b);
    std::memcpy(&x, &u, sizeof(x));
    if (!std::isnan(x)) v.push_back(x);
  }
  for (float edge : {88.f, -88.f, 87.3f, -87.3f, 0.f}) {  // around the clamps (n = +-127)
    float x = edge;
    for (int d = 0; d < 64; ++d) x = std::nextafter(x, -1e9f);
    for (int d = 0; d < 129; ++d, x = std::nextafter(x, 1e9f)) v.push_back(x);
  }
  std::vector<float> y(v.size());
  for (bool silu : {true, false}) {
    e.activation_float(v.data(), nullptr, silu, y.data(), static_cast<int64_t>(v.size()) / 16 * 16);
    size_t wrong = 0;
    for (size_t i = 0; i < v.size() / 16 * 16; ++i) {
      const float want = (silu ? v[i] : 1.f) / (1.f + exp_bits(-v[i]));
      wrong += std::memcmp(&want, &y[i], sizeof(float)) != 0;
    }
    EXPECT_EQ(wrong, 0u) << (silu ? "silu" : "sigmoid") << ", " << v.size() << " values";
  }
}

}  // namespace
}  // namespace qyolo
