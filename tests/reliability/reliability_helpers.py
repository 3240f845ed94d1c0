"""Helpers of the reliability tests: tiny notebooks named like real ones (so they get that
notebook's presets) and a stand-in for papermill that executes nothing, for the runner's own logic."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

PARAMS = 'preset = "cpu"\nseed = 0\ndevice = "auto"\nrun_dir = None\ndata_root = None\n'


def make_notebook(folder: Path, body: str, name: str = "00_data_and_masks", params: str = PARAMS,
                  reads_runs: bool = False) -> Path:
    nb = new_notebook()
    cell = new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if reads_runs:
        nb.metadata["inpaintlib"] = {"reads_runs": True}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


class FakePapermill:
    """Stands in for ``papermill.execute_notebook``: copies the notebook, writes metrics and a
    checkpoint into the run folder, and records each call (its keyword arguments, and whether the run
    folder already held a checkpoint, i.e. whether the run would resume)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.fail = False

    def __call__(self, input_path, output_path, parameters, **kwargs):
        run_dir = Path(parameters["run_dir"])
        checkpoint = run_dir / "checkpoints" / "latest.safetensors"
        self.calls.append({"kwargs": kwargs, "parameters": parameters, "resumed": checkpoint.is_file()})
        shutil.copy(input_path, output_path)
        checkpoint.parent.mkdir(exist_ok=True)
        checkpoint.write_bytes(b"weights of step 4 " * 8)
        if self.fail:
            raise RuntimeError("the machine went away")
        (run_dir / "metrics.json").write_text(json.dumps({"results": {"model": {"psnr": 20.0 + len(self.calls)}}}))
