#include "eval/coco_eval.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <sstream>
#include <unordered_map>
#include "ir/file_io.h"

namespace qyolo {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Loading and writing.

namespace {

Result<std::string> read_text_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return not_found("file not found: " + path);
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return io_error("read failed: " + path);
  return ss.str();
}

Result<json> read_json_file(const std::string& path) {
  QYOLO_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  try {
    return json::parse(text);
  } catch (const json::exception& e) {  // e.g. "parse error at line 3, column 7: ..."
    return corrupt("invalid JSON in " + path + ": " + e.what());
  }
}

// Integer field (JSON integer, or a float with an integral value).
Result<int> get_int(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return corrupt(where + ": missing '" + key + "'");
  if (it->is_number_integer()) {
    int64_t v = it->get<int64_t>();
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
      return corrupt(where + ": '" + key + "' out of int range: " + std::to_string(v));
    return static_cast<int>(v);
  }
  if (it->is_number_float()) {
    double v = it->get<double>();
    if (v == std::floor(v) && std::abs(v) < 2e9) return static_cast<int>(v);
  }
  if (it->is_boolean()) return it->get<bool>() ? 1 : 0;
  return corrupt(where + ": '" + key +
                 "' is not an integer: " + it->dump(-1, ' ', false, json::error_handler_t::replace));
}

// An integer annotation id: any JSON integer (COCO's crowd annotations use ids past 2^31).
Result<int64_t> get_id64(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it != obj.end() && it->is_number_integer()) return it->get<int64_t>();
  QYOLO_ASSIGN_OR_RETURN(int v, get_int(obj, key, where));
  return static_cast<int64_t>(v);
}

Result<double> get_number(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return corrupt(where + ": missing '" + key + "'");
  if (!it->is_number())
    return corrupt(where + ": '" + key +
                   "' is not a number: " + it->dump(-1, ' ', false, json::error_handler_t::replace));
  return it->get<double>();
}

Result<std::array<double, 4>> get_bbox(const json& obj, const std::string& where) {
  auto it = obj.find("bbox");
  if (it == obj.end()) return corrupt(where + ": missing 'bbox'");
  if (!it->is_array() || it->size() != 4)
    return corrupt(
        where + ": 'bbox' is not [x, y, w, h]: " + it->dump(-1, ' ', false, json::error_handler_t::replace));
  std::array<double, 4> b{};
  for (size_t k = 0; k < 4; ++k) {
    if (!(*it)[k].is_number())
      return corrupt(
          where + ": 'bbox' has a non-number: " + it->dump(-1, ' ', false, json::error_handler_t::replace));
    b[k] = (*it)[k].get<double>();
  }
  return b;
}

