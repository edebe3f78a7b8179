#!/usr/bin/env python3
"""Draws qyolo's accuracy report from the JSON the CLI writes (matplotlib, Debian's
python3-matplotlib). Prints each PNG path it writes.

  plots.py eval    DIR/eval.json    DIR  -> pr_curve.png, pr_per_class.png, confusion_matrix.png,
                                            ap_compare.png (with `qyolo eval --compare`)
  plots.py compare DIR/compare.json DIR  -> snr_per_layer.png

`qyolo eval --plots DIR` and `qyolo compare --plots DIR` run it; it can be re-run on the JSON.
"""

import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save(fig, out_dir, name):
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(path)


def curve(precision):
    """COCO's interpolated precision with absent points (-1) as NaN."""
    p = np.asarray(precision, dtype=float)
    return np.where(p < 0, np.nan, p)


def pr_overall(d, out_dir):
    recall = np.asarray(d["recall"])
    fig, ax = plt.subplots(figsize=(7, 6))
    for c in d["classes"]:
        if c["ap50"] >= 0:
            ax.plot(recall, curve(c["precision50"]), color="grey", linewidth=0.6, alpha=0.5)
    ax.plot(recall, curve(d["precision50"]), color="tab:blue", linewidth=3,
            label=f"all classes, mAP@0.5 {d['map50']:.3f}")
    ax.plot([], [], color="grey", linewidth=0.6, label="one class each")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
           title=f"Precision-recall at IoU 0.5: {d['label']}\n{d['data']}, mAP@0.5:0.95 {d['map50_95']:.3f}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    save(fig, out_dir, "pr_curve.png")


def pr_per_class(d, out_dir):
    classes = [c for c in d["classes"] if c["ap50"] >= 0]
    if not classes:
        return
    recall = np.asarray(d["recall"])
    cols = min(8, len(classes))
    rows = math.ceil(len(classes) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 1.9 * rows), sharex=True, sharey=True, squeeze=False)
    for ax, c in zip(axes.flat, classes):
        ax.fill_between(recall, np.nan_to_num(curve(c["precision50"])), color="tab:blue", alpha=0.25)
        ax.plot(recall, curve(c["precision50"]), color="tab:blue", linewidth=1.2)
        ax.set_title(f"{c['name']} ({c['num_gt']})\nAP50 {c['ap50']:.2f}  AP {c['ap']:.2f}", fontsize=7)
        ax.set(xlim=(0, 1), ylim=(0, 1.02))
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(classes):]:
        ax.axis("off")
    fig.suptitle(f"Precision-recall at IoU 0.5 per class (ground-truth boxes in brackets): {d['label']}", fontsize=10)
    fig.supxlabel("recall", fontsize=8)
    fig.supylabel("precision", fontsize=8)
    fig.tight_layout()
    save(fig, out_dir, "pr_per_class.png")


