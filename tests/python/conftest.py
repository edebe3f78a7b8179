"""Fixtures of the Python API tests: the shared models and data (QYOLO_SHARED, default ../shared;
tests skip with a message where it is absent) and the CLI for cross-checks."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def shared_dir():
    return pathlib.Path(os.environ.get("QYOLO_SHARED") or ROOT.parent / "shared")


@pytest.fixture(scope="session")
def shared():
    d = shared_dir()
    if not (d / "models" / "yolov5n.onnx").exists():
        pytest.skip(f"shared models and data not found in {d} (set QYOLO_SHARED)")
    return d


@pytest.fixture(scope="session")
def cli():
    path = pathlib.Path(os.environ.get("QYOLO_CLI") or ROOT / "build" / "qyolo")
    if not path.exists():
        pytest.fail(f"the qyolo CLI is not built at {path} (set QYOLO_CLI)")

    def run(*args, check=True):
        r = subprocess.run([str(path), *map(str, args)], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError(f"qyolo {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
        return r
    return run


@pytest.fixture(scope="session")
def fp32_engine(shared):
    import qyolo
    return qyolo.build(shared / "models" / "yolov5n.onnx")
