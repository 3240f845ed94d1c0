"""The book's copy of an executed notebook names its finished run folder, not the temporary one."""

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from inpaintlib.book import book_copy, readable_run_dir
from inpaintlib.config import REPO_ROOT


def _executed(folder, run_dir: str) -> None:
    injected = new_code_cell(f'# Parameters\npreset = "cpu"\nrun_dir = "{run_dir}"\n')
    injected.metadata["tags"] = ["injected-parameters"]
    user = new_code_cell('run_dir = "left alone: not the injected cell"')
    nbformat.write(new_notebook(cells=[user, injected]), folder / "notebook.ipynb")


def test_injected_run_dir_becomes_the_finished_folder(tmp_path):
    run = tmp_path / "runs" / "01_unet_baseline" / "cpu-abc"
    run.mkdir(parents=True)
    _executed(run, str(tmp_path / "runs" / "01_unet_baseline" / ".cpu-abc.partial-123"))
    book_copy(run, tmp_path / "copy.ipynb")
    cells = nbformat.read(tmp_path / "copy.ipynb", as_version=4).cells
    assert cells[0].source == 'run_dir = "left alone: not the injected cell"'
    assert cells[1].source == '# Parameters\npreset = "cpu"\nrun_dir = "cpu-abc"\n'
    assert "partial" not in cells[1].source and str(tmp_path) not in cells[1].source
    assert cells[1].metadata["tags"] == ["injected-parameters", "hide-cell"] and "tags" not in cells[0].metadata


def test_run_folder_inside_the_repository_is_shown_relative():
    assert readable_run_dir(REPO_ROOT / "runs" / "04_sge_net" / "cpu-1234") == "runs/04_sge_net/cpu-1234"