Result<GroundTruth> parse_coco_gt(const json& j, const std::string& path) {
  if (!j.is_object()) return corrupt(path + ": top level is not an object");
  GroundTruth gt;
  auto images = j.find("images");
  if (images == j.end() || !images->is_array()) return corrupt(path + ": missing 'images' array");
  std::set<int> image_ids;
  for (size_t i = 0; i < images->size(); ++i) {
    const json& im = (*images)[i];
    std::string where = path + ": images[" + std::to_string(i) + "]";
    if (!im.is_object()) return corrupt(where + " is not an object");
    GtImage g;
    QYOLO_ASSIGN_OR_RETURN(g.id, get_int(im, "id", where));
    if (auto f = im.find("file_name"); f != im.end() && f->is_string()) g.file_name = f->get<std::string>();
    if (im.contains("width")) {
      QYOLO_ASSIGN_OR_RETURN(g.width, get_int(im, "width", where));
    }
    if (im.contains("height")) {
      QYOLO_ASSIGN_OR_RETURN(g.height, get_int(im, "height", where));
    }
    if (!image_ids.insert(g.id).second)
      return corrupt(where + ": duplicate image id " + std::to_string(g.id));
    gt.images.push_back(std::move(g));
  }
  auto anns = j.find("annotations");
  if (anns != j.end()) {
    if (!anns->is_array()) return corrupt(path + ": 'annotations' is not an array");
    for (size_t i = 0; i < anns->size(); ++i) {
      const json& a = (*anns)[i];
      std::string where = path + ": annotations[" + std::to_string(i) + "]";
      if (!a.is_object()) return corrupt(where + " is not an object");
      GtAnnotation g;
      g.id = static_cast<int>(i) + 1;
      if (a.contains("id")) {
        QYOLO_ASSIGN_OR_RETURN(g.id, get_id64(a, "id", where));
      }
      QYOLO_ASSIGN_OR_RETURN(g.image_id, get_int(a, "image_id", where));
      QYOLO_ASSIGN_OR_RETURN(g.category_id, get_int(a, "category_id", where));
      QYOLO_ASSIGN_OR_RETURN(auto b, get_bbox(a, where));
      g.x = b[0], g.y = b[1], g.w = b[2], g.h = b[3];
      g.area = g.w * g.h;
      if (a.contains("area")) {
        QYOLO_ASSIGN_OR_RETURN(g.area, get_number(a, "area", where));
      }
      if (a.contains("iscrowd")) {
        QYOLO_ASSIGN_OR_RETURN(int crowd, get_int(a, "iscrowd", where));
        g.iscrowd = crowd != 0;
      }
      if (!image_ids.count(g.image_id))
        return corrupt(where + ": image_id " + std::to_string(g.image_id) + " is not in 'images'");
      gt.annotations.push_back(g);
    }
  }
  auto cats = j.find("categories");
  if (cats != j.end() && cats->is_array()) {
    for (size_t i = 0; i < cats->size(); ++i) {
      const json& c = (*cats)[i];
      std::string where = path + ": categories[" + std::to_string(i) + "]";
      if (!c.is_object()) return corrupt(where + " is not an object");
      GtCategory g;
      QYOLO_ASSIGN_OR_RETURN(g.id, get_int(c, "id", where));
      if (auto n = c.find("name"); n != c.end() && n->is_string()) g.name = n->get<std::string>();
      gt.categories.push_back(std::move(g));
    }
  } else {
    std::set<int> ids;
    for (const auto& a : gt.annotations) ids.insert(a.category_id);
    for (int id : ids) gt.categories.push_back({id, ""});
  }
  return gt;
}

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".webp";
}

// All digits and small enough for an int once leading zeros are dropped (COCO: 000000000139).
bool numeric_stem(const std::string& s) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); }))
    return false;
  size_t first = s.find_first_not_of('0');
  return first == std::string::npos || s.size() - first <= 9;
}

}  // namespace

Result<GroundTruth> load_coco_json(const std::string& path) {
  QYOLO_ASSIGN_OR_RETURN(json j, read_json_file(path));
  try {
    return parse_coco_gt(j, path);
  } catch (const json::exception& e) {  // safety net: field checks above should prevent this
    return corrupt(path + ": " + e.what());
  }
}

Result<GroundTruth> load_yolo_labels(const std::string& images_dir, const std::string& labels_dir,
                                     const ImageSizeFn& image_size) {
  std::error_code ec;
  if (!fs::is_directory(images_dir, ec)) return not_found("images directory not found: " + images_dir);
  std::vector<fs::path> files;
  for (fs::directory_iterator it(images_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && is_image_file(it->path())) files.push_back(it->path());
  }
  if (ec) return io_error("cannot list " + images_dir + ": " + ec.message());
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();
  });
  bool numeric_ids = std::all_of(files.begin(), files.end(),
                                 [](const fs::path& p) { return numeric_stem(p.stem().string()); });

  GroundTruth gt;
  std::set<int> ids, classes;
  for (size_t i = 0; i < files.size(); ++i) {
    const fs::path& img = files[i];
    GtImage im;
    im.id = numeric_ids ? std::stoi(img.stem().string()) : static_cast<int>(i) + 1;
    if (!ids.insert(im.id).second)
      return invalid_argument("two images map to id " + std::to_string(im.id) + " in " + images_dir + " (" +
                              img.filename().string() + ")");
    im.file_name = img.filename().string();
    auto size = image_size(img.string());
    if (!size.is_ok()) return size.status().with_context("image size of " + img.string());
    im.width = size->first;
    im.height = size->second;
    if (im.width <= 0 || im.height <= 0)
      return invalid_argument("image " + img.string() + " has size " + std::to_string(im.width) + "x" +
                              std::to_string(im.height));

    fs::path label = fs::path(labels_dir) / (img.stem().string() + ".txt");
    if (fs::exists(label, ec)) {
      QYOLO_ASSIGN_OR_RETURN(std::string text, read_text_file(label.string()));
      std::istringstream lines(text);
      std::string line;
      for (int line_no = 1; std::getline(lines, line); ++line_no) {
        std::istringstream fields(line);
        std::vector<std::string> tok;
        for (std::string t; fields >> t;) tok.push_back(t);
        if (tok.empty()) continue;
        std::string where = label.string() + ":" + std::to_string(line_no);
        if (tok.size() != 5) return corrupt(where + ": expected 'class cx cy w h', got '" + line + "'");
        double v[5];
        for (int k = 0; k < 5; ++k) {
          char* endp = nullptr;
          v[k] = std::strtod(tok[k].c_str(), &endp);
          if (endp == tok[k].c_str() || *endp != '\0' || !std::isfinite(v[k]))
            return corrupt(where + ": not a number: '" + tok[k] + "'");
        }
        if (v[0] < 0 || v[0] != std::floor(v[0]) || v[0] > 1e6)
          return corrupt(where + ": bad class index '" + tok[0] + "'");
        GtAnnotation a;
        a.id = static_cast<int>(gt.annotations.size()) + 1;
        a.image_id = im.id;
        a.category_id = static_cast<int>(v[0]);
        a.w = v[3] * im.width;
        a.h = v[4] * im.height;
        a.x = v[1] * im.width - a.w / 2;
        a.y = v[2] * im.height - a.h / 2;
        a.area = a.w * a.h;
        classes.insert(a.category_id);
        gt.annotations.push_back(a);
      }
    }
    gt.images.push_back(std::move(im));
  }
  for (int c : classes) gt.categories.push_back({c, ""});
  return gt;
}

