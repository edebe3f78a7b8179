// qyolo public API — COCO mAP of an engine on a dataset folder (what `qyolo eval` prints), with
// the numbers behind a report: per-class AP, precision-recall curves and a confusion matrix.
//
//   auto ev = qyolo::evaluate(engine, "../shared/data/val500", {});
//   std::printf("mAP50-95 %.4f\n", ev->map);
//
// A dataset folder holds images/ plus instances.json (COCO) or labels/ (YOLO txt). Metrics are
// pycocotools COCOeval(iouType='bbox') numbers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qyolo/engine.h"
#include "qyolo/status.h"

namespace qyolo {

struct EvaluateOptions {
  int input_h = 0, input_w = 0;  // letterbox size; 0: the engine's own (see DetectOptions)
  int batch = 0;                 // 0: 8 on cuda engines (within the profile), 1 on the CPU
  int limit = 0;                 // evaluate only the first N images by file name (0: all)
  float conf = 0.001f;           // ultralytics val.py
  float iou = -1.f;              // < 0: 0.65 for heads with objectness (YOLOv5, YOLOX), 0.7 without
  int max_det = 300;
  std::string head;         // DetectOptions::head
  bool gpu_prepost = true;  // DetectOptions::gpu_prepost
  // The confusion matrix counts detections above matrix_conf matched to ground truth at IoU above
  // matrix_iou (ultralytics ConfusionMatrix's defaults).
  float matrix_conf = 0.25f, matrix_iou = 0.45f;
  // Writes the detections as a COCO results json here ("" : not written).
  std::string save_results;
  // Called after each batch with (images done, images in all).
  std::function<void(size_t done, size_t total)> progress;
};

struct ClassEvaluation {
  int category_id = 0;
  std::string name;
  int num_gt = 0;             // ground-truth boxes (not crowd)
  double ap = -1, ap50 = -1;  // -1: no ground truth of this class
  // COCO's interpolated precision at IoU 0.50 on Evaluation::recall_points (-1 where absent).
  std::vector<double> precision50;
};

struct Evaluation {
  std::string data;
  int images = 0, num_gt = 0, num_dets = 0;
  double map = -1, map50 = -1, map75 = -1, map_small = -1, map_medium = -1, map_large = -1;
  double ar1 = -1, ar10 = -1, ar100 = -1, ar_small = -1, ar_medium = -1, ar_large = -1;
  std::string summary;                   // pycocotools' 12-line summary
  std::vector<ClassEvaluation> classes;  // every category of the dataset, by id
  std::vector<double> recall_points;     // 0, 0.01, ..., 1
  std::vector<double> precision50;       // mean over classes with ground truth

  // Confusion matrix (ultralytics layout): confusion[p][t] counts detections of class p matched to
  // ground truth of class t; index classes.size() is "background" (row: missed ground truth,
  // column: detections matching nothing).
  std::vector<std::vector<int64_t>> confusion;

  // The model run (empty / 0 when the detections came from results files).
  std::string model, device, prepost_device, precision, calibration, head;
  bool float_outputs = false;  // BuildOptions::float_outputs (a Q/DQ model's outputs computed in float)
  int batch = 0, input_h = 0, input_w = 0;
  float conf = 0, iou = 0;
  double images_per_s = 0, setup_ms = 0;
  double decode_ms = 0, pre_ms = 0, network_ms = 0, post_ms = 0;  // per image
  std::vector<std::string> results_files;                         // evaluate_results's files
};

// Runs `engine` (a detector) over the dataset's images.
Result<Evaluation> evaluate(const std::shared_ptr<const Engine>& engine, const std::string& data,
                            const EvaluateOptions& options = {});

// Evaluates saved detections (COCO results json files, e.g. from save_results; several files merge
// when they cover different images). Only limit, matrix_conf and matrix_iou of `options` apply.
Result<Evaluation> evaluate_results(const std::vector<std::string>& results_files, const std::string& data,
                                    const EvaluateOptions& options = {});

}  // namespace qyolo
