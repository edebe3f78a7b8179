// Head descriptions: the built-ins and the JSON form (docs/heads.md).
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "yolo/head.h"
#include "yolo/head_decode.h"

namespace qyolo {

namespace {

// ultralytics models/yolov5s.yaml (P3-P5) and models/hub/yolov5s6.yaml (P3-P6) anchors, in pixels.
const std::vector<std::vector<float>> kYoloV5Anchors = {
    {10, 13, 16, 30, 33, 23}, {30, 61, 62, 45, 59, 119}, {116, 90, 156, 198, 373, 326}};
const std::vector<std::vector<float>> kYoloV5P6Anchors = {{19, 27, 44, 40, 38, 94},
                                                          {96, 68, 86, 152, 180, 137},
                                                          {140, 301, 303, 264, 238, 542},
                                                          {436, 615, 739, 380, 925, 792}};

HeadSpec decoded(const std::string& name, bool objectness) {
  HeadSpec s;
  s.name = name;
  s.builtin = true;
  s.box = BoxEncoding::kXywh;
  s.objectness = objectness;
  s.scores = Activation::kAuto;
  HeadOutputSpec o;
  o.index = 0;  // ultralytics' first output (older YOLOv5 exports add the raw levels after it)
  s.outputs.push_back(o);
  return s;
}

using json = nlohmann::json;

Status spec_error(const std::string& source, const std::string& what) {
  return invalid_argument("head description '" + source + "': " + what);
}

Result<Activation> parse_activation(const json& v, const std::string& source, const std::string& where) {
  if (!v.is_string()) return spec_error(source, where + " must be \"auto\", \"probabilities\" or \"logits\"");
  const std::string s = v.get<std::string>();
  if (s == "auto") return Activation::kAuto;
  if (s == "probabilities" || s == "applied" || s == "sigmoid_applied") return Activation::kApplied;
  if (s == "logits" || s == "raw") return Activation::kLogits;
  return spec_error(source, where + " is \"" + s + "\"; expected \"auto\", \"probabilities\" or \"logits\"");
}

Result<int> parse_int(const json& v, const std::string& source, const std::string& where, int lo, int hi) {
  if (!v.is_number_integer() &&
      !(v.is_number_float() && v.get<double>() == static_cast<int64_t>(v.get<double>())))
    return spec_error(source, where + " must be a whole number");
  const int64_t i = v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(v.get<double>());
  if (i < lo || i > hi)
    return spec_error(source, where + " is " + std::to_string(i) + ", expected " + std::to_string(lo) + ".." +
                                  std::to_string(hi));
  return static_cast<int>(i);
}

Result<std::vector<int>> parse_strides(const json& v, const std::string& source, const std::string& where) {
  std::vector<int> out;
  if (v.is_number()) {
    QYOLO_ASSIGN_OR_RETURN(int s, parse_int(v, source, where, 1, 4096));
    return std::vector<int>{s};
  }
  if (!v.is_array() || v.empty()) return spec_error(source, where + " must be a stride or a list of strides");
  for (size_t i = 0; i < v.size(); ++i) {
    QYOLO_ASSIGN_OR_RETURN(int s, parse_int(v[i], source, where + "[" + std::to_string(i) + "]", 1, 4096));
    if (!out.empty() && s <= out.back())
      return spec_error(source, where + " must be ascending without repeats");
    out.push_back(s);
  }
  return out;
}

// One level's anchors: [w, h, w, h, ...] or [[w, h], [w, h], ...], positive pixels.
Result<std::vector<float>> parse_level_anchors(const json& v, const std::string& source,
                                               const std::string& where) {
  std::vector<float> out;
  if (!v.is_array() || v.empty()) return spec_error(source, where + " must be a list of (w, h) pairs");
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i].is_array()) {
      if (v[i].size() != 2 || !v[i][0].is_number() || !v[i][1].is_number())
        return spec_error(source, where + "[" + std::to_string(i) + "] must be [w, h]");
      out.push_back(v[i][0].get<float>());
      out.push_back(v[i][1].get<float>());
    } else if (v[i].is_number()) {
      out.push_back(v[i].get<float>());
    } else {
      return spec_error(source, where + " must hold numbers");
    }
  }
  if (out.size() % 2) return spec_error(source, where + " has an odd count of numbers (w, h pairs expected)");
  if (out.size() / 2 > static_cast<size_t>(kHeadMaxAnchors))
    return spec_error(source, where + " has more than " + std::to_string(kHeadMaxAnchors) + " anchors");
  for (float f : out)
    if (!(f > 0 && f < 1e5f)) return spec_error(source, where + " holds a non-positive or absurd size");
  return out;
}