const std::vector<int>& coco80_to_coco91() {
  static const std::vector<int> kTable = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 13, 14, 15, 16, 17,
                                          18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36,
                                          37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53,
                                          54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73,
                                          74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90};
  return kTable;
}

Result<std::vector<CocoDetection>> to_coco_detections(int image_id, const std::vector<Detection>& detections,
                                                      const std::vector<int>& class_to_category) {
  std::vector<CocoDetection> out;
  out.reserve(detections.size());
  for (const Detection& d : detections) {
    int cat = d.class_id;
    if (!class_to_category.empty()) {
      if (d.class_id < 0 || static_cast<size_t>(d.class_id) >= class_to_category.size())
        return invalid_argument("class id " + std::to_string(d.class_id) + " of a detection in image " +
                                std::to_string(image_id) + " is outside the category table (" +
                                std::to_string(class_to_category.size()) + " classes)");
      cat = class_to_category[static_cast<size_t>(d.class_id)];
    }
    out.push_back({image_id, cat, d.x1, d.y1, static_cast<double>(d.x2) - d.x1,
                   static_cast<double>(d.y2) - d.y1, d.score});
  }
  return out;
}

Status write_coco_results_json(const std::string& path, const std::vector<CocoDetection>& detections) {
  json arr = json::array();
  for (const CocoDetection& d : detections)
    arr.push_back(json{{"image_id", d.image_id},
                       {"category_id", d.category_id},
                       {"bbox", {d.x, d.y, d.w, d.h}},
                       {"score", d.score}});
  // Dump without throwing on odd strings; there are none, but a NaN becomes null.
  std::string text = arr.dump(-1, ' ', false, json::error_handler_t::replace);
  text += '\n';
  return write_file_atomically(path, text, "results file");
}

Result<std::vector<CocoDetection>> load_coco_results_json(const std::string& path) {
  QYOLO_ASSIGN_OR_RETURN(json j, read_json_file(path));
  if (!j.is_array()) return corrupt(path + ": COCO results must be a JSON array");
  std::vector<CocoDetection> out;
  out.reserve(j.size());
  try {
    for (size_t i = 0; i < j.size(); ++i) {
      const json& r = j[i];
      std::string where = path + ": [" + std::to_string(i) + "]";
      if (!r.is_object()) return corrupt(where + " is not an object");
      CocoDetection d;
      QYOLO_ASSIGN_OR_RETURN(d.image_id, get_int(r, "image_id", where));
      QYOLO_ASSIGN_OR_RETURN(d.category_id, get_int(r, "category_id", where));
      QYOLO_ASSIGN_OR_RETURN(auto b, get_bbox(r, where));
      d.x = b[0], d.y = b[1], d.w = b[2], d.h = b[3];
      QYOLO_ASSIGN_OR_RETURN(d.score, get_number(r, "score", where));
      out.push_back(d);
    }
  } catch (const json::exception& e) {
    return corrupt(path + ": " + e.what());
  }
  return out;
}

