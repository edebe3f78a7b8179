// qyolo — a dense host tensor: dtype + shape + shared, 64-byte aligned storage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qyolo {

enum class DataType : int32_t { kFloat32, kFloat16, kInt8, kUInt8, kInt32, kInt64, kBool };

size_t dtype_size(DataType t);
const char* dtype_name(DataType t);

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);  // "1x3x640x640"

template <typename T> constexpr DataType dtype_of();
template <> constexpr DataType dtype_of<float>() { return DataType::kFloat32; }
template <> constexpr DataType dtype_of<int8_t>() { return DataType::kInt8; }
template <> constexpr DataType dtype_of<uint8_t>() { return DataType::kUInt8; }
template <> constexpr DataType dtype_of<int32_t>() { return DataType::kInt32; }
template <> constexpr DataType dtype_of<int64_t>() { return DataType::kInt64; }
template <> constexpr DataType dtype_of<bool>() { return DataType::kBool; }

class Tensor {
 public:
  Tensor() = default;
  // Allocates zero-initialised storage.
  Tensor(DataType dtype, Shape shape);
  // Allocates without initialising (hot paths that overwrite every element).
  static Tensor uninitialized(DataType dtype, Shape shape);
  // Copies `values` into a new tensor of dtype_of<T>.
  template <typename T>
  static Tensor from_vector(Shape shape, const std::vector<T>& values) {
    Tensor t(dtype_of<T>(), std::move(shape));
    std::copy(values.begin(), values.end(), t.data<T>());
    return t;
  }
  // Scalar of shape {} .
  template <typename T>
  static Tensor scalar(T v) { return from_vector<T>({}, {v}); }

  // True for a default-constructed tensor (no storage); a scalar or zero-size tensor is not empty.
  bool empty() const { return storage_ == nullptr; }
  DataType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t dim(int64_t i) const { return shape_[static_cast<size_t>(i)]; }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  // True when another Tensor (a copy, a view, a reshape) holds this one's storage too.
  bool storage_shared() const { return storage_.use_count() > 1; }

  void* raw() { return storage_.get(); }
  const void* raw() const { return storage_.get(); }
  template <typename T> T* data() { return reinterpret_cast<T*>(storage_.get()); }
  template <typename T> const T* data() const { return reinterpret_cast<const T*>(storage_.get()); }

  // Deep copy.
  Tensor clone() const;
  // Same storage, new shape (numel must match; caller checks).
  Tensor reshaped(Shape shape) const;
  // A tensor over this one's storage from `byte_offset` on, sharing it (an arena's slice: the
  // caller keeps the range inside this tensor's bytes).
  Tensor view(size_t byte_offset, DataType dtype, Shape shape) const;
  // Values as int64 (from int32/int64/bool/uint8/int8); used by shape computations.
  std::vector<int64_t> to_int64_vector() const;
  // Values as float (from any numeric dtype).
  std::vector<float> to_float_vector() const;

 private:
  Tensor(DataType dtype, Shape shape, bool zero);
  DataType dtype_ = DataType::kFloat32;
  Shape shape_;
  std::shared_ptr<std::byte> storage_;
};

// IEEE half <-> float conversion (round to nearest even).
uint16_t float_to_half(float f);
float half_to_float(uint16_t h);

}  // namespace qyolo
