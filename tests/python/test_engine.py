"""Engines from Python: build, infer against PyTorch's output, save/load, errors, the GIL."""

import threading
import time

import numpy as np
import pytest

import qyolo


def test_infer_matches_pytorch_output(shared, fp32_engine):
    x = np.load(shared / "reference" / "bus_input.npy")
    ref = np.load(shared / "reference" / "bus_yolov5n_output0.npy")
    out = fp32_engine.create_context().infer(x)
    assert list(out) == ["output0"]
    assert out["output0"].shape == ref.shape == (1, 25200, 85)
    assert out["output0"].dtype == np.float32
    # Boxes are in input pixels (up to 640), scores in [0, 1].
    np.testing.assert_allclose(out["output0"], ref, atol=2e-3 * 640, rtol=0)
    np.testing.assert_allclose(out["output0"][..., 4:], ref[..., 4:], atol=2e-3, rtol=0)


def test_infer_takes_a_dict_and_float64(shared, fp32_engine):
    x = np.load(shared / "reference" / "bus_input.npy")
    ctx = fp32_engine.create_context()
    a = ctx.infer({"images": x})["output0"]
    b = ctx.infer(x.astype(np.float64))["output0"]
    np.testing.assert_array_equal(a, b)


def test_save_load_round_trip(shared, fp32_engine, tmp_path):
    path = fp32_engine.save(tmp_path / "m.qengine")
    loaded = qyolo.load(path)
    assert loaded.info["input_name"] == "images" and loaded.precision == "fp32"
    assert loaded.profile[1] == (1, 3, 640, 640)
    x = np.load(shared / "reference" / "bus_input.npy")
    np.testing.assert_array_equal(loaded.create_context().infer(x)["output0"],
                                  fp32_engine.create_context().infer(x)["output0"])


def test_errors_are_exceptions_with_the_library_messages(shared, fp32_engine, tmp_path):
    with pytest.raises(qyolo.NotFoundError, match="nope.onnx") as e:
        qyolo.build(tmp_path / "nope.onnx")
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, qyolo.QyoloError)
    with pytest.raises(qyolo.InvalidArgumentError, match="unknown device 'tpu'"):
        qyolo.build(shared / "models" / "yolov5n.onnx", device="tpu")
    ctx = fp32_engine.create_context()
    with pytest.raises(ValueError, match="1x3x320x320"):
        ctx.infer(np.zeros((1, 3, 320, 320), np.float32))
    with pytest.raises(qyolo.InvalidArgumentError, match="'input' is not an input of the model"):
        ctx.infer({"input": np.zeros((1, 3, 640, 640), np.float32)})
    bad = tmp_path / "bad.qengine"
    bad.write_bytes(b"not an engine")
    with pytest.raises(qyolo.QyoloError, match="bad.qengine"):
        qyolo.load(bad)


def test_infer_releases_the_gil(shared, fp32_engine):
    x = np.load(shared / "reference" / "bus_input.npy")
    ctx = fp32_engine.create_context()
    ctx.infer(x)  # set-up outside the measured call
    ticks, stop = [], threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    time.sleep(0.01)
    start = time.perf_counter()
    ctx.infer(x)
    end = time.perf_counter()
    stop.set()
    t.join()
    # With the GIL held for the whole call the other thread could not tick inside it.
    inside = [s for s in ticks if start < s < end]
    assert len(inside) >= 3, f"{len(inside)} ticks during a {1e3 * (end - start):.0f} ms inference"


def test_uint8_input_engine_takes_the_letterboxed_bytes(shared, fp32_engine):
    # bus_input.npy is the letterbox's float image, i.e. bytes / 255: its bytes, NHWC, must give
    # exactly the float engine's output on an engine that scales them itself.
    x = np.load(shared / "reference" / "bus_input.npy")
    pixels = np.rint(x * 255.0).astype(np.uint8)
    np.testing.assert_array_equal(pixels.astype(np.float32) / np.float32(255.0), x)
    engine = qyolo.build(shared / "models" / "yolov5n.onnx", input_format="uint8-nhwc")
    assert engine.info["input_format"] == "uint8-nhwc"
    ctx = engine.create_context()
    (binding,) = [b for b in ctx.bindings() if b["is_input"]]
    assert binding["dtype"] == np.uint8 and binding["shape"] == (1, 640, 640, 3)
    got = ctx.infer(np.ascontiguousarray(pixels.transpose(0, 2, 3, 1)))["output0"]
    np.testing.assert_array_equal(got, fp32_engine.create_context().infer(x)["output0"])
    with pytest.raises(qyolo.InvalidArgumentError, match="uint8"):
        ctx.infer(x)
