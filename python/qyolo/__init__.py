"""qyolo from Python: build INT8/FP16/FP32 engines for YOLO detectors, run them on numpy arrays,
calibrate from any iterable of batches, detect and evaluate.

    import qyolo
    cal = qyolo.EntropyCalibrator2("../shared/data/coco128", cache="yolov5n.cache")
    engine = qyolo.build("yolov5n.onnx", precision="int8", calibrator=cal)
    engine.save("yolov5n-int8.qengine")
    ctx = qyolo.load("yolov5n-int8.qengine").create_context()
    outputs = ctx.infer(batch)                      # {"output0": ndarray}
    dets = qyolo.Detector(engine).detect("bus.jpg")  # dets.boxes, dets.scores, dets.classes
    print(qyolo.evaluate(engine, "../shared/data/val500")["map50_95"])

The compiled part is the `_qyolo` extension (build/python after the CMake build); run with
PYTHONPATH=build/python:python.
"""

from .errors import (QyoloError, InvalidArgumentError, NotFoundError, CorruptError, UnsupportedError,
                     VersionMismatchError, IoError, InternalError, DeviceError)
from .engine import Engine, ExecutionContext, build, load
from .calibrators import (Calibrator, EntropyCalibrator2, MinMaxCalibrator, PercentileCalibrator,
                          MseCalibrator)
from .detector import Detector, Detections, load_image, preprocess
from .evaluate import evaluate, evaluate_results

__version__ = __import__("_qyolo").__version__

__all__ = [
    "build", "load", "Engine", "ExecutionContext",
    "Calibrator", "EntropyCalibrator2", "MinMaxCalibrator", "PercentileCalibrator", "MseCalibrator",
    "Detector", "Detections", "load_image", "preprocess", "evaluate", "evaluate_results",
    "QyoloError", "InvalidArgumentError", "NotFoundError", "CorruptError", "UnsupportedError",
    "VersionMismatchError", "IoError", "InternalError", "DeviceError",
]