void check_keys(const json& obj, const std::set<std::string>& allowed, const std::string& source,
                const std::string& where, Status* st) {
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (!allowed.count(it.key())) {
      std::string list;
      for (const auto& k : allowed) list += (list.empty() ? "" : ", ") + k;
      *st = spec_error(source, "unknown key '" + it.key() + "'" + where + " (known: " + list + ")");
      return;
    }
}

Result<HeadOutputSpec> parse_output(const json& v, size_t i, const std::string& source) {
  const std::string where = "outputs[" + std::to_string(i) + "]";
  if (!v.is_object()) return spec_error(source, where + " must be an object");
  Status st;
  check_keys(v, {"name", "index", "stride", "strides", "parts", "layout", "scores", "point_order", "anchors"},
             source, " in " + where, &st);
  QYOLO_RETURN_IF_ERROR(st);
  HeadOutputSpec o;
  if (v.contains("name")) {
    if (!v["name"].is_string() || v["name"].get<std::string>().empty())
      return spec_error(source, where + ".name must be a non-empty string");
    o.name = v["name"].get<std::string>();
  }
  if (v.contains("index")) {
    QYOLO_ASSIGN_OR_RETURN(o.index, parse_int(v["index"], source, where + ".index", 0, 4095));
  }
  if (!o.name.empty() && o.index >= 0) return spec_error(source, where + " gives both a name and an index");
  if (o.name.empty() && o.index < 0) o.index = static_cast<int>(i);
  if (v.contains("stride") && v.contains("strides"))
    return spec_error(source, where + " gives both stride and strides");
  for (const char* k : {"stride", "strides"})
    if (v.contains(k)) {
      QYOLO_ASSIGN_OR_RETURN(o.strides, parse_strides(v[k], source, where + "." + k));
    }
  if (v.contains("parts")) {
    const json& p = v["parts"];
    if (!p.is_array() || p.empty())
      return spec_error(source, where + ".parts must be a list like [\"box\", \"obj\", \"cls\"]");
    std::set<std::string> seen;
    for (const auto& e : p) {
      const std::string s = e.is_string() ? e.get<std::string>() : "";
      if (s == "box")
        o.parts.push_back(HeadPart::kBox);
      else if (s == "obj" || s == "objectness")
        o.parts.push_back(HeadPart::kObj);
      else if (s == "cls" || s == "classes" || s == "scores")
        o.parts.push_back(HeadPart::kCls);
      else
        return spec_error(source, where + ".parts holds \"" + s + "\"; expected \"box\", \"obj\" or \"cls\"");
      if (!seen.insert(head_part_name(o.parts.back())).second)
        return spec_error(source, where + ".parts names \"" + s + "\" twice");
    }
  }
  if (v.contains("layout")) {
    const std::string s = v["layout"].is_string() ? v["layout"].get<std::string>() : "";
    if (s == "nchw")
      o.layout = OutputLayout::kNchw;
    else if (s == "nhwc")
      o.layout = OutputLayout::kNhwc;
    else if (s == "nahwc")
      o.layout = OutputLayout::kNahwc;
    else if (s == "rows")
      o.layout = OutputLayout::kRows;
    else if (s == "columns")
      o.layout = OutputLayout::kColumns;
    else if (s == "auto")
      o.layout = OutputLayout::kAuto;
    else
      return spec_error(
          source, where + ".layout is \"" + s + "\"; expected nchw, nhwc, nahwc, rows, columns or auto");
  }
  if (v.contains("scores")) {
    QYOLO_ASSIGN_OR_RETURN(o.activation, parse_activation(v["scores"], source, where + ".scores"));
  }
  if (v.contains("point_order")) {
    const std::string s = v["point_order"].is_string() ? v["point_order"].get<std::string>() : "";
    if (s == "cell_major")
      o.cell_major = true;
    else if (s != "anchor_major")
      return spec_error(source, where + ".point_order must be \"anchor_major\" or \"cell_major\"");
  }
  if (v.contains("anchors")) {
    QYOLO_ASSIGN_OR_RETURN(o.anchors, parse_level_anchors(v["anchors"], source, where + ".anchors"));
  }
  return o;
}

}  // namespace

