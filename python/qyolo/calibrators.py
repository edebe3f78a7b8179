"""INT8 calibrators in TensorRT's shape: a class per algorithm, fed by data, with a cache file.

    cal = qyolo.EntropyCalibrator2(batches, cache="model.cache")   # any iterable of batches
    cal = qyolo.MinMaxCalibrator("../shared/data/coco128")          # an image folder (our letterbox)
    engine = qyolo.build("model.onnx", precision="int8", calibrator=cal)

`data` is an image folder (or a dataset folder with images/), a .npy file (float32 N x 3 x H x W,
or uint8 N x H x W x 3 images), or any iterable of batches: float32 N x 3 x H x W arrays already
pre-processed, or {input_name: array} dicts as polygraphy data loaders yield. Like TensorRT's
calibrators, an existing cache file is read instead of calibrating again (read_cache=False
recalibrates), and a new one is written there.
"""

import os

import numpy as np

import _qyolo

__all__ = ["Calibrator", "EntropyCalibrator2", "MinMaxCalibrator", "PercentileCalibrator", "MseCalibrator"]


class Calibrator:
    """Base class; use one of the algorithm classes below."""

    algorithm = None

    def __init__(self, data, cache=None, batch_size=8, num_images=None, imgsz=None, read_cache=True):
        self.data = data
        self.cache = os.fspath(cache) if cache is not None else None
        self.batch_size = batch_size
        self.num_images = num_images
        self.imgsz = imgsz
        self.read_cache = read_cache
        self.summary = None  # the last calibration's numbers (images, tensors, seconds, ...)

    # TensorRT IInt8Calibrator's cache methods.
    def read_calibration_cache(self):
        """The cache file's bytes, or None when it does not exist (or read_cache is False)."""
        if not self.read_cache or not self.cache or not os.path.exists(self.cache):
            return None
        with open(self.cache, "rb") as f:
            return f.read()

    def write_calibration_cache(self, cache):
        with open(self.cache, "wb") as f:
            f.write(cache)

    def _settings(self):
        return {"algorithm": self.algorithm, "percentile": getattr(self, "percentile", 99.99)}

    def _batches(self, input_name):
        """The iterable's batches as float32 arrays (dicts reduced to the model's input)."""
        for i, item in enumerate(self.data):
            if isinstance(item, dict):
                if input_name in item:
                    item = item[input_name]
                elif len(item) == 1:
                    item = next(iter(item.values()))
                else:
                    raise _qyolo.InvalidArgumentError(
                        f"calibration batch {i} has inputs {sorted(item)}, none of them the model's "
                        f"input '{input_name}'")
            yield np.asarray(item, dtype=np.float32)

    def _npy_batches(self, array, imgsz):
        if array.dtype == np.uint8 and array.ndim == 4 and array.shape[3] == 3:
            # RGB images: our letterbox, as inference pre-processes them.
            for start in range(0, len(array), self.batch_size):
                yield _qyolo.preprocess(list(array[start:start + self.batch_size]), imgsz[0], imgsz[1])[0]
        else:
            for start in range(0, len(array), self.batch_size):
                yield array[start:start + self.batch_size]

    def calibrate(self, model, cache=None, profiles=None):
        """Calibrates the FP32 `model` (an ONNX path or an FP32 qyolo.Engine) and writes the cache;
        returns its path. An existing cache is used as is (see read_cache)."""
        from .engine import Engine, build
        cache = os.fspath(cache) if cache is not None else self.cache
        if cache is None:
            raise _qyolo.InvalidArgumentError("no calibration cache path: give cache= to the calibrator")
        self.cache = cache
        if self.read_calibration_cache() is not None:
            return cache
        engine = model if isinstance(model, Engine) else build(model, precision="fp32", profiles=profiles)
        handle = engine._handle
        profile = engine.profile
        h, w = (self.imgsz, self.imgsz) if isinstance(self.imgsz, int) else (self.imgsz or profile[1][2:])
        data = self.data
        if isinstance(data, (str, os.PathLike)) and os.path.isdir(data):
            static = profile[0][0] == profile[2][0]
            batch = profile[1][0] if static else self.batch_size
            self.summary = _qyolo.calibrate_images(
                handle, os.fspath(data), cache, num_images=self.num_images or 128, batch=batch,
                shape=[batch, 3, h, w], **self._settings())
            return cache
        if isinstance(data, (str, os.PathLike)):
            if not os.path.exists(data):
                raise _qyolo.NotFoundError(f"calibration data '{os.fspath(data)}' does not exist")
            if not os.fspath(data).endswith(".npy"):
                raise _qyolo.InvalidArgumentError(
                    f"calibration data '{os.fspath(data)}' is neither a folder of images nor a .npy array")
            batches = self._npy_batches(np.load(data), (h, w))
        else:
            batches = self._batches(engine.input_name)
        self.summary = _qyolo.calibrate_batches(handle, iter(batches), cache, num_images=self.num_images or 0,
                                                **self._settings())
        return cache


class EntropyCalibrator2(Calibrator):
    """TensorRT's IInt8EntropyCalibrator2 (KL divergence); cache header EntropyCalibration2."""
    algorithm = "entropy"


class MinMaxCalibrator(Calibrator):
    """TensorRT's IInt8MinMaxCalibrator (absolute maximum); cache header MinMaxCalibration."""
    algorithm = "minmax"


class PercentileCalibrator(Calibrator):
    """The `percentile` of |x| (default 99.99); cache header PercentileCalibration."""
    algorithm = "percentile"

    def __init__(self, data, cache=None, percentile=99.99, **kwargs):
        super().__init__(data, cache=cache, **kwargs)
        self.percentile = percentile


class MseCalibrator(Calibrator):
    """The threshold of least quantisation mean squared error; cache header MseCalibration."""
    algorithm = "mse"
