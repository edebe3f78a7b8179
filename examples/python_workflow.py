#!/usr/bin/env python3
"""qyolo's whole INT8 workflow from Python, the way TensorRT PTQ scripts go:

  1. a polygraphy-style data loader (a load_data() generator of {input_name: batch}) feeds an
     EntropyCalibrator2, which writes a TensorRT calibration cache;
  2. build an INT8 engine with it, save it, load it back;
  3. run it on a numpy batch, detect objects in an image;
  4. evaluate FP32 and INT8 on a dataset (COCO mAP, per-class AP).

Run from the repository root after the build (README):
  PYTHONPATH=build/python:python /usr/bin/python3 examples/python_workflow.py [--limit 50]
"""

import argparse
import os
import pathlib
import tempfile

import numpy as np

import qyolo

SHARED = pathlib.Path(os.environ.get("QYOLO_SHARED", "../shared"))


def load_data(num_images=32, batch=8, imgsz=640):
    """polygraphy's data loader convention: yields {input_name: float32 N x 3 x H x W}. Here the
    coco128 images go through qyolo's letterbox; any pre-processed batches would do."""
    files = sorted((SHARED / "data" / "coco128" / "images").glob("*.jpg"))[:num_images]
    for start in range(0, len(files), batch):
        images = [qyolo.load_image(f) for f in files[start:start + batch]]
        yield {"images": qyolo.preprocess(images, imgsz)[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(SHARED / "models" / "yolov5n.onnx"))
    ap.add_argument("--data", default=str(SHARED / "data" / "val500"), help="evaluation dataset")
    ap.add_argument("--calib-images", type=int, default=32)
    ap.add_argument("--limit", type=int, default=50, help="images to evaluate (0: all)")
    ap.add_argument("--out", default=tempfile.mkdtemp(prefix="qyolo_example_"))
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1-2. Calibrate with the loader, build INT8, save, load.
    calibrator = qyolo.EntropyCalibrator2(load_data(args.calib_images), cache=out / "model.cache")
    engine = qyolo.build(args.model, precision="int8", calibrator=calibrator)
    print("calibrated:", calibrator.summary)
    path = engine.save(out / "model-int8.qengine")
    engine = qyolo.load(path)
    print("loaded:", engine)

    # 3. Raw inference on a numpy batch, then detection on an image file.
    batch = next(load_data(1, 1))["images"]
    outputs = engine.create_context().infer(batch)
    print("infer:", {k: v.shape for k, v in outputs.items()})
    detections = qyolo.Detector(engine, conf=0.25, iou=0.45).detect(SHARED / "data" / "samples" / "bus.jpg")
    for box, score, cls in detections:
        print(f"  {detections.name(int(cls)):<12} {score:.2f}  {np.round(box).astype(int).tolist()}")

    # 4. COCO mAP of FP32 and INT8 on the same images (the numbers `qyolo eval` prints).
    fp32 = qyolo.evaluate(args.model, args.data, limit=args.limit)
    int8 = qyolo.evaluate(engine, args.data, limit=args.limit)
    print(f"mAP50-95 on {int8['images']} images of {args.data}: FP32 {fp32['map50_95']:.4f}, "
          f"INT8 {int8['map50_95']:.4f} ({int8['map50_95'] - fp32['map50_95']:+.4f})")
    worst = sorted(int8["per_class"], key=lambda n: int8["per_class"][n]["ap"] - fp32["per_class"][n]["ap"])[:3]
    print("largest per-class AP drops:",
          ", ".join(f"{n} {int8['per_class'][n]['ap'] - fp32['per_class'][n]['ap']:+.3f}" for n in worst))


if __name__ == "__main__":
    main()