Result<std::vector<HeadSpec>> builtin_head(const std::string& name) {
  if (name == "yolov5") {
    HeadSpec raw;
    raw.name = name;
    raw.builtin = true;
    raw.box = BoxEncoding::kYoloV5;
    raw.objectness = true;
    raw.strides = {8, 16, 32};
    raw.anchors = kYoloV5Anchors;
    HeadSpec p6 = raw;
    p6.strides = {8, 16, 32, 64};
    p6.anchors = kYoloV5P6Anchors;
    return std::vector<HeadSpec>{decoded(name, true), raw, p6};
  }
  if (name == "yolov8" || name == "yolo11") {
    HeadSpec raw;
    raw.name = name;
    raw.builtin = true;
    raw.box = BoxEncoding::kDfl;
    raw.objectness = false;
    raw.reg_max = 16;
    return std::vector<HeadSpec>{decoded(name, false), raw};
  }
  if (name == "yolox") {
    HeadSpec raw;
    raw.name = name;
    raw.builtin = true;
    raw.box = BoxEncoding::kYoloX;
    raw.objectness = true;  // official exports: obj and cls already sigmoid (kAuto finds out)
    return std::vector<HeadSpec>{raw};
  }
  return invalid_argument("unknown built-in head '" + name + "' (built-ins: yolov5, yolov8, yolo11, yolox)");
}

