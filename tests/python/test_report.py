"""The report the CLI draws: `qyolo eval --plots [--compare]` and `qyolo compare --plots` write
PNGs through scripts/plots.py from JSON that holds the printed numbers."""

import json
import os
import re

PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG and os.path.getsize(path) > 10000


def test_eval_plots_and_compare(shared, cli, tmp_path):
    model = shared / "models" / "yolov5n.onnx"
    data = shared / "data" / "val500"
    cli("eval", "--model", model, "--data", data, "--limit", 3, "-q", "--json", tmp_path / "other.json")
    r = cli("eval", "--model", model, "--data", data, "--limit", 3, "-q", "--plots", tmp_path / "report",
            "--compare", tmp_path / "other.json")
    names = ["pr_curve.png", "pr_per_class.png", "confusion_matrix.png", "ap_compare.png"]
    for name in names:
        assert f"wrote {tmp_path / 'report' / name}" in r.stdout
        assert is_png(tmp_path / "report" / name), name
    with open(tmp_path / "report" / "eval.json") as f:
        d = json.load(f)
    printed = float(re.search(r"mAP50-95 ([0-9.]+)", r.stdout).group(1))
    assert round(d["map50_95"], 4) == printed
    assert d["compare"]["map50_95"] == json.load(open(tmp_path / "other.json"))["map50_95"]
    assert len(d["recall"]) == len(d["precision50"]) == 101
    assert len(d["confusion"]) == len(d["classes"]) + 1


def test_compare_plots(shared, cli, tmp_path):
    model = shared / "models" / "yolov5n.onnx"
    cli("calibrate", "--model", model, "--calib", shared / "data" / "coco128", "--num", 1, "--algo", "minmax",
        "--cache", tmp_path / "c.cache")
    r = cli("compare", "--model", model, "--cache", tmp_path / "c.cache", "--num", 1, "--top", 3,
            "--plots", tmp_path / "report")
    assert is_png(tmp_path / "report" / "snr_per_layer.png")
    with open(tmp_path / "report" / "compare.json") as f:
        d = json.load(f)
    compared = int(re.search(r"(\d+) tensors compared", r.stdout).group(1))
    assert len(d["layers"]) == compared > 50
    # Network order: the stem's conv first, the model's output last.
    in_order = sorted(d["layers"], key=lambda x: x["position"])
    assert in_order[0]["tensor"] == "/model.0/act/Mul_output_0" and in_order[-1]["tensor"] == "output0"


def test_plots_without_python_is_a_clear_error(shared, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("QYOLO_PYTHON", str(tmp_path / "no-python"))
    r = cli("eval", "--model", shared / "models" / "yolov5n.onnx", "--data", shared / "data" / "val500",
            "--limit", 1, "-q", "--plots", tmp_path / "report", check=False)
    assert r.returncode == 1 and f"cannot run {tmp_path / 'no-python'}" in r.stderr
