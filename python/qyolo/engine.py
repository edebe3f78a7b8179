"""Engines and execution contexts (TensorRT-like): build or load, save, create_context, infer."""

import os
import tempfile

import _qyolo

__all__ = ["Engine", "ExecutionContext", "build", "load"]


class ExecutionContext:
    """Per-thread state of an engine. infer() releases the GIL while the network runs, so several
    contexts of one engine can run in parallel Python threads."""

    def __init__(self, handle, engine):
        self._ctx = handle
        self.engine = engine

    def infer(self, inputs):
        """Runs one batch. `inputs`: a float32 N x 3 x H x W array (other numeric dtypes are
        converted) or {input_name: array}. Returns {output_name: ndarray} for every output."""
        return self._ctx.infer(inputs)

    __call__ = infer

    def set_input_shape(self, shape):
        self._ctx.set_input_shape(list(shape))

    @property
    def input_shape(self):
        return self._ctx.input_shape

    def bindings(self):
        """[{name, dtype, shape, is_input}] at the current input shape (inputs first)."""
        return self._ctx.bindings()


class Engine:
    """An immutable engine (`qyolo.build` or `qyolo.load`), shareable between threads."""

    def __init__(self, handle):
        self._handle = handle

    @property
    def info(self):
        """Model and build facts: source, input_name, input_dims, output_names, class_names,
        device, precision, calibration_file, profile (min, opt, max), ..."""
        return self._handle.info

    @property
    def precision_plan(self):
        """The precision plan made at build and stored in the engine file: {"float_precision": ...,
        "nodes": {conv name: "fp32" | "fp16" | "int8"}, "tensors": {name: {"storage": "int8" | "float32"
        | "float16", "scale": s, "zero_point": zp}}} (scale > 0: read quantised, real = s * (q - zp);
        zp != 0 on the CPU's asymmetric grids of SiLU outputs, 0 on the symmetric ones)."""
        return self._handle.precision_plan

    @property
    def input_name(self):
        return self.info["input_name"]

    @property
    def output_names(self):
        return self.info["output_names"]

    @property
    def class_names(self):
        return self.info["class_names"]

    @property
    def device(self):
        return self.info["device"]

    @property
    def precision(self):
        return self.info["precision"]

    @property
    def profile(self):
        return self.info["profile"]

    def save(self, path):
        """Writes the engine file atomically; returns the path."""
        self._handle.save(os.fspath(path))
        return path

    def create_context(self):
        return ExecutionContext(self._handle.create_context(), self)

    def __repr__(self):
        i = self.info
        return (f"qyolo.Engine({os.path.basename(i['source'])!r}, device={i['device']!r}, "
                f"precision={i['precision']!r}, profile={i['profile']})")


def _is_shape_list(x):
    """True for a sequence of shapes such as ((1, 3, 320, 320), (1, 3, 640, 640), ...)."""
    return isinstance(x, (list, tuple)) and len(x) > 0 and isinstance(x[0], (list, tuple))


def _profile(profiles):
    """(min, opt, max) shapes from a TensorRT-like profile description: (min, opt, max), a list
    holding one such tuple, {input_name: (min, opt, max)}, or a list holding one such dict."""
    if profiles is None:
        return None
    if isinstance(profiles, list) and len(profiles) > 1 and (
            isinstance(profiles[0], dict) or _is_shape_list(profiles[0])):
        raise _qyolo.InvalidArgumentError(f"profiles: qyolo engines have one profile, got {len(profiles)}")
    if isinstance(profiles, list) and len(profiles) == 1 and (
            isinstance(profiles[0], dict) or _is_shape_list(profiles[0])):
        profiles = profiles[0]
    if isinstance(profiles, dict):
        if len(profiles) != 1:
            raise _qyolo.InvalidArgumentError(
                f"profiles: one input expected (the image input), got {sorted(profiles)}")
        profiles = next(iter(profiles.values()))
    shapes = [list(map(int, s)) for s in profiles]
    if len(shapes) != 3:
        raise _qyolo.InvalidArgumentError(f"profiles: expected (min, opt, max) shapes, got {profiles!r}")
    return shapes


def build(onnx, precision="fp32", calibrator=None, cache=None, profiles=None, device="cpu", fp16=False,
          all_int8=False, float_layers="", float_outputs=False, input_format="float32-nchw"):
    """Builds an engine from an ONNX file.

    precision: "fp32", "fp16" or "int8". INT8 takes its scales from `calibrator` (a
    qyolo.*Calibrator: calibrates the FP32 model first, unless its cache file already exists), or
    from `cache` (a TensorRT calibration cache or PPQ json), or from the model's own Q/DQ nodes.
    fp16=True with int8: FP16 instead of FP32 for what is not INT8 (TensorRT's --int8 --fp16).
    profiles: dynamic models' input shapes, (min, opt, max) or {input_name: (min, opt, max)}.
    device: "cpu" or "cuda".
    float_outputs: models with their own Q/DQ: compute each output that ends in a QuantizeLinear ->
    DequantizeLinear pair in float (`--float-output`; docs/quantized-models.md).
    input_format: "float32-nchw" (the model's input, scaled to [0, 1]) or "uint8-nhwc" (the
    letterboxed bytes, N x H x W x 3 uint8, scaled by the engine: `--input-format`).
    """
    onnx = os.fspath(onnx)
    profile = _profile(profiles)
    if precision not in ("fp32", "fp16", "int8"):
        raise _qyolo.InvalidArgumentError(f"unknown precision '{precision}' (expected fp32, fp16 or int8)")
    if calibrator is not None and precision != "int8":
        raise _qyolo.InvalidArgumentError(f"a calibrator is for precision='int8', not '{precision}'")
    temporary = None
    try:
        if calibrator is not None:
            cache_path = calibrator.cache or (os.fspath(cache) if cache else None)
            if cache_path is None:
                fd, temporary = tempfile.mkstemp(prefix="qyolo_", suffix=".cache")
                os.close(fd)
                os.unlink(temporary)
                cache_path = temporary
            calibrator.calibrate(onnx, cache=cache_path, profiles=profiles)
            cache = cache_path
        handle = _qyolo.build(onnx, precision=precision, device=device,
                              cache=os.fspath(cache) if cache else "", float_layers=float_layers,
                              int8_fp16=bool(fp16 and precision == "int8"), int8_all=all_int8,
                              profile=profile, float_outputs=bool(float_outputs),
                              input_format=input_format)
        return Engine(handle)
    finally:
        if temporary and os.path.exists(temporary):
            os.unlink(temporary)


def load(path):
    """Reads an engine file written by Engine.save (or `qyolo build -o`)."""
    return Engine(_qyolo.load(os.fspath(path)))
