"""Build the HTML book from the executed notebooks of one preset's runs.

The notebooks are committed without outputs, so the book is assembled in ``_build/src``: the
top-level ``_config.yml``, ``_toc.yml`` and ``book/`` pages, plus, for every notebook, the executed
copy from its run folder. jupyter-book (1.x, Sphinx) then renders ``_build/src`` into
``_build/html`` without executing anything.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from inpaintlib.config import REPO_ROOT
from inpaintlib.runner import RunResult, run_all

BUILD_DIR = REPO_ROOT / "_build"


class BookBuildError(RuntimeError):
    """jupyter-book reported errors (warnings count as errors), or a run's executed notebook is unusable."""


BOOK_FILES = ("_config.yml", "_toc.yml")
BOOK_DIRS = ("book",)
RUN_DIR_LINE = re.compile(r'^run_dir = ".*"$', re.M)


def readable_run_dir(run_folder: Path) -> str:
    """The run folder as readers should see it: relative to the repository when inside it."""
    run_folder = run_folder.resolve()
    return run_folder.relative_to(REPO_ROOT).as_posix() if run_folder.is_relative_to(REPO_ROOT) else run_folder.name


def book_copy(run_folder: Path, target: Path) -> None:
    """Copy a run's executed notebook for the book. papermill's injected-parameters cell holds the
    absolute path of the run's temporary folder (``.<name>.partial-<pid>``, renamed when the run
    finished); the copy shows the finished folder instead, relative to the repository, and folds the cell
    (``hide-cell``) like the chapter's own parameters cell."""
    source = run_folder / "notebook.ipynb"
    try:
        nb = nbformat.read(source, as_version=4)
    except Exception as err:  # noqa: BLE001 - missing, unreadable or not a notebook: one line naming it
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise BookBuildError(f"cannot read the executed notebook {source} ({type(err).__name__}: {reason}); "
                             f"run the chapter again (python -m inpaintlib run ... --force)") from err
    for cell in nb.cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            shown = readable_run_dir(run_folder)
            cell.source = RUN_DIR_LINE.sub(lambda _: f'run_dir = "{shown}"', cell.source)
            tags = cell.metadata.setdefault("tags", [])
            if "hide-cell" not in tags:
                tags.append("hide-cell")
    nbformat.write(nb, target)


def assemble(results: list[RunResult], out: Path) -> Path:
    """Copy the book sources and the executed notebooks of ``results`` into ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name in BOOK_FILES:
        shutil.copy2(REPO_ROOT / name, out / name)
    for name in BOOK_DIRS:
        shutil.copytree(REPO_ROOT / name, out / name)
    (out / "notebooks").mkdir()
    for result in results:
        stem = result.config["notebook"].rsplit("/", 1)[-1]
        book_copy(result.path, out / "notebooks" / stem)
    return out


def build(preset: str = "cpu", runs_dir: Path | None = None) -> Path:
    """Run (or reuse) every notebook with ``preset``, then render the book; returns the HTML folder."""
    results = run_all(preset, runs_dir=runs_dir)
    src = assemble(results, BUILD_DIR / "src")
    html = BUILD_DIR / "html"
    shutil.rmtree(html, ignore_errors=True)
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(src), "--path-output", str(BUILD_DIR / "jb"), "--warningiserror", "--keep-going"]
    done = subprocess.run(cmd, cwd=REPO_ROOT)
    if done.returncode != 0:
        raise BookBuildError(f"jupyter-book build failed (exit {done.returncode}); see the log above")
    shutil.copytree(BUILD_DIR / "jb" / "_build" / "html", html)
    return html
