"""COCO evaluation: the numbers `qyolo eval` prints, as a dict."""

import os

import _qyolo

from .detector import _engine_of

__all__ = ["evaluate", "evaluate_results"]


def evaluate(model, data, imgsz=None, batch=0, limit=0, conf=0.001, iou=None, max_det=300, head="",
             save_results=None, device="cpu", precision="fp32", gpu_prepost=True):
    """mAP of `model` (a qyolo.Engine, engine file or ONNX file) on a dataset folder (images/ plus
    instances.json or YOLO labels/), with the CLI's defaults (conf 0.001, multi-label NMS, IoU 0.65
    with objectness / 0.7 without).

    Returns a dict: map50_95, map50, map75, map_small/medium/large, ar1/10/100, summary (the
    pycocotools text), per_class {name: {ap, ap50}}, classes [{id, name, num_gt, ap, ap50,
    precision50}], recall and precision50 (the overall PR curve at IoU 0.5), confusion (the
    (nc+1) x (nc+1) matrix, last row/column background), and the run's facts (model, device,
    precision, imgsz, iou, images_per_s, ...).
    """
    engine = _engine_of(model, device, precision)
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else (imgsz or (0, 0))
    return _qyolo.evaluate(engine._handle, os.fspath(data), input_h=h, input_w=w, batch=batch, limit=limit,
                           conf=conf, iou=-1.0 if iou is None else iou, max_det=max_det, head=head,
                           gpu_prepost=gpu_prepost, save_results=os.fspath(save_results) if save_results else "")


def evaluate_results(results, data, limit=0):
    """The same numbers for saved detections: COCO results json file(s)."""
    files = [os.fspath(results)] if isinstance(results, (str, os.PathLike)) else [os.fspath(r) for r in results]
    return _qyolo.evaluate_results(files, os.fspath(data), limit=limit)
