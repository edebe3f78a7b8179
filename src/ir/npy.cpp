#include "ir/npy.h"

#include <bit>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <system_error>
#include <vector>

#include "ir/file_io.h"
#include "ir/shape_arith.h"

namespace qyolo {
namespace {

static_assert(std::endian::native == std::endian::little, "npy I/O assumes a little-endian host");

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  Shape shape;
};

// descr is byte order + type code. NumPy writes '|' for one-byte types and '<' for the others;
// '=' (native order) is little-endian here.
bool dtype_from_descr(const std::string& d, DataType* out) {
  if (d.size() != 3) return false;
  char order = d[0];
  std::string code = d.substr(1);
  bool one_byte = code == "i1" || code == "u1" || code == "b1";
  if (!(order == '<' || order == '=' || (order == '|' && one_byte))) return false;
  static constexpr struct {
    const char* code;
    DataType dtype;
  } kCodes[] = {{"f4", DataType::kFloat32}, {"f2", DataType::kFloat16}, {"i1", DataType::kInt8},
                {"u1", DataType::kUInt8},   {"i4", DataType::kInt32},   {"i8", DataType::kInt64},
                {"b1", DataType::kBool}};
  for (const auto& c : kCodes) {
    if (code == c.code) {
      *out = c.dtype;
      return true;
    }
  }
  return false;
}

const char* descr_for(DataType t) {
  switch (t) {
    case DataType::kFloat32:
      return "<f4";
    case DataType::kFloat16:
      return "<f2";
    case DataType::kInt8:
      return "|i1";
    case DataType::kUInt8:
      return "|u1";
    case DataType::kInt32:
      return "<i4";
    case DataType::kInt64:
      return "<i8";
    case DataType::kBool:
      return "|b1";
  }
  return "?";
}

// Minimal parser for the Python dict literal NumPy writes, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 640, 640), }
class HeaderParser {
 public:
  HeaderParser(const std::string& path, const std::string& text) : path_(path), s_(text) {}

  Result<NpyHeader> parse() {
    NpyHeader h;
    bool seen_descr = false, seen_fortran = false, seen_shape = false;
    skip_ws();
    if (!eat('{')) return fail("expected '{'");
    while (true) {
      skip_ws();
      if (eat('}')) break;
      std::string key;
      if (!parse_string(&key)) return fail("expected a quoted key");
      skip_ws();
      if (!eat(':')) return fail("expected ':' after key '" + key + "'");
      skip_ws();
      if (key == "descr") {
        if (!parse_string(&h.descr)) return fail("'descr' is not a string");
        seen_descr = true;
      } else if (key == "fortran_order") {
        if (s_.compare(i_, 4, "True") == 0) {
          h.fortran_order = true;
          i_ += 4;
        } else if (s_.compare(i_, 5, "False") == 0) {
          h.fortran_order = false;
          i_ += 5;
        } else {
          return fail("'fortran_order' is not True/False");
        }
        seen_fortran = true;
      } else if (key == "shape") {
        if (!parse_shape(&h.shape)) return fail("'shape' is not a tuple of non-negative integers");
        seen_shape = true;
      } else {
        return fail("unexpected key '" + key + "'");
      }
      skip_ws();
      if (eat(',')) continue;
      skip_ws();
      if (eat('}')) break;
      return fail("expected ',' or '}'");
    }
    if (!seen_descr || !seen_fortran || !seen_shape)
      return fail("missing one of 'descr', 'fortran_order', 'shape'");
    return h;
  }

 private:
  Status fail(const std::string& why) const {
    return corrupt("npy '" + path_ + "': malformed header (" + why + " at offset " + std::to_string(i_) +
                   "): " + s_);
  }
  void skip_ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool parse_string(std::string* out) {
    if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"')) return false;
    char q = s_[i_++];
    size_t end = s_.find(q, i_);
    if (end == std::string::npos) return false;
    *out = s_.substr(i_, end - i_);
    i_ = end + 1;
    return true;
  }
  bool parse_shape(Shape* out) {
    if (!eat('(')) return false;
    while (true) {
      skip_ws();
      if (eat(')')) return true;
      if (i_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[i_]))) return false;
      int64_t v = 0;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) return false;
        v = v * 10 + (s_[i_++] - '0');
      }
      // NumPy 1.x on some platforms wrote "3L".
      if (i_ < s_.size() && s_[i_] == 'L') ++i_;
      out->push_back(v);
      skip_ws();
      if (eat(',')) continue;
      skip_ws();
      return eat(')');
    }
  }

  const std::string& path_;
  const std::string& s_;
  size_t i_ = 0;
};

std::string hex_bytes(const unsigned char* p, size_t n) {
  std::string out;
  char buf[4];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof(buf), i ? " %02x" : "%02x", p[i]);
    out += buf;
  }
  return out;
}

}  // namespace

