#!/usr/bin/env python3
"""Runs qyolo's exported Q/DQ ONNX in ONNX Runtime on the letterboxed bus.jpg and compares the
detections with qyolo's own INT8 engine (detections.json from `qyolo detect --int8`).

usage: ort_check.py QDQ.onnx BUS_INPUT.npy QYOLO_DETECTIONS.json [ORT_QDQ_MODEL.onnx]
Prints a table; exits 1 if the detections differ: another count or class, IoU < 0.95 or a score
differing by more than 0.02 (two int8 implementations round a few activations differently, and the
differences propagate; the numbers are printed either way)."""
import json
import sys

import numpy as np
import onnxruntime as ort


def nms(boxes, scores, iou_thres):
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        yy1 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        xx2 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        yy2 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
        iou = inter / (area(boxes[i]) + area(boxes[order[1:]]) - inter)
        order = order[1:][iou <= iou_thres]
    return keep


def detect(out, conf=0.25, iou=0.45):
    p = out[0]
    p = p[p[:, 4] > conf]
    cls_conf = p[:, 5:] * p[:, 4:5]
    j = cls_conf.argmax(1)
    s = cls_conf[np.arange(len(p)), j]
    m = s > conf
    p, j, s = p[m], j[m], s[m]
    b = np.stack([p[:, 0] - p[:, 2] / 2, p[:, 1] - p[:, 3] / 2, p[:, 0] + p[:, 2] / 2, p[:, 1] + p[:, 3] / 2], 1)
    keep = nms(b + j[:, None] * 7680.0, s, iou)
    return b[keep], s[keep], j[keep]


def to_original(b, w=810, h=1080, size=640):
    r = min(size / h, size / w)
    new_w, new_h = round(w * r), round(h * r)
    left, top = round((size - new_w) / 2 - 0.1), round((size - new_h) / 2 - 0.1)
    b = b.copy()
    b[:, [0, 2]] = np.clip((b[:, [0, 2]] - left) / r, 0, w)
    b[:, [1, 3]] = np.clip((b[:, [1, 3]] - top) / r, 0, h)
    return b


def main():
    qdq, inp, ours_json = sys.argv[1:4]
    x = np.load(inp).astype(np.float32)
    so = ort.SessionOptions()
    so.log_severity_level = 3  # no per-initializer warnings
    sess = ort.InferenceSession(qdq, so, providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    boxes, scores, classes = detect(out)
    boxes = to_original(boxes)
    ours = json.load(open(ours_json))["results"][0]["detections"]
    print(f"ONNX Runtime {ort.__version__} on {qdq}: {len(boxes)} detections; qyolo INT8: {len(ours)}")
    print(f"{'#':>2} {'class':>5} {'ORT score':>9} {'qyolo':>9} {'max box diff px':>16} {'IoU':>6}")
    ok = len(boxes) == len(ours)
    for i, d in enumerate(ours):
        if i >= len(boxes):
            break
        ours_box = np.array(d["box_xyxy"])
        diff = float(np.abs(boxes[i] - ours_box).max())
        ix = max(0.0, min(boxes[i, 2], ours_box[2]) - max(boxes[i, 0], ours_box[0]))
        iy = max(0.0, min(boxes[i, 3], ours_box[3]) - max(boxes[i, 1], ours_box[1]))
        area = lambda b: (b[2] - b[0]) * (b[3] - b[1])
        iou = ix * iy / (area(boxes[i]) + area(ours_box) - ix * iy)
        same = classes[i] == d["class_id"] and iou >= 0.95 and abs(scores[i] - d["score"]) <= 0.02
        ok &= bool(same)
        print(f"{i:>2} {classes[i]:>5} {scores[i]:>9.4f} {d['score']:>9.4f} {diff:>16.2f} {iou:>6.3f}"
              f"{'' if same else '  <-- differs'}")
    print("ORT vs qyolo INT8 detections:", "MATCH" if ok else "DIFFER")
    if len(sys.argv) > 4:
        try:
            s2 = ort.InferenceSession(sys.argv[4], so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - report, don't fail the check
            print(f"ORT cannot load {sys.argv[4]}: {str(e).splitlines()[0][:300]}")
            return 0 if ok else 1
        o2 = s2.run(None, {s2.get_inputs()[0].name: x})[0]
        print(f"ORT on {sys.argv[4]}: max objectness {o2[0, :, 4].max():.4f}, distinct score values "
              f"{np.unique(o2[0, :, 4]).size}, detections at conf 0.25: {len(detect(o2)[0])}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
