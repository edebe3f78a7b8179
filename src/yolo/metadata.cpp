#include "yolo/metadata.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <memory>

namespace qyolo {

namespace {

struct PyEntry;

// A Python literal as str() writes it: int, float, str, list/tuple, dict, True/False/None.
struct PyValue {
  enum Kind { kInt, kFloat, kStr, kList, kDict, kConst } kind = kConst;
  int64_t i = 0;
  double f = 0;
  std::string s;                                     // kStr: the text; kConst: "True", "False", "None"
  std::vector<PyValue> items;                        // kList
  std::vector<PyEntry> entries;                      // kDict
};
// Not std::pair<PyValue, PyValue>: clang cannot instantiate that inside PyValue's own definition.
struct PyEntry {
  PyValue key, value;
};

class PyParser {
 public:
  explicit PyParser(const std::string& text) : t_(text) {}

  Result<PyValue> parse_all() {
    QYOLO_ASSIGN_OR_RETURN(PyValue v, value(0));
    skip_ws();
    if (p_ != t_.size()) return error("unexpected text after the value");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 16;
  const std::string& t_;
  size_t p_ = 0;

  Status error(const std::string& what) const {
    return invalid_argument(what + " at character " + std::to_string(p_));
  }
  void skip_ws() {
    while (p_ < t_.size() && std::isspace(static_cast<unsigned char>(t_[p_]))) ++p_;
  }
  bool eat(char c) {
    skip_ws();
    if (p_ < t_.size() && t_[p_] == c) {
      ++p_;
      return true;
    }
    return false;
  }

  Result<PyValue> value(int depth) {
    if (depth > kMaxDepth) return error("nested too deeply");
    skip_ws();
    if (p_ >= t_.size()) return error("unexpected end");
    const char c = t_[p_];
    if (c == '\'' || c == '"') return string();
    if (c == '[' || c == '(') return list(depth, c == '[' ? ']' : ')');
    if (c == '{') return dict(depth);
    if (c == '-' || c == '+' || std::isdigit(static_cast<unsigned char>(c))) return number();
    for (const char* word : {"True", "False", "None"}) {
      if (t_.compare(p_, std::char_traits<char>::length(word), word) == 0) {
        p_ += std::char_traits<char>::length(word);
        PyValue v;
        v.s = word;
        return v;
      }
    }
    return error(std::string("unexpected '") + c + "'");
  }

  Result<PyValue> number() {
    const size_t start = p_;
    if (t_[p_] == '-' || t_[p_] == '+') ++p_;
    bool is_float = false;
    while (p_ < t_.size() &&
           (std::isdigit(static_cast<unsigned char>(t_[p_])) || t_[p_] == '.' || t_[p_] == 'e' ||
            t_[p_] == 'E' ||
            ((t_[p_] == '-' || t_[p_] == '+') && (t_[p_ - 1] == 'e' || t_[p_ - 1] == 'E')))) {
      if (!std::isdigit(static_cast<unsigned char>(t_[p_]))) is_float = true;
      ++p_;
    }
    const std::string num = t_.substr(start, p_ - start);
    PyValue v;
    char* end = nullptr;
    if (is_float) {
      v.kind = PyValue::kFloat;
      v.f = std::strtod(num.c_str(), &end);
    } else {
      if (num.size() > 18) return error("integer '" + num + "' is too large");
      v.kind = PyValue::kInt;
      v.i = std::strtoll(num.c_str(), &end, 10);
    }
    if (end == nullptr || *end != '\0' || num == "-" || num == "+") return error("bad number '" + num + "'");
    return v;
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  Result<PyValue> string() {
    const char quote = t_[p_++];
    PyValue v;
    v.kind = PyValue::kStr;
    while (true) {
      if (p_ >= t_.size()) return error("unterminated string");
      const char c = t_[p_++];
      if (c == quote) break;
      if (c != '\\') {
        v.s += c;
        continue;
      }
      if (p_ >= t_.size()) return error("unterminated string");
      const char e = t_[p_++];
      int hex_digits = 0;
      switch (e) {
        case 'n':
          v.s += '\n';
          break;
        case 't':
          v.s += '\t';
          break;
        case 'r':
          v.s += '\r';
          break;
        case 'x':
          hex_digits = 2;
          break;
        case 'u':
          hex_digits = 4;
          break;
        case 'U':
          hex_digits = 8;
          break;
        default:
          v.s += e;  // \\, \', \" and anything else literally
      }
      if (hex_digits > 0) {
        if (p_ + static_cast<size_t>(hex_digits) > t_.size()) return error("truncated escape");
        uint32_t cp = 0;
        for (int k = 0; k < hex_digits; ++k) {
          const char h = t_[p_++];
          if (!std::isxdigit(static_cast<unsigned char>(h))) return error("bad escape");
          cp = cp * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h))
                                                   ? h - '0'
                                                   : (std::tolower(h) - 'a' + 10));
        }
        if (cp > 0x10FFFF) return error("bad escape");
        append_utf8(v.s, cp);
      }
    }
    return v;
  }