def confusion(d, out_dir):
    m = np.asarray(d["confusion"], dtype=float)
    if m.size == 0:
        return
    names = [c["name"] for c in d["classes"]] + ["background"]
    # Many classes (COCO's 80): only those with ground truth or detections, so the labels stay readable.
    shown = np.flatnonzero((m.sum(axis=0) + m.sum(axis=1)) > 0) if len(names) > 30 else np.arange(len(names))
    hidden = len(names) - len(shown)
    m = m[np.ix_(shown, shown)]
    names = [names[i] for i in shown]
    # Columns are true classes: normalise each column (ultralytics' normalize=True); the
    # background column counts false positives, normalised by its own sum.
    col = m.sum(axis=0, keepdims=True)
    norm = np.divide(m, col, out=np.zeros_like(m), where=col > 0)
    n = len(names)
    size = max(6, min(24, 0.22 * n + 3))
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(np.where(norm > 0.005, norm, np.nan), cmap="Blues", vmin=0, vmax=1)
    fs = 9 if n <= 20 else max(4, int(220 / n))
    ax.set_xticks(range(n), names, rotation=90, fontsize=fs)
    ax.set_yticks(range(n), names, fontsize=fs)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if norm[i, j] > 0.005:
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=fs - 1,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set(xlabel="true class", ylabel="predicted class")
    ax.set_title(f"Confusion matrix (each column sums to 1; detections with score > 0.25 matched at IoU > 0.45)\n"
                 f"{d['label']}, {int(m.sum())} pairs"
                 + (f"; {hidden} classes without ground truth or detections left out" if hidden else ""), fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    save(fig, out_dir, "confusion_matrix.png")


def ap_compare(d, out_dir):
    other = d["compare"]
    mine = {c["name"]: c for c in d["classes"] if c["ap"] >= 0}
    theirs = {c["name"]: c for c in other["classes"] if c["ap"] >= 0}
    names = [n for n in mine if n in theirs]
    if not names:
        return
    # Sorted by the difference: the classes that lose most first.
    names.sort(key=lambda n: mine[n]["ap"] - theirs[n]["ap"])
    a = np.array([mine[n]["ap"] for n in names])
    b = np.array([theirs[n]["ap"] for n in names])
    y = np.arange(len(names))
    fig, (ax, ax_d) = plt.subplots(1, 2, figsize=(12, max(4, 0.2 * len(names) + 1.5)), sharey=True,
                                   gridspec_kw={"width_ratios": [3, 1.3]})
    ax.barh(y - 0.2, b, height=0.4, color="tab:grey", label=f"{other['label']}: mAP {other['map50_95']:.4f}")
    ax.barh(y + 0.2, a, height=0.4, color="tab:blue", label=f"{d['label']}: mAP {d['map50_95']:.4f}")
    ax.set_yticks(y, names, fontsize=7 if len(names) > 30 else 9)
    ax.invert_yaxis()
    ax.set(xlabel="AP@0.5:0.95", xlim=(0, 1))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    diff = a - b
    ax_d.barh(y, diff, color=np.where(diff < 0, "tab:red", "tab:green"))
    ax_d.axvline(0, color="black", linewidth=0.8)
    ax_d.set(xlabel="AP difference (blue - grey)")
    ax_d.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Per-class AP@0.5:0.95 on {d['data']}, worst difference first", fontsize=11)
    fig.tight_layout()
    save(fig, out_dir, "ap_compare.png")


def snr(d, out_dir):
    layers = sorted(d["layers"], key=lambda r: r["position"])
    if not layers:
        return
    x = np.arange(len(layers))
    v = np.array([min(r["snr_db"], 80.0) for r in layers])  # inf (exact) drawn at the top
    int8 = np.array(["[int8]" in r["op"] for r in layers])
    fig, ax = plt.subplots(figsize=(max(8, 0.09 * len(layers) + 4), 5))
    ax.bar(x[int8], v[int8], color="tab:blue", label="INT8 layer output")
    ax.bar(x[~int8], v[~int8], color="tab:orange", label="float layer output")
    labelled = []
    for i in np.argsort(v)[:8]:  # the worst layers by name, unless a neighbour already has a label
        if any(abs(i - j) < 3 for j in labelled):
            continue
        labelled.append(i)
        ax.annotate(layers[i]["tensor"][-28:], (x[i], v[i]), textcoords="offset points", xytext=(0, 4),
                    rotation=90, fontsize=6, ha="center", va="bottom")
    ax.set(xlabel="layer (network order)", ylabel="SNR dB (FP32 vs INT8, higher is better)",
           xlim=(-1, len(layers)), ylim=(0, max(40.0, float(np.nanmax(v)) + 12)))
    ax.set_title(f"Per-layer SNR of the INT8 engine against FP32: {os.path.basename(d['model'])}, "
                 f"{os.path.basename(d['calibration'] or 'Q/DQ')}, {d['images']} images")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left")
    save(fig, out_dir, "snr_per_layer.png")


def main(argv):
    if len(argv) != 4 or argv[1] not in ("eval", "compare"):
        sys.exit("usage: plots.py eval|compare DATA.json OUT_DIR")
    with open(argv[2]) as f:
        d = json.load(f)
    os.makedirs(argv[3], exist_ok=True)
    if argv[1] == "eval":
        pr_overall(d, argv[3])
        pr_per_class(d, argv[3])
        confusion(d, argv[3])
        if "compare" in d:
            ap_compare(d, argv[3])
    else:
        snr(d, argv[3])


if __name__ == "__main__":
    main(sys.argv)
