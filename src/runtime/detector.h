// The Detector is public: include/qyolo/detector.h.
#pragma once

#include "image/image.h"
#include "image/letterbox.h"
#include "qyolo/detector.h"
#include "yolo/postprocess.h"
