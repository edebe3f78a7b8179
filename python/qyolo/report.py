"""The accuracy report from Python: the PNGs `qyolo eval --plots` draws, from qyolo.evaluate's dicts.
The drawing is scripts/plots.py of this repository (matplotlib), shared with the CLI."""

import importlib.util
import os
import pathlib

import numpy as np

__all__ = ["plot_evaluation"]

_PLOTS = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "plots.py"


def _plots_module():
    path = pathlib.Path(os.environ.get("QYOLO_SCRIPTS_DIR", _PLOTS.parent)) / "plots.py"
    if not path.exists():
        raise FileNotFoundError(f"scripts/plots.py not found at {path} (set QYOLO_SCRIPTS_DIR)")
    spec = importlib.util.spec_from_file_location("qyolo_plots", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _label(ev):
    if "results" in ev:
        return os.path.basename(ev["results"][0])
    return f"{os.path.basename(ev['model'])} {ev['precision']} ({ev['device']})"


def _plot_data(ev, label=None):
    """The JSON layout scripts/plots.py reads (what the CLI writes as eval.json)."""
    classes = [{"name": c["name"], "id": c["id"], "num_gt": c["num_gt"], "ap": c["ap"], "ap50": c["ap50"],
                "precision50": np.asarray(c["precision50"]).tolist()} for c in ev["classes"]]
    return {"label": label or _label(ev), "data": ev["data"], "map50_95": ev["map50_95"], "map50": ev["map50"],
            "classes": classes, "recall": np.asarray(ev["recall"]).tolist(),
            "precision50": np.asarray(ev["precision50"]).tolist(), "confusion": np.asarray(ev["confusion"]).tolist()}


def plot_evaluation(ev, out_dir, compare=None, label=None, compare_label=None):
    """Writes pr_curve.png, pr_per_class.png, confusion_matrix.png (and ap_compare.png against
    `compare`, another qyolo.evaluate dict) into out_dir; returns their paths."""
    plots = _plots_module()
    d = _plot_data(ev, label)
    if compare is not None:
        d["compare"] = _plot_data(compare, compare_label)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    return plots.draw("eval", d, out_dir)