Result<Tensor> read_npy(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return not_found("npy '" + path + "': no such file");
  const uintmax_t file_size = std::filesystem::file_size(path, ec);
  if (ec) return io_error("npy '" + path + "': cannot stat: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error("npy '" + path + "': cannot open for reading");

  unsigned char pre[12] = {};
  in.read(reinterpret_cast<char*>(pre), 10);
  const size_t got = static_cast<size_t>(in.gcount());
  if (got < 10 || std::memcmp(pre, kMagic, kMagicLen) != 0)
    return corrupt("npy '" + path + "': bad magic (first bytes " + hex_bytes(pre, got) +
                   ", expected 93 4e 55 4d 50 59)");
  const int major = pre[6], minor = pre[7];
  size_t header_len = 0, prefix = 0;
  if (major == 1) {
    header_len = pre[8] | (size_t{pre[9]} << 8);
    prefix = 10;
  } else if (major == 2 || major == 3) {
    in.read(reinterpret_cast<char*>(pre + 10), 2);
    if (in.gcount() != 2) return corrupt("npy '" + path + "': truncated header length");
    header_len = pre[8] | (size_t{pre[9]} << 8) | (size_t{pre[10]} << 16) | (size_t{pre[11]} << 24);
    prefix = 12;
  } else {
    return unsupported("npy '" + path + "': format version " + std::to_string(major) + "." +
                       std::to_string(minor) + " (supported: 1.0, 2.0, 3.0)");
  }
  if (prefix + header_len > file_size)
    return corrupt("npy '" + path + "': header length " + std::to_string(header_len) + " exceeds file size " +
                   std::to_string(file_size));
  std::string text(header_len, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_len));
  if (static_cast<size_t>(in.gcount()) != header_len) return corrupt("npy '" + path + "': truncated header");

  QYOLO_ASSIGN_OR_RETURN(NpyHeader h, HeaderParser(path, text).parse());
  DataType dtype;
  if (!dtype_from_descr(h.descr, &dtype))
    return unsupported("npy '" + path + "': dtype '" + h.descr +
                       "' (supported: little-endian f4, f2, i1, u1, i4, i8, b1)");
  if (h.fortran_order)
    return unsupported("npy '" + path + "': fortran_order=True (only C-order arrays are supported)");

  // Size check before allocating, so a corrupt shape cannot request absurd memory.
  const uintmax_t available = file_size - prefix - header_len;
  auto bytes = checked_nbytes(h.shape, dtype, "npy '" + path + "'");
  if (!bytes) return Status(StatusCode::kCorrupt, bytes.status().message());
  const uintmax_t need = static_cast<uintmax_t>(*bytes);
  if (available < need)
    return corrupt("npy '" + path + "': truncated data: shape " + shape_str(h.shape) + " " + h.descr +
                   " needs " + std::to_string(need) + " bytes, file has " + std::to_string(available));
  if (available > need)
    return corrupt("npy '" + path + "': " + std::to_string(available - need) +
                   " unexpected trailing bytes after the data of shape " + shape_str(h.shape));

  Tensor t(dtype, h.shape);
  if (need > 0) {
    in.read(static_cast<char*>(t.raw()), static_cast<std::streamsize>(need));
    if (static_cast<uintmax_t>(in.gcount()) != need)
      return io_error("npy '" + path + "': short read of " + std::to_string(need) + " data bytes");
  }
  return t;
}

Status write_npy(const std::string& path, const Tensor& tensor) {
  std::string dict =
      std::string("{'descr': '") + descr_for(tensor.dtype()) + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < tensor.shape().size(); ++i) {
    if (i) dict += ", ";
    dict += std::to_string(tensor.shape()[i]);
  }
  if (tensor.shape().size() == 1) dict += ",";
  dict += "), }";
  // Like current numpy: spare room so the first axis can grow in place up to 21 digits.
  if (!tensor.shape().empty()) dict.append(21 - std::to_string(tensor.shape()[0]).size(), ' ');

  // NumPy pads with spaces and ends with '\n' so the data starts 64-byte aligned.
  auto padded = [&](size_t prefix) {
    std::string h = dict;
    size_t total = prefix + h.size() + 1;
    h.append((64 - total % 64) % 64, ' ');
    h += '\n';
    return h;
  };
  std::string header = padded(10);
  std::string pre(kMagic, kMagicLen);
  if (header.size() <= 0xffff) {
    pre += '\x01';
    pre += '\x00';
    pre += static_cast<char>(header.size() & 0xff);
    pre += static_cast<char>((header.size() >> 8) & 0xff);
  } else {
    header = padded(12);
    pre += '\x02';
    pre += '\x00';
    for (int b = 0; b < 4; ++b) pre += static_cast<char>((header.size() >> (8 * b)) & 0xff);
  }

  return write_file_atomically(
      path, {pre, header, std::string_view(static_cast<const char*>(tensor.raw()), static_cast<size_t>(tensor.nbytes()))},
      "npy");
}

}  // namespace qyolo
