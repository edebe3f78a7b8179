// qyolo — COCO bbox evaluation, equivalent to pycocotools COCOeval(iouType='bbox'):
// IoU thresholds .50:.05:.95, 101 recall points, maxDets 1/10/100, area ranges
// all/small/medium/large, crowd handling and greedy matching in pycocotools order.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "qyolo/status.h"
#include "yolo/detection.h"

namespace qyolo {

struct GtImage {
  int id = 0;
  std::string file_name;
  int width = 0, height = 0;
};

struct GtAnnotation {
  int64_t id = 0;  // informational; matching does not depend on it. COCO's crowd annotations use
                   // ids past 2^31 (900100000257 in val2017 and coco128)
  int image_id = 0;
  int category_id = 0;
  double x = 0, y = 0, w = 0, h = 0;  // bbox xywh, pixels
  double area = 0;                    // decides the area range (COCO: segment area)
  bool iscrowd = false;
};

struct GtCategory {
  int id = 0;
  std::string name;
};

struct GroundTruth {
  std::vector<GtImage> images;
  std::vector<GtAnnotation> annotations;
  std::vector<GtCategory> categories;  // evaluated categories
};

// COCO instances json: images (id, file_name, width, height), annotations (id, image_id,
// category_id, bbox xywh, area [default w*h], iscrowd [default 0]), categories (id, name).
Result<GroundTruth> load_coco_json(const std::string& path);

// Returns (width, height) of an image file.
using ImageSizeFn = std::function<Result<std::pair<int, int>>(const std::string& image_path)>;

// YOLO labels: every image in images_dir (jpg/jpeg/png/bmp/webp, sorted by name) with its
// labels_dir/<stem>.txt of "class cx cy w h" (normalized) lines; a missing label file means no
// objects. category_id = class index, area = w*h in pixels. Image ids are the numeric stems
// (COCO style, 000000000139 -> 139) when every stem is numeric, else 1..N in name order.
Result<GroundTruth> load_yolo_labels(const std::string& images_dir, const std::string& labels_dir,
                                     const ImageSizeFn& image_size);

// COCO category id (1..90 with gaps) of each of the 80 contiguous class indices.
const std::vector<int>& coco80_to_coco91();

// One entry of a COCO results file.
struct CocoDetection {
  int image_id = 0;
  int category_id = 0;
  double x = 0, y = 0, w = 0, h = 0;  // bbox xywh, original-image pixels
  double score = 0;
};

// Detections of one image; class_to_category maps class_id -> category id (empty = identity).
Result<std::vector<CocoDetection>> to_coco_detections(int image_id, const std::vector<Detection>& detections,
                                                      const std::vector<int>& class_to_category = {});

// Standard COCO results list [{image_id, category_id, bbox, score}], written atomically.
Status write_coco_results_json(const std::string& path, const std::vector<CocoDetection>& detections);
Result<std::vector<CocoDetection>> load_coco_results_json(const std::string& path);

// Merges COCO results files, e.g. halves of a dataset evaluated on different machines, in file
// order. Errors (naming the files): a file given twice; an image with detections in two files
// (naming the image id and both files); a detection whose image id is not one of gt's images
// (gt_name describes the ground truth in that message). Category ids are not checked: as in
// pycocotools, detections of categories absent from the ground truth are not evaluated.
Result<std::vector<CocoDetection>> load_coco_results_files(const std::vector<std::string>& paths,
                                                           const GroundTruth& gt,
                                                           const std::string& gt_name = "the ground truth");

struct CocoMetrics {
  double map = -1, map50 = -1, map75 = -1, map_small = -1, map_medium = -1, map_large = -1;
  double ar1 = -1, ar10 = -1, ar100 = -1, ar_small = -1, ar_medium = -1, ar_large = -1;
  // category id -> AP (area all, maxDets 100); -1 for categories without ground truth.
  std::vector<std::pair<int, double>> per_class_ap;    // IoU .50:.95
  std::vector<std::pair<int, double>> per_class_ap50;  // IoU .50
  // Per category (same order): the interpolated precision at IoU .50 on the 101 recall points
  // (area all, maxDets 100; COCOeval's eval['precision'][0, :, k, 0, 2]); empty without ground truth.
  std::vector<std::vector<double>> per_class_pr50;
  int num_images = 0, num_gt = 0, num_dets = 0;
};

// The 12-line pycocotools summary (" Average Precision  (AP) @[ IoU=0.50:0.95 | ...").
std::string format_summary(const CocoMetrics& metrics);

class CocoEvaluator {
 public:
  explicit CocoEvaluator(GroundTruth gt);

  // Adds detections in original-image pixels. Errors for an image id absent from the ground
  // truth or a class id outside class_to_category (empty = identity). Detections of categories
  // absent from the ground truth are kept but not evaluated, as in pycocotools.
  Status add_detections(int image_id, const std::vector<Detection>& detections,
                        const std::vector<int>& class_to_category = {});
  Status add_detections(const std::vector<CocoDetection>& detections);

  Result<CocoMetrics> evaluate() const;

  const GroundTruth& ground_truth() const { return gt_; }
  const std::vector<CocoDetection>& detections() const { return dets_; }

 private:
  GroundTruth gt_;
  std::vector<int> sorted_image_ids_;
  std::vector<CocoDetection> dets_;
};

}  // namespace qyolo