Result<HeadSpec> parse_head_json(const std::string& text, const std::string& source) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (j.is_discarded()) return spec_error(source, "not valid JSON");
  if (!j.is_object()) return spec_error(source, "must be a JSON object");
  Status st;
  check_keys(j,
             {"box", "objectness", "scores", "reg_max", "grid_offset", "delta_weights", "num_classes",
              "strides", "anchors", "outputs", "name", "comment", "description"},
             source, "", &st);
  QYOLO_RETURN_IF_ERROR(st);
  HeadSpec s;
  s.name = source;
  if (!j.contains("box") || !j["box"].is_string())
    return spec_error(source,
                      "\"box\" (the box encoding) is required: xywh, xyxy, yolov5, yolox, dfl or deltas");
  const std::string box = j["box"].get<std::string>();
  if (box == "xywh")
    s.box = BoxEncoding::kXywh;
  else if (box == "xyxy")
    s.box = BoxEncoding::kXyxy;
  else if (box == "yolov5")
    s.box = BoxEncoding::kYoloV5;
  else if (box == "yolox")
    s.box = BoxEncoding::kYoloX;
  else if (box == "dfl")
    s.box = BoxEncoding::kDfl;
  else if (box == "deltas" || box == "retinanet")
    s.box = BoxEncoding::kDeltas;
  else
    return spec_error(source,
                      "\"box\" is \"" + box + "\"; expected xywh, xyxy, yolov5, yolox, dfl or deltas");
  s.objectness = s.box == BoxEncoding::kYoloV5 || s.box == BoxEncoding::kYoloX;
  if (j.contains("objectness")) {
    if (!j["objectness"].is_boolean()) return spec_error(source, "\"objectness\" must be true or false");
    s.objectness = j["objectness"].get<bool>();
  }
  if (j.contains("scores")) {
    QYOLO_ASSIGN_OR_RETURN(s.scores, parse_activation(j["scores"], source, "\"scores\""));
  }
  if (j.contains("reg_max")) {
    QYOLO_ASSIGN_OR_RETURN(s.reg_max, parse_int(j["reg_max"], source, "\"reg_max\"", 1, kHeadMaxRegMax));
  }
  if (j.contains("grid_offset")) {
    if (!j["grid_offset"].is_number()) return spec_error(source, "\"grid_offset\" must be a number (cells)");
    s.grid_offset = j["grid_offset"].get<float>();
    if (!(*s.grid_offset >= -1.f && *s.grid_offset <= 1.f))
      return spec_error(source, "\"grid_offset\" must be in [-1, 1]");
  }
  if (j.contains("delta_weights")) {
    const json& w = j["delta_weights"];
    if (!w.is_array() || w.size() != 4)
      return spec_error(source, "\"delta_weights\" must be [wx, wy, ww, wh]");
    for (size_t i = 0; i < 4; ++i) {
      if (!w[i].is_number() || !(w[i].get<float>() > 0))
        return spec_error(source, "\"delta_weights\" must be positive");
      s.delta_weights[i] = w[i].get<float>();
    }
  }
  if (j.contains("num_classes")) {
    QYOLO_ASSIGN_OR_RETURN(s.num_classes, parse_int(j["num_classes"], source, "\"num_classes\"", 1, 100000));
  }
  if (j.contains("strides")) {
    QYOLO_ASSIGN_OR_RETURN(s.strides, parse_strides(j["strides"], source, "\"strides\""));
  }
  if (j.contains("anchors")) {
    const json& a = j["anchors"];
    if (!a.is_array() || a.empty())
      return spec_error(source, "\"anchors\" must be a list with one entry per level");
    for (size_t i = 0; i < a.size(); ++i) {
      QYOLO_ASSIGN_OR_RETURN(auto lv,
                             parse_level_anchors(a[i], source, "\"anchors\"[" + std::to_string(i) + "]"));
      s.anchors.push_back(std::move(lv));
    }
    if (!s.strides.empty() && s.anchors.size() != s.strides.size())
      return spec_error(source, "\"anchors\" has " + std::to_string(s.anchors.size()) +
                                    " levels, \"strides\" " + std::to_string(s.strides.size()));
  }
  if (j.contains("outputs")) {
    const json& o = j["outputs"];
    if (!o.is_array() || o.empty()) return spec_error(source, "\"outputs\" must be a non-empty list");
    for (size_t i = 0; i < o.size(); ++i) {
      QYOLO_ASSIGN_OR_RETURN(HeadOutputSpec out, parse_output(o[i], i, source));
      s.outputs.push_back(std::move(out));
    }
  }
  const bool anchored = s.box == BoxEncoding::kYoloV5 || s.box == BoxEncoding::kDeltas;
  bool any_output_anchors = false;
  for (const auto& o : s.outputs) any_output_anchors |= !o.anchors.empty();
  if (!anchored && (!s.anchors.empty() || any_output_anchors))
    return spec_error(source, std::string("box encoding '") + box_encoding_name(s.box) +
                                  "' is anchor-free: remove \"anchors\" (yolov5 and deltas use anchors)");
  if (anchored && s.anchors.empty() && !any_output_anchors)
    return spec_error(source, std::string("box encoding '") + box_encoding_name(s.box) +
                                  "' needs \"anchors\": one list of (w, h) pairs in input pixels per level");
  if (s.box != BoxEncoding::kDfl && j.contains("reg_max"))
    return spec_error(source, "\"reg_max\" applies to box encoding dfl only");
  if (s.box != BoxEncoding::kDeltas && j.contains("delta_weights"))
    return spec_error(source, "\"delta_weights\" applies to box encoding deltas only");
  return s;
}

Result<std::vector<HeadSpec>> load_head(const std::string& name_or_file) {
  if (name_or_file.empty()) return invalid_argument("--head is empty");
  auto builtin = builtin_head(name_or_file);
  if (builtin) return builtin;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(name_or_file, ec))
    return not_found("--head '" + name_or_file +
                     "' is neither a built-in head (yolov5, yolov8, yolo11, yolox) nor a JSON file");
  const auto size = std::filesystem::file_size(name_or_file, ec);
  if (ec || size > (1u << 20))
    return invalid_argument("head description '" + name_or_file + "' is larger than 1 MiB");
  std::ifstream f(name_or_file, std::ios::binary);
  if (!f) return io_error("cannot read head description '" + name_or_file + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  QYOLO_ASSIGN_OR_RETURN(HeadSpec spec, parse_head_json(ss.str(), name_or_file));
  return std::vector<HeadSpec>{std::move(spec)};
}

}  // namespace qyolo