  Result<PyValue> list(int depth, char close) {
    ++p_;
    PyValue v;
    v.kind = PyValue::kList;
    if (eat(close)) return v;
    while (true) {
      QYOLO_ASSIGN_OR_RETURN(PyValue item, value(depth + 1));
      v.items.push_back(std::move(item));
      if (eat(close)) return v;
      if (!eat(',')) return error(std::string("expected ',' or '") + close + "'");
      if (eat(close)) return v;  // trailing comma, as in (1,)
    }
  }

  Result<PyValue> dict(int depth) {
    ++p_;
    PyValue v;
    v.kind = PyValue::kDict;
    if (eat('}')) return v;
    while (true) {
      QYOLO_ASSIGN_OR_RETURN(PyValue key, value(depth + 1));
      if (!eat(':')) return error("expected ':'");
      QYOLO_ASSIGN_OR_RETURN(PyValue val, value(depth + 1));
      v.entries.push_back({std::move(key), std::move(val)});
      if (eat('}')) return v;
      if (!eat(',')) return error("expected ',' or '}'");
      if (eat('}')) return v;
    }
  }
};

Result<PyValue> parse_py(const std::string& key, const std::string& text) {
  auto v = PyParser(text).parse_all();
  if (!v)
    return invalid_argument("metadata '" + key + "' = \"" + text.substr(0, 80) +
                            "\": " + v.status().message());
  return v;
}

// A whole number (int, or a float holding one, or a digit string).
std::optional<int64_t> as_int(const PyValue& v) {
  if (v.kind == PyValue::kInt) return v.i;
  if (v.kind == PyValue::kFloat && std::isfinite(v.f) && v.f == std::floor(v.f) && std::fabs(v.f) < 1e15)
    return static_cast<int64_t>(v.f);
  return std::nullopt;
}

Result<std::vector<int64_t>> int_list(const std::string& key, const std::string& text) {
  QYOLO_ASSIGN_OR_RETURN(PyValue v, parse_py(key, text));
  std::vector<int64_t> out;
  if (auto i = as_int(v)) return std::vector<int64_t>{*i};
  if (v.kind != PyValue::kList)
    return invalid_argument("metadata '" + key + "' = \"" + text +
                            "\": expected a number or a list of numbers");
  for (const auto& item : v.items) {
    auto i = as_int(item);
    if (!i) return invalid_argument("metadata '" + key + "' = \"" + text + "\": expected whole numbers");
    out.push_back(*i);
  }
  return out;
}

constexpr int64_t kMaxClasses = 100000;

}  // namespace

