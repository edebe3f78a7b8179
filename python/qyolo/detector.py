"""Detector: images in (paths or numpy arrays), boxes in original-image pixels out."""

import os

import numpy as np

import _qyolo

from .engine import Engine, build, load

__all__ = ["Detector", "Detections", "load_image", "preprocess"]


class Detections:
    """One image's detections: boxes (N x 4 float32, x1 y1 x2 y2 in original-image pixels),
    scores (N float32), classes (N int64); names maps class ids to the model's class names."""

    def __init__(self, rows, names=()):
        rows = np.asarray(rows, dtype=np.float32).reshape(-1, 6)
        self.boxes = rows[:, :4]
        self.scores = rows[:, 4]
        self.classes = rows[:, 5].astype(np.int64)
        self.names = list(names)

    def __len__(self):
        return len(self.scores)

    def __iter__(self):
        """(box, score, class) per detection."""
        return zip(self.boxes, self.scores, self.classes)

    def name(self, class_id):
        return self.names[class_id] if 0 <= class_id < len(self.names) else str(class_id)

    def __repr__(self):
        shown = ", ".join(f"{self.name(int(c))} {s:.2f}" for c, s in zip(self.classes[:5], self.scores[:5]))
        more = ", ..." if len(self) > 5 else ""
        return f"Detections({len(self)}: {shown}{more})"


def _engine_of(model, device, precision):
    if isinstance(model, Engine):
        return model
    path = os.fspath(model)
    if path.endswith(".onnx"):
        return build(path, precision=precision, device=device)
    return load(path)


class Detector:
    """Letterbox -> engine -> NMS -> boxes in original-image pixels (the CLI's `qyolo detect`).

    model: a qyolo.Engine, an engine file, or an ONNX file (built with `precision` on `device`).
    conf, iou: NMS thresholds (iou=None: the head's default, 0.45 with objectness, 0.7 without).
    imgsz: letterbox size, int or (h, w); None: the engine's own.
    """

    def __init__(self, model, conf=0.25, iou=None, max_det=300, imgsz=None, agnostic=False, classes=None,
                 multi_label=False, head="", device="cpu", precision="fp32", gpu_prepost=True):
        self.engine = _engine_of(model, device, precision)
        h, w = (imgsz, imgsz) if isinstance(imgsz, int) else (imgsz or (0, 0))
        self._d = _qyolo.Detector(self.engine._handle, conf=conf, iou=-1.0 if iou is None else iou,
                                  max_det=max_det, agnostic=agnostic, multi_label=multi_label,
                                  classes=list(classes or []), input_h=h, input_w=w, head=head,
                                  gpu_prepost=gpu_prepost)
        self.names = self.engine.class_names
        profile = self.engine.profile
        self._max_batch = profile[2][0]

    @property
    def imgsz(self):
        return self._d.imgsz

    @property
    def head(self):
        return self._d.head

    @property
    def times(self):
        """The last call's seconds: setup_s, pre_s, infer_s, post_s."""
        return self._d.times

    def detect(self, source, bgr=True):
        """Detections of one image or of a list of them.

        source: an image path (JPEG/PNG), an H x W x 3 uint8 array, or a list of these. Arrays are
        BGR by default, as cv2.imread returns them and ultralytics takes them; bgr=False for RGB.
        Returns Detections, or a list of Detections for a list.
        """
        single = not isinstance(source, (list, tuple))
        items = [source] if single else list(source)
        images = [load_image(x) if isinstance(x, (str, os.PathLike)) else x for x in items]
        flags = [False if isinstance(x, (str, os.PathLike)) else bgr for x in items]
        out = []
        step = max(1, self._max_batch)
        for start in range(0, len(images), step):
            chunk, chunk_flags = images[start:start + step], flags[start:start + step]
            if any(chunk_flags):  # convert BGR arrays here so one call takes the whole batch
                chunk = [np.ascontiguousarray(im[..., ::-1]) if f else im for im, f in zip(chunk, chunk_flags)]
            out += [Detections(r, self.names) for r in self._d.detect(chunk, bgr=False)]
        return out[0] if single else out

    __call__ = detect


def load_image(path):
    """Decodes a JPEG or PNG file into an H x W x 3 uint8 RGB array (qyolo's decoder)."""
    return _qyolo.load_image(os.fspath(path))


def preprocess(images, imgsz, bgr=False):
    """Letterboxes H x W x 3 uint8 images into a float32 N x 3 x h x w batch, exactly the
    inference pre-processing; returns (batch, [{scale, pad, src_size}])."""
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    return _qyolo.preprocess(list(images), h, w, bgr=bgr)