Result<std::vector<CocoDetection>> load_coco_results_files(const std::vector<std::string>& paths,
                                                           const GroundTruth& gt,
                                                           const std::string& gt_name) {
  std::set<int> known;
  for (const auto& im : gt.images) known.insert(im.id);
  std::map<int, size_t> owner;  // image id -> index of the file that has its detections
  std::vector<CocoDetection> out;
  for (size_t f = 0; f < paths.size(); ++f) {
    std::error_code ec;
    for (size_t g = 0; g < f; ++g)
      if (paths[g] == paths[f] || fs::equivalent(paths[g], paths[f], ec))
        return invalid_argument("results file " + paths[f] + " is given twice");
    QYOLO_ASSIGN_OR_RETURN(std::vector<CocoDetection> dets, load_coco_results_json(paths[f]));
    for (const CocoDetection& d : dets) {
      if (!known.count(d.image_id))
        return invalid_argument(paths[f] + ": detection for image id " + std::to_string(d.image_id) +
                                ", which is not an image of " + gt_name + " (" +
                                std::to_string(known.size()) + " images)");
      auto [it, fresh] = owner.emplace(d.image_id, f);
      if (!fresh && it->second != f)
        return invalid_argument("image id " + std::to_string(d.image_id) + " has detections in both " +
                                paths[it->second] + " and " + paths[f] +
                                " (each image's detections must come from one results file)");
    }
    out.insert(out.end(), dets.begin(), dets.end());
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Evaluation (mirrors COCOeval.evaluate / evaluateImg / accumulate / summarize).

namespace {

constexpr int kNumIou = 10;
constexpr int kNumRec = 101;
constexpr int kNumArea = 4;
constexpr int kNumMaxDet = 3;

struct EvalParams {
  std::array<double, kNumIou> iou_thrs;
  std::array<double, kNumRec> rec_thrs;
  std::array<std::array<double, 2>, kNumArea> area_rngs = {
      {{0.0, 1e10}, {0.0, 32.0 * 32.0}, {32.0 * 32.0, 96.0 * 96.0}, {96.0 * 96.0, 1e10}}};
  std::array<int, kNumMaxDet> max_dets = {1, 10, 100};

  EvalParams() {
    // np.linspace(start, stop, num): i * ((stop - start) / (num - 1)) + start, last = stop.
    const double iou_step = (0.95 - 0.5) / (kNumIou - 1);
    for (int i = 0; i < kNumIou; ++i) iou_thrs[i] = i * iou_step + 0.5;
    iou_thrs[kNumIou - 1] = 0.95;
    const double rec_step = 1.0 / (kNumRec - 1);
    for (int i = 0; i < kNumRec; ++i) rec_thrs[i] = i * rec_step + 0.0;
    rec_thrs[kNumRec - 1] = 1.0;
  }
};

// Result of evaluateImg for one (image, category, area range) at maxDets[-1].
struct ImgEval {
  std::vector<double> scores;    // D, score descending
  std::vector<uint8_t> matched;  // T x D
  std::vector<uint8_t> ignored;  // T x D
  int num_gt_not_ignored = 0;
};

// pycocotools maskApi bbIou on xywh boxes, in double.
double bbox_iou(const CocoDetection& d, const GtAnnotation& g) {
  double w = std::fmin(d.w + d.x, g.w + g.x) - std::fmax(d.x, g.x);
  if (w <= 0) return 0.0;
  double h = std::fmin(d.h + d.y, g.h + g.y) - std::fmax(d.y, g.y);
  if (h <= 0) return 0.0;
  double i = w * h;
  double u = g.iscrowd ? d.w * d.h : d.w * d.h + g.w * g.h - i;
  return i / u;
}

ImgEval evaluate_img(const EvalParams& p, const std::vector<const GtAnnotation*>& gts,
                     const std::vector<const CocoDetection*>& dts,  // sorted, truncated
                     const std::vector<double>& ious,               // D x G, gts in given order
                     const std::array<double, 2>& rng) {
  const size_t G = gts.size(), D = dts.size();
  std::vector<uint8_t> g_ignore(G);
  for (size_t g = 0; g < G; ++g)
    g_ignore[g] = gts[g]->iscrowd || gts[g]->area < rng[0] || gts[g]->area > rng[1];
  // GT order: not ignored first (stable).
  std::vector<size_t> gind(G);
  std::iota(gind.begin(), gind.end(), size_t{0});
  std::stable_sort(gind.begin(), gind.end(), [&](size_t a, size_t b) { return g_ignore[a] < g_ignore[b]; });

  ImgEval e;
  e.scores.resize(D);
  for (size_t d = 0; d < D; ++d) e.scores[d] = dts[d]->score;
  e.matched.assign(kNumIou * D, 0);
  e.ignored.assign(kNumIou * D, 0);
  for (size_t g = 0; g < G; ++g) e.num_gt_not_ignored += g_ignore[g] == 0;

  std::vector<uint8_t> gt_matched(G);
  for (int t = 0; t < kNumIou; ++t) {
    std::fill(gt_matched.begin(), gt_matched.end(), 0);
    for (size_t d = 0; d < D && G > 0; ++d) {
      double best = std::min(p.iou_thrs[t], 1 - 1e-10);
      long m = -1;
      for (size_t gi = 0; gi < G; ++gi) {
        const size_t g = gind[gi];
        // A matched non-crowd GT is taken; crowd regions absorb any number of detections.
        if (gt_matched[gi] && !gts[g]->iscrowd) continue;
        // Already matched a regular GT and only ignored ones remain.
        if (m > -1 && !g_ignore[gind[m]] && g_ignore[g]) break;
        double iou = ious[d * G + g];
        if (iou < best) continue;
        best = iou;
        m = static_cast<long>(gi);
      }
      if (m == -1) continue;
      e.ignored[t * D + d] = g_ignore[gind[m]];
      e.matched[t * D + d] = 1;
      gt_matched[m] = 1;
    }
    // Unmatched detections outside the area range are ignored.
    for (size_t d = 0; d < D; ++d) {
      double area = dts[d]->w * dts[d]->h;
      if (!e.matched[t * D + d] && (area < rng[0] || area > rng[1])) e.ignored[t * D + d] = 1;
    }
  }
  return e;
}

}  // namespace

CocoEvaluator::CocoEvaluator(GroundTruth gt) : gt_(std::move(gt)) {
  for (const auto& im : gt_.images) sorted_image_ids_.push_back(im.id);
  std::sort(sorted_image_ids_.begin(), sorted_image_ids_.end());
  sorted_image_ids_.erase(std::unique(sorted_image_ids_.begin(), sorted_image_ids_.end()),
                          sorted_image_ids_.end());
}

Status CocoEvaluator::add_detections(int image_id, const std::vector<Detection>& detections,
                                     const std::vector<int>& class_to_category) {
  QYOLO_ASSIGN_OR_RETURN(auto coco, to_coco_detections(image_id, detections, class_to_category));
  return add_detections(coco);
}

Status CocoEvaluator::add_detections(const std::vector<CocoDetection>& detections) {
  for (const auto& d : detections)
    if (!std::binary_search(sorted_image_ids_.begin(), sorted_image_ids_.end(), d.image_id))
      return invalid_argument("detection for image id " + std::to_string(d.image_id) +
                              ", which is not in the ground truth");
  dets_.insert(dets_.end(), detections.begin(), detections.end());
  return Status::ok();
}

Result<CocoMetrics> CocoEvaluator::evaluate() const {
  const EvalParams p;
  const std::vector<int>& img_ids = sorted_image_ids_;
  std::vector<int> cat_ids;
  for (const auto& c : gt_.categories) cat_ids.push_back(c.id);
  if (gt_.categories.empty())
    for (const auto& a : gt_.annotations) cat_ids.push_back(a.category_id);
  std::sort(cat_ids.begin(), cat_ids.end());
  cat_ids.erase(std::unique(cat_ids.begin(), cat_ids.end()), cat_ids.end());

  const size_t I = img_ids.size(), K = cat_ids.size();
  std::unordered_map<int, size_t> img_index, cat_index;
  for (size_t i = 0; i < I; ++i) img_index[img_ids[i]] = i;
  for (size_t k = 0; k < K; ++k) cat_index[cat_ids[k]] = k;

  // Per category: image index -> (gts, dts) in input order, as COCO._prepare groups them.
  struct Cell {
    std::vector<const GtAnnotation*> gts;
    std::vector<const CocoDetection*> dts;
  };
  std::vector<std::map<size_t, Cell>> cells(K);
  int num_gt = 0;
  for (const auto& a : gt_.annotations) {
    auto ii = img_index.find(a.image_id);
    auto kk = cat_index.find(a.category_id);
    if (ii == img_index.end() || kk == cat_index.end()) continue;
    cells[kk->second][ii->second].gts.push_back(&a);
    ++num_gt;
  }
  for (const auto& d : dets_) {
    auto ii = img_index.find(d.image_id);
    auto kk = cat_index.find(d.category_id);
    if (ii == img_index.end() || kk == cat_index.end()) continue;
    cells[kk->second][ii->second].dts.push_back(&d);
  }

  // prec_mean[t][k][a][m]: precision averaged over recall points; recall[t][k][a][m]; -1 = absent.
  auto idx = [&](int t, size_t k, int a, int m) { return ((t * K + k) * kNumArea + a) * kNumMaxDet + m; };
  std::vector<double> prec_mean(kNumIou * K * kNumArea * kNumMaxDet, -1.0);
  std::vector<double> recall(prec_mean.size(), -1.0);
  std::vector<std::vector<double>> pr50(K);  // precision at IoU .50, area all, maxDets 100
  const int max_det_last = p.max_dets[kNumMaxDet - 1];

  for (size_t k = 0; k < K; ++k) {
    // evaluate(): one ImgEval per (area, image) with gt or dt; images in id order.
    std::array<std::vector<ImgEval>, kNumArea> evals;
    for (auto& [i, cell] : cells[k]) {
      std::vector<const CocoDetection*> dts = cell.dts;
      std::stable_sort(dts.begin(), dts.end(),
                       [](const CocoDetection* a, const CocoDetection* b) { return a->score > b->score; });
      if (dts.size() > static_cast<size_t>(max_det_last)) dts.resize(static_cast<size_t>(max_det_last));
      const size_t G = cell.gts.size(), D = dts.size();
      std::vector<double> ious(D * G);
      for (size_t d = 0; d < D; ++d)
        for (size_t g = 0; g < G; ++g) ious[d * G + g] = bbox_iou(*dts[d], *cell.gts[g]);
      for (int a = 0; a < kNumArea; ++a)
        evals[a].push_back(evaluate_img(p, cell.gts, dts, ious, p.area_rngs[a]));
    }
    // accumulate()
    for (int a = 0; a < kNumArea; ++a) {
      const auto& E = evals[a];
      if (E.empty()) continue;
      int npig = 0;
      for (const auto& e : E) npig += e.num_gt_not_ignored;
      if (npig == 0) continue;
      for (int m = 0; m < kNumMaxDet; ++m) {
        const size_t max_det = static_cast<size_t>(p.max_dets[m]);
        // Concatenate each image's top max_det detections, then stable sort by score.
        struct Ref {
          double score;
          const ImgEval* e;
          size_t d;
        };
        std::vector<Ref> refs;
        for (const auto& e : E)
          for (size_t d = 0; d < std::min(max_det, e.scores.size()); ++d)
            refs.push_back({e.scores[d], &e, d});
        std::stable_sort(refs.begin(), refs.end(),
                         [](const Ref& l, const Ref& r) { return l.score > r.score; });
        const size_t nd = refs.size();
        std::vector<double> rc(nd), pr(nd);
        for (int t = 0; t < kNumIou; ++t) {
          double tp = 0, fp = 0;
          for (size_t j = 0; j < nd; ++j) {
            const size_t D = refs[j].e->scores.size();
            const size_t at = t * D + refs[j].d;
            if (!refs[j].e->ignored[at]) (refs[j].e->matched[at] ? tp : fp) += 1;
            rc[j] = tp / npig;
            pr[j] = tp / (fp + tp + std::numeric_limits<double>::epsilon());
          }
          recall[idx(t, k, a, m)] = nd ? rc[nd - 1] : 0.0;
          // Precision envelope: non-increasing from the right.
          for (size_t j = nd; j-- > 1;)
            if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
          double sum = 0;
          const bool keep_curve = t == 0 && a == 0 && m == kNumMaxDet - 1;
          if (keep_curve) pr50[k].assign(kNumRec, 0.0);
          for (int r = 0; r < kNumRec; ++r) {
            // np.searchsorted(rc, recThrs, side='left'); recall points past the end count 0.
            size_t j =
                static_cast<size_t>(std::lower_bound(rc.begin(), rc.end(), p.rec_thrs[r]) - rc.begin());
            if (j < nd) sum += pr[j];
            if (keep_curve && j < nd) pr50[k][r] = pr[j];
          }
          prec_mean[idx(t, k, a, m)] = sum / kNumRec;
        }
      }
    }
  }

  // summarize(): mean over valid (> -1) entries.
  auto mean_of = [&](const std::vector<double>& v, int t_only, int a, int m) {
    double sum = 0;
    size_t n = 0;
    for (int t = 0; t < kNumIou; ++t) {
      if (t_only >= 0 && t != t_only) continue;
      for (size_t k = 0; k < K; ++k) {
        double x = v[idx(t, k, a, m)];
        if (x > -1) sum += x, ++n;
      }
    }
    return n ? sum / static_cast<double>(n) : -1.0;
  };
  const int m100 = kNumMaxDet - 1;
  CocoMetrics r;
  r.map = mean_of(prec_mean, -1, 0, m100);
  r.map50 = mean_of(prec_mean, 0, 0, m100);
  r.map75 = mean_of(prec_mean, 5, 0, m100);  // iouThrs[5] == .75
  r.map_small = mean_of(prec_mean, -1, 1, m100);
  r.map_medium = mean_of(prec_mean, -1, 2, m100);
  r.map_large = mean_of(prec_mean, -1, 3, m100);
  r.ar1 = mean_of(recall, -1, 0, 0);
  r.ar10 = mean_of(recall, -1, 0, 1);
  r.ar100 = mean_of(recall, -1, 0, m100);
  r.ar_small = mean_of(recall, -1, 1, m100);
  r.ar_medium = mean_of(recall, -1, 2, m100);
  r.ar_large = mean_of(recall, -1, 3, m100);
  for (size_t k = 0; k < K; ++k) {
    double ap = -1;
    if (prec_mean[idx(0, k, 0, m100)] > -1) {
      ap = 0;
      for (int t = 0; t < kNumIou; ++t) ap += prec_mean[idx(t, k, 0, m100)];
      ap /= kNumIou;
    }
    r.per_class_ap.emplace_back(cat_ids[k], ap);
    r.per_class_ap50.emplace_back(cat_ids[k], prec_mean[idx(0, k, 0, m100)]);
  }
  r.per_class_pr50 = std::move(pr50);
  r.num_images = static_cast<int>(I);
  r.num_gt = num_gt;
  r.num_dets = static_cast<int>(dets_.size());
  return r;
}

std::string format_summary(const CocoMetrics& m) {
  struct Line {
    bool ap;
    const char* iou;
    const char* area;
    int max_dets;
    double value;
  };
  const Line lines[] = {
      {true, "0.50:0.95", "all", 100, m.map},
      {true, "0.50", "all", 100, m.map50},
      {true, "0.75", "all", 100, m.map75},
      {true, "0.50:0.95", "small", 100, m.map_small},
      {true, "0.50:0.95", "medium", 100, m.map_medium},
      {true, "0.50:0.95", "large", 100, m.map_large},
      {false, "0.50:0.95", "all", 1, m.ar1},
      {false, "0.50:0.95", "all", 10, m.ar10},
      {false, "0.50:0.95", "all", 100, m.ar100},
      {false, "0.50:0.95", "small", 100, m.ar_small},
      {false, "0.50:0.95", "medium", 100, m.ar_medium},
      {false, "0.50:0.95", "large", 100, m.ar_large},
  };
  std::string out;
  char buf[160];
  for (const Line& l : lines) {
    // ' {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}'
    std::snprintf(buf, sizeof(buf), " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %0.3f\n",
                  l.ap ? "Average Precision" : "Average Recall", l.ap ? "(AP)" : "(AR)", l.iou, l.area,
                  l.max_dets, l.value);
    out += buf;
  }
  return out;
}

}  // namespace qyolo
