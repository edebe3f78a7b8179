"""Detector and evaluate from Python, against the reference detections and the CLI's numbers."""

import json

import numpy as np
import pytest

import qyolo


def reference_detections(shared):
    with open(shared / "reference" / "detections_conf025_iou045.json") as f:
        return json.load(f)["yolov5n"]["bus.jpg"]


def test_detect_path_matches_reference(shared, fp32_engine):
    det = qyolo.Detector(fp32_engine, conf=0.25, iou=0.45)
    d = det.detect(shared / "data" / "samples" / "bus.jpg")
    ref = reference_detections(shared)
    assert len(d) == len(ref)
    assert d.boxes.shape == (len(ref), 4) and d.scores.dtype == np.float32 and d.classes.dtype == np.int64
    for r in ref:  # every reference box has a detection of its class within 2 pixels
        i = np.argmin(np.abs(d.boxes - np.array(r["box_xyxy"])).sum(axis=1))
        np.testing.assert_allclose(d.boxes[i], r["box_xyxy"], atol=2.0)
        assert d.classes[i] == r["class_id"] and d.name(int(d.classes[i])) == r["name"]
        assert d.scores[i] == pytest.approx(r["score"], abs=0.01)


def test_detect_arrays_bgr_and_rgb_and_batches(shared, fp32_engine):
    det = qyolo.Detector(fp32_engine, conf=0.25, iou=0.45)
    path = shared / "data" / "samples" / "bus.jpg"
    rgb = qyolo.load_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (1080, 810, 3)
    from_path = det.detect(path)
    from_bgr = det.detect(np.ascontiguousarray(rgb[..., ::-1]))  # cv2.imread's channel order
    from_rgb = det.detect(rgb, bgr=False)
    for d in (from_bgr, from_rgb):
        np.testing.assert_array_equal(d.boxes, from_path.boxes)
        np.testing.assert_array_equal(d.classes, from_path.classes)
    # A list gives a list (a batch-1 model runs the images one by one).
    many = det.detect([path, shared / "data" / "samples" / "zidane.jpg"])
    assert len(many) == 2 and len(many[0]) == len(from_path) and len(many[1]) > 0
    # Swapped channels are a different image.
    assert not np.array_equal(det.detect(rgb).scores, from_path.scores)
    with pytest.raises(qyolo.InvalidArgumentError, match="H x W x 3 uint8"):
        det.detect(np.zeros((10, 10), np.uint8))


def test_evaluate_gives_the_cli_numbers(shared, fp32_engine, cli, tmp_path):
    data = shared / "data" / "val500"
    ev = qyolo.evaluate(fp32_engine, data, limit=8)
    cli("eval", "--model", shared / "models" / "yolov5n.onnx", "--data", data, "--limit", 8, "-q",
        "--json", tmp_path / "cli.json")
    with open(tmp_path / "cli.json") as f:
        ref = json.load(f)
    assert ev["images"] == ref["images"] == 8
    for key in ("map50_95", "map50", "map75", "ar100"):
        assert ev[key] == pytest.approx(ref[key], abs=1e-12), key
    assert ev["per_class"].keys() == ref["per_class"].keys()
    for name, v in ref["per_class"].items():
        assert ev["per_class"][name]["ap"] == pytest.approx(v["ap"], abs=1e-12)
    # The report's data: a PR curve per class whose mean is the overall curve, mAP50 its average.
    with_gt = [c for c in ev["classes"] if c["ap50"] >= 0]
    curves = np.array([c["precision50"] for c in with_gt])
    np.testing.assert_allclose(ev["precision50"], curves.mean(axis=0))
    assert ev["precision50"].mean() == pytest.approx(ev["map50"])
    for c in with_gt:
        assert c["precision50"].mean() == pytest.approx(c["ap50"])
    # Confusion matrix: (classes + background)^2; every non-crowd ground-truth box once per column.
    n = len(ev["classes"])
    assert ev["confusion"].shape == (n + 1, n + 1)
    gt = np.array([c["num_gt"] for c in ev["classes"]])
    np.testing.assert_array_equal(ev["confusion"][:, :n].sum(axis=0), gt)
    # The same report as `qyolo eval --plots` from the dicts.
    written = qyolo.plot_evaluation(ev, tmp_path / "report", compare=ev)
    assert [p.rsplit("/", 1)[1] for p in written] == ["pr_curve.png", "pr_per_class.png", "confusion_matrix.png",
                                                      "ap_compare.png"]
    for p in written:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_evaluate_errors(shared, fp32_engine, tmp_path):
    with pytest.raises(qyolo.NotFoundError, match="has no images/ folder"):
        qyolo.evaluate(fp32_engine, tmp_path)


def test_qoperator_model_scores_need_float_outputs(shared):
    # ONNX Runtime's QOperator YOLOv8n writes output0 in int8 steps of 8: every score is 0 as the
    # file stands, which the detector refuses by name; float_outputs computes output0 in float.
    model = shared / "models" / "yolov8n-ort-qlinear.onnx"
    if not model.exists():
        pytest.skip(f"{model} absent")
    bus = str(shared / "data" / "samples" / "bus.jpg")
    with pytest.raises(qyolo.InvalidArgumentError, match="with step 8"):
        qyolo.Detector(qyolo.build(model)).detect(bus)
    engine = qyolo.build(model, float_outputs=True)
    assert engine.info["float_outputs"]
    dets = qyolo.Detector(engine, conf=0.25).detect(bus)
    assert (dets.classes == 0).sum() >= 3 and (dets.classes == 5).sum() == 1
