#include "qyolo/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "ir/shape_arith.h"

namespace qyolo {

size_t dtype_size(DataType t) {
  switch (t) {
    case DataType::kFloat32: return 4;
    case DataType::kFloat16: return 2;
    case DataType::kInt8: return 1;
    case DataType::kUInt8: return 1;
    case DataType::kInt32: return 4;
    case DataType::kInt64: return 8;
    case DataType::kBool: return 1;
  }
  return 1;
}

const char* dtype_name(DataType t) {
  switch (t) {
    case DataType::kFloat32: return "float32";
    case DataType::kFloat16: return "float16";
    case DataType::kInt8: return "int8";
    case DataType::kUInt8: return "uint8";
    case DataType::kInt32: return "int32";
    case DataType::kInt64: return "int64";
    case DataType::kBool: return "bool";
  }
  return "?";
}

// Shapes from files are checked (checked_numel) before they get here; saturating instead of
// wrapping keeps a missed check an allocation failure rather than a too-small buffer.
int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s)
    if (checked_mul(n, d, &n)) return INT64_MAX;
  return n;
}

std::string shape_str(const Shape& s) {
  if (s.empty()) return "scalar";
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += 'x';
    out += std::to_string(s[i]);
  }
  return out;
}

Tensor::Tensor(DataType dtype, Shape shape) : Tensor(dtype, std::move(shape), true) {}

Tensor Tensor::uninitialized(DataType dtype, Shape shape) { return Tensor(dtype, std::move(shape), false); }

Tensor::Tensor(DataType dtype, Shape shape, bool zero) : dtype_(dtype), shape_(std::move(shape)) {
  int64_t bytes = 0;
  // Callers check shapes from files first (checked_nbytes); this is the last line of defence.
  if (checked_mul(numel(), static_cast<int64_t>(dtype_size(dtype_)), &bytes) || bytes < 0 ||
      bytes > kMaxTensorBytes)
    throw std::bad_alloc();
  size_t alloc = ((static_cast<size_t>(bytes) + 63) / 64) * 64;
  if (alloc == 0) alloc = 64;
  void* p = std::aligned_alloc(64, alloc);
  if (p == nullptr) throw std::bad_alloc();
  if (zero) std::memset(p, 0, alloc);
  storage_ = std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
}

Tensor Tensor::clone() const {
  Tensor t(dtype_, shape_);
  if (nbytes()) std::memcpy(t.raw(), raw(), nbytes());
  return t;
}

Tensor Tensor::reshaped(Shape shape) const {
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::view(size_t byte_offset, DataType dtype, Shape shape) const {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.storage_ = std::shared_ptr<std::byte>(storage_, storage_.get() + byte_offset);
  return t;
}

template <typename Out>
static std::vector<Out> convert_all(const Tensor& t) {
  std::vector<Out> v(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) {
    switch (t.dtype()) {
      case DataType::kFloat32: v[i] = static_cast<Out>(t.data<float>()[i]); break;
      case DataType::kFloat16: v[i] = static_cast<Out>(half_to_float(t.data<uint16_t>()[i])); break;
      case DataType::kInt8: v[i] = static_cast<Out>(t.data<int8_t>()[i]); break;
      case DataType::kUInt8: v[i] = static_cast<Out>(t.data<uint8_t>()[i]); break;
      case DataType::kInt32: v[i] = static_cast<Out>(t.data<int32_t>()[i]); break;
      case DataType::kInt64: v[i] = static_cast<Out>(t.data<int64_t>()[i]); break;
      case DataType::kBool: v[i] = static_cast<Out>(t.data<bool>()[i] ? 1 : 0); break;
    }
  }
  return v;
}

std::vector<int64_t> Tensor::to_int64_vector() const { return convert_all<int64_t>(*this); }
std::vector<float> Tensor::to_float_vector() const { return convert_all<float>(*this); }

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t mant = x & 0x007fffffu;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xff);
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
  int32_t e = exp - 127 + 15;
  if (e >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x00800000u;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half_mant = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half_mant & 1u))) ++half_mant;
    return static_cast<uint16_t>(sign | half_mant);
  }
  uint32_t half = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;
  return static_cast<uint16_t>(half);
}

float half_to_float(uint16_t h) {
  uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      x = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

}  // namespace qyolo
