#include "eval/confusion_matrix.h"

#include <algorithm>
#include <map>
#include <unordered_map>

namespace qyolo {

namespace {
double iou_xywh(double ax, double ay, double aw, double ah, double bx, double by, double bw, double bh) {
  const double w = std::min(ax + aw, bx + bw) - std::max(ax, bx);
  const double h = std::min(ay + ah, by + bh) - std::max(ay, by);
  if (w <= 0 || h <= 0) return 0;
  const double inter = w * h;
  return inter / (aw * ah + bw * bh - inter);
}
}  // namespace

std::vector<std::vector<int64_t>> confusion_matrix(const GroundTruth& gt,
                                                   const std::vector<CocoDetection>& dets, float conf,
                                                   float iou) {
  const size_t nc = gt.categories.size();
  std::unordered_map<int, size_t> index;
  for (size_t k = 0; k < nc; ++k) index[gt.categories[k].id] = k;
  std::vector<std::vector<int64_t>> m(nc + 1, std::vector<int64_t>(nc + 1, 0));

  struct Item {
    const GtAnnotation* gt = nullptr;
    const CocoDetection* det = nullptr;
    size_t cls = 0;
  };
  std::map<int, std::vector<Item>> gts, dts;  // by image id
  for (const auto& a : gt.annotations) {
    auto it = index.find(a.category_id);
    if (a.iscrowd || it == index.end()) continue;
    gts[a.image_id].push_back({&a, nullptr, it->second});
  }
  for (const auto& d : dets) {
    auto it = index.find(d.category_id);
    if (d.score <= conf || it == index.end()) continue;
    dts[d.image_id].push_back({nullptr, &d, it->second});
  }
  std::vector<int> image_ids;
  for (const auto& im : gt.images) image_ids.push_back(im.id);
  for (int id : image_ids) {
    const auto& g = gts[id];
    const auto& d = dts[id];
    // Candidate pairs above the IoU threshold, best first, taken greedily one-to-one.
    struct Pair {
      double iou;
      size_t gi, di;
    };
    std::vector<Pair> pairs;
    for (size_t gi = 0; gi < g.size(); ++gi)
      for (size_t di = 0; di < d.size(); ++di) {
        const auto& a = *g[gi].gt;
        const auto& b = *d[di].det;
        const double v = iou_xywh(a.x, a.y, a.w, a.h, b.x, b.y, b.w, b.h);
        if (v > iou) pairs.push_back({v, gi, di});
      }
    std::stable_sort(pairs.begin(), pairs.end(), [](const Pair& x, const Pair& y) { return x.iou > y.iou; });
    std::vector<char> det_used(d.size(), 0), gt_used(g.size(), 0);
    std::vector<long> gt_match(g.size(), -1);
    for (const auto& p : pairs) {
      if (det_used[p.di] || gt_used[p.gi]) continue;
      det_used[p.di] = gt_used[p.gi] = 1;
      gt_match[p.gi] = static_cast<long>(p.di);
    }
    for (size_t gi = 0; gi < g.size(); ++gi) {
      if (gt_match[gi] >= 0)
        ++m[d[static_cast<size_t>(gt_match[gi])].cls][g[gi].cls];
      else
        ++m[nc][g[gi].cls];  // missed: background row
    }
    for (size_t di = 0; di < d.size(); ++di)
      if (!det_used[di]) ++m[d[di].cls][nc];  // false positive: background column
  }
  return m;
}

}  // namespace qyolo
