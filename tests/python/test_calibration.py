"""Calibration from Python iterables, image folders, .npy arrays and loader scripts: the same
images by every route give the same TensorRT cache; calibrators build INT8 engines."""

import math
import pathlib
import struct

import numpy as np
import pytest

import qyolo

SIZE = 320  # the dynamic model calibrated small, to keep the CPU time down


def coco128_batches(shared, n=8, batch=4):
    """The first n coco128 images by name, letterboxed as `qyolo calibrate` does."""
    files = sorted((shared / "data" / "coco128" / "images").glob("*.jpg"))[:n]
    images = [qyolo.load_image(f) for f in files]
    return [qyolo.preprocess(images[i:i + batch], SIZE)[0] for i in range(0, n, batch)]


@pytest.fixture(scope="module")
def dynamic_fp32(shared):
    return qyolo.build(shared / "models" / "yolov5n-dynamic.onnx",
                       profiles=[(1, 3, SIZE, SIZE), (4, 3, SIZE, SIZE), (8, 3, 640, 640)])


def test_every_route_gives_the_same_cache(shared, dynamic_fp32, cli, tmp_path):
    model = shared / "models" / "yolov5n-dynamic.onnx"
    batches = coco128_batches(shared)
    shapes = ["--min-shapes", f"images:1x3x{SIZE}x{SIZE}", "--opt-shapes", f"images:4x3x{SIZE}x{SIZE}",
              "--max-shapes", "images:8x3x640x640"]
    # The CLI on the image folder (without its default activation equalisation, which the library's
    # calibrators do not run: its cache holds the equalised tensors' scales too).
    cli("calibrate", "--model", model, *shapes, "--calib", shared / "data" / "coco128", "--num", 8, "--batch", 4,
        "--imgsz", SIZE, "--algo", "minmax", "--equalize", "none", "--cache", tmp_path / "folder.cache")
    reference = (tmp_path / "folder.cache").read_text()
    assert reference.startswith("TRT-8601-MinMaxCalibration\n") and reference.count("\n") > 50
    # Python: an iterable of float32 batches, and {input_name: batch} dicts.
    cal = qyolo.MinMaxCalibrator(iter(batches), cache=tmp_path / "iterable.cache")
    cal.calibrate(dynamic_fp32)
    assert cal.summary["images"] == 8 and cal.summary["shape"] == (4, 3, SIZE, SIZE)
    assert (tmp_path / "iterable.cache").read_text() == reference
    qyolo.MinMaxCalibrator(({"images": b} for b in batches), cache=tmp_path / "dicts.cache").calibrate(dynamic_fp32)
    assert (tmp_path / "dicts.cache").read_text() == reference
    # trtexec-style arrays: float32 NCHW, and uint8 NHWC images (letterboxed again, unchanged).
    x = np.concatenate(batches)
    np.save(tmp_path / "calib.npy", x)
    cli("calibrate", "--model", model, *shapes, "--calib", tmp_path / "calib.npy", "--batch", 4, "--imgsz", SIZE,
        "--algo", "minmax", "--cache", tmp_path / "npy.cache")
    assert (tmp_path / "npy.cache").read_text() == reference
    u8 = np.round(x * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(u8.transpose(0, 3, 1, 2) / np.float32(255), x)  # exact in 8 bits
    np.save(tmp_path / "calib_u8.npy", np.ascontiguousarray(u8))
    cli("calibrate", "--model", model, *shapes, "--calib", tmp_path / "calib_u8.npy", "--batch", 4, "--imgsz", SIZE,
        "--algo", "minmax", "--cache", tmp_path / "u8.cache")
    assert (tmp_path / "u8.cache").read_text() == reference
    # A polygraphy data loader script.
    loader = tmp_path / "loader.py"
    loader.write_text("import numpy as np\n"
                      "def load_data():\n"
                      f"    x = np.load({str(tmp_path / 'calib.npy')!r})\n"
                      "    for i in range(0, len(x), 4):\n"
                      "        yield {'images': x[i:i + 4]}\n")
    r = cli("calibrate", "--model", model, *shapes, "--data-loader-script", loader, "--imgsz", SIZE,
            "--algo", "minmax", "--cache", tmp_path / "loader.cache")
    assert "8 images" in r.stdout
    assert (tmp_path / "loader.cache").read_text() == reference


def test_loader_script_errors(shared, cli, tmp_path):
    model = shared / "models" / "yolov5n.onnx"
    no_fn = tmp_path / "no_fn.py"
    no_fn.write_text("x = 1\n")
    r = cli("calibrate", "--model", model, "--data-loader-script", no_fn, "--cache", tmp_path / "c", check=False)
    assert r.returncode == 1 and "defines no load_data() function" in r.stderr
    raises = tmp_path / "raises.py"
    raises.write_text("def load_data():\n    raise RuntimeError('no data here')\n    yield\n")
    r = cli("calibrate", "--model", model, "--data-loader-script", raises, "--cache", tmp_path / "c", check=False)
    assert r.returncode == 1 and "RuntimeError: no data here" in r.stderr
    r = cli("calibrate", "--model", model, "--calib", tmp_path / "missing.npy", "--cache", tmp_path / "c",
            check=False)
    assert r.returncode == 1 and "missing.npy" in r.stderr
    np.save(tmp_path / "bad.npy", np.zeros((2, 5), np.float32))
    r = cli("calibrate", "--model", model, "--calib", tmp_path / "bad.npy", "--cache", tmp_path / "c", check=False)
    assert r.returncode == 1 and "float32 2x5" in r.stderr
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("cls, header", [(qyolo.EntropyCalibrator2, "EntropyCalibration2"),
                                         (qyolo.MinMaxCalibrator, "MinMaxCalibration"),
                                         (qyolo.PercentileCalibrator, "PercentileCalibration"),
                                         (qyolo.MseCalibrator, "MseCalibration")])
def test_calibrator_classes_write_their_algorithm(shared, dynamic_fp32, tmp_path, cls, header):
    batch = coco128_batches(shared, n=2, batch=2)
    cal = cls(batch, cache=tmp_path / "c.cache")
    assert cal.calibrate(dynamic_fp32) == str(tmp_path / "c.cache")
    assert (tmp_path / "c.cache").read_text().startswith(f"TRT-8601-{header}\n")


def test_fixed_batch_model_takes_larger_batches(shared, tmp_path):
    # yolov5n.onnx is 1x3x640x640: a batch of 3 runs as three batches of 1.
    files = sorted((shared / "data" / "coco128" / "images").glob("*.jpg"))[:3]
    x = qyolo.preprocess([qyolo.load_image(f) for f in files], 640)[0]
    cal = qyolo.MinMaxCalibrator([x], cache=tmp_path / "c.cache")
    cal.calibrate(shared / "models" / "yolov5n.onnx")
    assert cal.summary["images"] == 3 and cal.summary["shape"] == (1, 3, 640, 640)


def test_iterator_exceptions_and_bad_batches(shared, dynamic_fp32, tmp_path):
    def broken():
        yield coco128_batches(shared, n=1, batch=1)[0]
        raise KeyError("the loader broke")

    with pytest.raises(KeyError, match="the loader broke"):
        qyolo.EntropyCalibrator2(broken(), cache=tmp_path / "c.cache").calibrate(dynamic_fp32)
    with pytest.raises(qyolo.InvalidArgumentError, match=r"calibration batch 0 \(shape 1x3x320\).*N x C x H x W"):
        qyolo.EntropyCalibrator2([np.zeros((1, 3, 320), np.float32)], cache=tmp_path / "c.cache").calibrate(dynamic_fp32)
    with pytest.raises(qyolo.InvalidArgumentError, match="no calibration batches"):
        qyolo.EntropyCalibrator2([], cache=tmp_path / "c.cache").calibrate(dynamic_fp32)
    assert not (tmp_path / "c.cache").exists()


def test_build_int8_with_a_calibrator_and_reuse_its_cache(shared, tmp_path):
    model = shared / "models" / "yolov5n.onnx"
    cal = qyolo.EntropyCalibrator2(shared / "data" / "coco128", cache=tmp_path / "c.cache", num_images=4)
    engine = qyolo.build(model, precision="int8", calibrator=cal)
    assert engine.precision == "int8" and cal.summary["images"] == 4
    # Its precision plan: every conv INT8 on the CPU, each quantised tensor read with the cache's
    # scale (TensorRT cache lines "name: big-endian float bits"): its own, or the one of the Concat
    # it is written into (one scale per concat, as TensorRT does).
    plan = engine.precision_plan
    assert plan["float_precision"] == "fp32"
    assert len(plan["nodes"]) == 60 and set(plan["nodes"].values()) == {"int8"}
    cache = {}
    for line in (tmp_path / "c.cache").read_text().splitlines()[1:]:
        name, bits = line.rsplit(": ", 1)
        cache[name] = struct.unpack(">f", bytes.fromhex(bits))[0]
    # CPU engines put conv inputs bounded below (SiLU outputs...) on an asymmetric grid whose top
    # code is the cache's threshold 127 * scale (within half a step); the image stays symmetric.
    def threshold(t):
        return t["scale"] * (127 - t["zero_point"]) if t["zero_point"] else t["scale"] * 127

    quantised = {n: t for n, t in plan["tensors"].items() if t["scale"] > 0}
    own = [n for n, t in quantised.items()
           if n in cache and math.isclose(threshold(t), 127 * cache[n], rel_tol=1e-6, abs_tol=t["scale"])]
    assert "images" in own and len(own) >= 50
    assert quantised["images"]["zero_point"] == 0
    assert sum(t["zero_point"] != 0 for t in quantised.values()) >= 50
    for n, t in quantised.items():
        assert any(math.isclose(threshold(t), 127 * c, rel_tol=1e-6, abs_tol=t["scale"]) for c in cache.values()), n
    d = qyolo.Detector(engine, conf=0.25, iou=0.45).detect(shared / "data" / "samples" / "bus.jpg")
    assert list(d.classes).count(0) >= 3  # the people of bus.jpg, as the FP32 reference has them

    def must_not_run():
        raise AssertionError("calibrated again although the cache exists")
        yield

    again = qyolo.EntropyCalibrator2(must_not_run(), cache=tmp_path / "c.cache")
    assert qyolo.build(model, precision="int8", calibrator=again).precision == "int8"
    assert again.summary is None and again.read_calibration_cache().startswith(b"TRT-8601-EntropyCalibration2")