Result<std::vector<std::string>> parse_names_literal(const std::string& text) {
  QYOLO_ASSIGN_OR_RETURN(PyValue v, parse_py("names", text));
  std::vector<std::string> names;
  if (v.kind == PyValue::kList) {
    if (static_cast<int64_t>(v.items.size()) > kMaxClasses)
      return invalid_argument("metadata 'names' lists more than " + std::to_string(kMaxClasses) + " classes");
    for (const auto& item : v.items) {
      if (item.kind != PyValue::kStr)
        return invalid_argument("metadata 'names': the list holds a non-string");
      names.push_back(item.s);
    }
    return names;
  }
  if (v.kind != PyValue::kDict)
    return invalid_argument("metadata 'names' = \"" + text.substr(0, 80) +
                            "\": expected a dict {0: 'person', ...} or a list ['person', ...]");
  for (const auto& [key, val] : v.entries) {
    std::optional<int64_t> id = as_int(key);
    if (!id && key.kind == PyValue::kStr) {  // {'0': 'person'} (json-style keys)
      char* end = nullptr;
      const long long n = std::strtoll(key.s.c_str(), &end, 10);
      if (!key.s.empty() && end && *end == '\0') id = n;
    }
    if (!id || *id < 0 || *id >= kMaxClasses)
      return invalid_argument("metadata 'names': class ids must be whole numbers in 0.." +
                              std::to_string(kMaxClasses - 1));
    if (val.kind != PyValue::kStr)
      return invalid_argument("metadata 'names': the name of class " + std::to_string(*id) +
                              " is not a string");
    if (static_cast<size_t>(*id) >= names.size()) names.resize(static_cast<size_t>(*id) + 1);
    names[static_cast<size_t>(*id)] = val.s;
  }
  return names;
}

Result<std::array<int64_t, 2>> parse_imgsz_literal(const std::string& text) {
  QYOLO_ASSIGN_OR_RETURN(std::vector<int64_t> v, int_list("imgsz", text));
  if (v.size() != 1 && v.size() != 2)
    return invalid_argument("metadata 'imgsz' = \"" + text + "\": expected one size or [H, W]");
  for (int64_t d : v)
    if (d <= 0 || d > 1000000)
      return invalid_argument("metadata 'imgsz' = \"" + text + "\": sizes must be positive");
  return std::array<int64_t, 2>{v[0], v.size() == 2 ? v[1] : v[0]};
}

UltralyticsMetadata parse_ultralytics_metadata(const std::map<std::string, std::string>& metadata,
                                               std::vector<std::string>* problems) {
  UltralyticsMetadata m;
  auto note = [&](const Status& st) {
    if (problems) problems->push_back(st.message());
  };
  if (auto it = metadata.find("names"); it != metadata.end()) {
    auto names = parse_names_literal(it->second);
    if (names)
      m.names = std::move(names).value();
    else
      note(names.status());
  }
  if (auto it = metadata.find("stride"); it != metadata.end()) {
    auto s = int_list("stride", it->second);
    // A list of level strides ([8, 16, 32]) also appears in some exports: the largest counts.
    int64_t mx = 0;
    if (s)
      for (int64_t v : *s) mx = std::max(mx, v);
    if (s && mx > 0 && mx <= 4096)
      m.stride = static_cast<int>(mx);
    else
      note(s ? invalid_argument("metadata 'stride' = \"" + it->second + "\": expected a positive stride")
             : s.status());
  }
  if (auto it = metadata.find("imgsz"); it != metadata.end()) {
    auto hw = parse_imgsz_literal(it->second);
    if (hw)
      m.imgsz = *hw;
    else
      note(hw.status());
  }
  if (auto it = metadata.find("task"); it != metadata.end()) {
    m.task = it->second;
    while (!m.task.empty() && std::isspace(static_cast<unsigned char>(m.task.back()))) m.task.pop_back();
    while (!m.task.empty() && std::isspace(static_cast<unsigned char>(m.task.front())))
      m.task.erase(m.task.begin());
  }
  if (auto it = metadata.find("kpt_shape"); it != metadata.end()) {
    auto k = int_list("kpt_shape", it->second);
    if (k)
      m.kpt_shape = *k;
    else
      note(k.status());
  }
  return m;
}

Status check_detect_task(const std::string& task, const std::string& source) {
  if (task.empty() || task == "detect") return Status::ok();
  std::string what = "the model's ultralytics task is '" + task + "'";
  if (task == "segment")
    what += " (instance segmentation: boxes plus mask coefficients and a prototype output)";
  else if (task == "pose")
    what += " (keypoints: boxes plus keypoint channels)";
  else if (task == "classify")
    what += " (image classification: no boxes)";
  else if (task == "obb")
    what += " (oriented boxes: an angle channel per box)";
  return unsupported(
      source + ": " + what +
      "; qyolo runs detection models only (task 'detect': YOLOv5/YOLOv8/YOLO11 detect exports, or "
      "raw heads described with --head yolov5|yolov8|yolox|FILE.json)");
}

}  // namespace qyolo
