// qyolo — the whole public API in one include.
//
//   #include <qyolo/qyolo.h>
//   auto engine = qyolo::Engine::build("yolov5s.onnx", {});           // or Engine::load("m.qengine")
//   auto detector = qyolo::Detector::create(*engine, {});
//   auto image = qyolo::load_image("bus.jpg");
//   auto dets = (*detector)->detect({&*image});                       // original-image pixels
#pragma once

#include "qyolo/calibration.h"
#include "qyolo/detection.h"
#include "qyolo/detector.h"
#include "qyolo/engine.h"
#include "qyolo/evaluate.h"
#include "qyolo/image.h"
#include "qyolo/status.h"
#include "qyolo/tensor.h"
