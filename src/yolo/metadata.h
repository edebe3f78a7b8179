// qyolo — the ONNX metadata ultralytics writes into its exports (exporter.py: `description`,
// `author`, `version`, `task`, `stride`, `batch`, `imgsz`, `names`, `kpt_shape`, ...), parsed from
// the Python literals it stores (str(dict), str(list), str(int)).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qyolo/status.h"

namespace qyolo {

struct UltralyticsMetadata {
  std::vector<std::string> names;  // index = class id; ids missing from the dict are ""
  std::optional<int> stride;       // the largest head stride (ultralytics stores max(model.stride))
  std::optional<std::array<int64_t, 2>> imgsz;  // (H, W)
  std::string task;                // "detect", "segment", "pose", "classify", "obb"; "" when absent
  std::vector<int64_t> kpt_shape;  // pose models: [keypoints, dims]
};

// Parses what qyolo uses from a model's metadata_props. Fields that are absent stay empty. The
// metadata is advisory (the model runs without it): a field that is present but unreadable is left
// empty too, and described in `problems` (key, text, why) when given.
UltralyticsMetadata parse_ultralytics_metadata(const std::map<std::string, std::string>& metadata,
                                               std::vector<std::string>* problems = nullptr);

// Class names from ultralytics' `names`: a Python dict literal "{0: 'person', 1: \"men's\"}" (string
// escapes honoured) or a list literal "['person', 'bicycle']". Errors on anything else.
Result<std::vector<std::string>> parse_names_literal(const std::string& text);

// `imgsz`: "[640, 640]" (H, W), "[640]" or "640" (square).
Result<std::array<int64_t, 2>> parse_imgsz_literal(const std::string& text);

// qyolo detects objects: task "detect" (or no task, as YOLOv5 exports have none) is fine; any other
// ultralytics task is an error naming it and what is supported. `source` names the model file.
Status check_detect_task(const std::string& task, const std::string& source);

}  // namespace qyolo
