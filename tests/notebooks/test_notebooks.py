"""Every notebook: committed without outputs, with a parameters cell, and runs end to end at `smoke`."""

import json
import math
import os
from pathlib import Path

import nbformat
import pytest

from inpaintlib.config import FIXED_PARAMETERS, notebook_names, preset_values
from inpaintlib.runner import NOTEBOOKS_DIR, _parameter_names, run

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def test_there_are_notebooks_and_each_has_presets():
    assert len(NOTEBOOKS) >= 2
    assert {p.stem for p in NOTEBOOKS} <= set(notebook_names())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs_and_with_parameters(path: Path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "strip outputs before committing"
    names = _parameter_names(path)
    assert set(FIXED_PARAMETERS) <= names
    assert names - set(FIXED_PARAMETERS) <= set(preset_values(path.stem, "cpu")), "every knob must have preset values"
    assert "/home/" not in path.read_text() and "/work/" not in path.read_text(), "no absolute paths"


def _finite_numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _finite_numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _finite_numbers(v)
    elif isinstance(obj, float):
        yield obj


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_at_smoke(path: Path, tmp_path):
    # `make test` sets NOTEBOOK_RUNS_DIR=runs: every notebook still executes (force), and the smoke book of
    # `make test-book` then reuses these runs, and the comparison chapter (last) reads all of them.
    runs_dir = Path(os.environ["NOTEBOOK_RUNS_DIR"]) if os.environ.get("NOTEBOOK_RUNS_DIR") else tmp_path
    result = run(path, "smoke", runs_dir=runs_dir, force=True, progress=False)
    metrics = json.loads((result.path / "metrics.json").read_text())
    assert metrics, "the notebook recorded no metrics"
    assert all(math.isfinite(x) for x in _finite_numbers(metrics))
    assert result.config["preset"] == "smoke"


@pytest.mark.notebook
def test_chapter_1_trains_and_evaluates_on_a_folder_of_photos(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(7):  # a few "photos": smooth colour gradients with noise, of odd sizes
        y, x = np.mgrid[0:37, 0:45]
        rgb = np.stack([x * 5 + 20 * i, y * 6, (x + y) * 3], axis=2) + rng.integers(0, 20, (37, 45, 3))
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(tmp_path / f"photo{i}.jpg")
    result = run(NOTEBOOKS_DIR / "01_unet_baseline.ipynb", "smoke", {"data_root": str(tmp_path)},
                 runs_dir=tmp_path / "runs", force=True, progress=False)
    metrics = json.loads((result.path / "metrics.json").read_text())
    assert metrics["data"] == result.config["data"]
    assert metrics["data"]["name"] == "flat" and metrics["data"]["train_images"] == 6 and metrics["data"]["test_images"] == 1
    assert metrics["experiments"]["book"]["experiment"]["data_root"] == str(tmp_path)
    assert metrics["results"]["unet"]["n"] == 6  # the held-out photo under the six smoke masks
