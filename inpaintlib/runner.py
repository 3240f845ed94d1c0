"""The runner: any notebook, a preset and parameters -> a recorded experiment in a run folder.

``run("notebooks/01_unet_baseline.ipynb", "cpu", {"steps": 500})`` executes the notebook with
papermill and leaves ``runs/01_unet_baseline/cpu-<key>/`` holding

- ``notebook.ipynb``  the executed notebook,
- ``metrics.json``    what the notebook measured (written by ``save_metrics``),
- ``config.json``     every parameter, git commit, package versions, device, seed, wall time,
- ``checkpoints/``    safetensors weights.

The key hashes the preset, the parameters, the notebook's code, the library modules it imports
(transitively), its presets and any ``INPAINTLIB_*`` environment variables (weight files), so a
finished run is reused until one of them changes. A run is built in a hidden folder and renamed into place only
when it succeeds; a failed run is kept as ``<name>.failed`` with the cell that failed named.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import nbformat

from inpaintlib.config import REPO_ROOT, ConfigError, load_config, preset_values, validate_parameters

RUNS_DIR = REPO_ROOT / "runs"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
VERSIONED_PACKAGES = ("torch", "numpy", "scikit-image", "opencv-python-headless", "torchmetrics", "papermill", "inpaintlib")


class RunFailed(RuntimeError):
    """A notebook cell raised; the message names the notebook, the cell and the error."""


@dataclass(frozen=True)
class RunResult:
    """A finished run: its folder, and whether it was reused rather than executed now."""

    path: Path
    reused: bool

    @property
    def metrics(self) -> dict:
        return json.loads((self.path / "metrics.json").read_text())

    @property
    def config(self) -> dict:
        return json.loads((self.path / "config.json").read_text())


def _read_notebook(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path`` (nbformat v4). nbformat is imported here, not at module level, so the
    scripts that only use the runner's provenance helpers (``scripts/train_ddp.py``) run without Jupyter."""
    import nbformat

    return nbformat.read(path, as_version=4)


def notebook_stem(notebook: str | Path) -> str:
    return Path(notebook).stem


def resolve_notebook(notebook: str | Path) -> Path:
    """Accept a path or a bare name (``01_unet_baseline``); fail clearly when it does not exist."""
    path = Path(notebook)
    if not path.suffix:
        path = NOTEBOOKS_DIR / f"{path.name}.ipynb"
    if not path.is_file():
        raise ConfigError(f"notebook not found: {notebook}")
    return path.resolve()


def _parameter_names(path: Path) -> set[str]:
    """Names assigned in the cell tagged ``parameters``."""
    nb = _read_notebook(path)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ConfigError(f"{path.name} has no cell tagged 'parameters'")
    names = set()
    for line in cells[0].source.splitlines():
        head = line.split("#", 1)[0]
        if "=" in head and not head.startswith((" ", "\t")):
            names.add(head.split("=", 1)[0].strip())
    return names


def check_run_request(notebook: str | Path, preset: str, parameters: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Everything that can be checked before executing: the notebook, the preset, each parameter."""
    path = resolve_notebook(notebook)
    checked = validate_parameters(notebook_stem(path), preset, parameters)
    declared = _parameter_names(path)
    missing = sorted(set(checked) - declared)
    if missing:
        raise ConfigError(f"{path.name} does not declare parameter(s) {', '.join(missing)} in its parameters cell")
    return path, checked


IMPORT_LINE = re.compile(
    r"^[ \t]*(?:from[ \t]+(inpaintlib(?:\.\w+)*)[ \t]+import[ \t]+(\([\w\s,]+\)|[\w \t,]+)|import[ \t]+(inpaintlib(?:\.\w+)*))",
    re.M,
)


def _module_file(module: str) -> Path | None:
    """``inpaintlib.a.b`` -> ``inpaintlib/a/b.py`` or ``inpaintlib/a/b/__init__.py`` (None if neither)."""
    base = REPO_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def library_files(code: list[str]) -> list[Path]:
    """The ``inpaintlib`` source files that ``code`` imports, directly or through other library modules."""
    pending, seen = ["\n".join(code)], set()
    while pending:
        for match in IMPORT_LINE.finditer(pending.pop()):
            package, names, plain = match.groups()
            parts = (package or plain).split(".")
            candidates = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
            if package:  # "from inpaintlib.x import y": y may itself be a submodule
                candidates += [f"{package}.{n.split()[0]}" for n in names.strip("()").split(",") if n.strip()]
            for module in candidates:
                path = _module_file(module)
                if path is not None and path not in seen:
                    seen.add(path)
                    pending.append(path.read_text())
    return sorted(seen)


def _source_digest(stem: str, code: list[str]) -> str:
    """Hash of what a notebook's results depend on besides its own code: the library modules it
    imports (transitively), its presets and the committed data. Editing an unrelated chapter's
    module therefore does not invalidate a finished run."""
    h = hashlib.sha256()
    presets = REPO_ROOT / "inpaintlib" / "presets"
    files = library_files(code) + [presets / "common.yaml", presets / f"{stem}.yaml"]
    files += sorted((REPO_ROOT / "data").glob("*.npz"))
    for f in files:
        if f.is_file():
            h.update(f.relative_to(REPO_ROOT).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def reads_runs(path: Path) -> bool:
    """Whether a notebook reads other notebooks' runs (the comparison chapter): its metadata has
    ``{"inpaintlib": {"reads_runs": true}}``."""
    return bool(_read_notebook(path).metadata.get("inpaintlib", {}).get("reads_runs", False))


def latest_runs(runs_dir: str | Path, preset: str) -> dict[str, Path]:
    """The newest complete run of ``preset`` for each notebook under ``runs_dir``: ``{stem: folder}``.

    Runs without parameter overrides (what ``run-all`` and the book use) win over runs with
    overrides; among equals the latest ``started`` time in ``config.json`` wins.
    """
    found: dict[str, tuple[tuple, Path]] = {}
    for config_file in Path(runs_dir).glob(f"*/{preset}-*/config.json"):
        folder = config_file.parent
        config = json.loads(config_file.read_text())
        if config.get("status") != "complete" or not (folder / "metrics.json").is_file():
            continue
        rank = (not config.get("overrides"), config.get("started", ""), config_file.stat().st_mtime_ns)
        if folder.parent.name not in found or rank > found[folder.parent.name][0]:
            found[folder.parent.name] = (rank, folder)
    return {stem: folder for stem, (_, folder) in sorted(found.items())}


def runs_digest(runs_dir: str | Path, preset: str, exclude: str) -> str:
    """Hash of what a run-reading notebook sees: every other notebook's newest run (name, metrics, config)."""
    h = hashlib.sha256()
    for stem, folder in latest_runs(runs_dir, preset).items():
        if stem != exclude:
            h.update(f"{stem}/{folder.name}".encode())
            h.update((folder / "metrics.json").read_bytes())
            h.update((folder / "config.json").read_bytes())
    return h.hexdigest()


def library_environment() -> dict[str, str]:
    """The ``INPAINTLIB_*`` environment variables (weight files: HED, LPIPS, FID extractor) and their values."""
    return {name: value for name, value in sorted(os.environ.items()) if name.startswith("INPAINTLIB_")}


def run_key(path: Path, preset: str, parameters: dict[str, Any], runs_seen: str | None = None) -> str:
    """Hash of preset, parameters, notebook code and library; ``runs_seen`` (a ``runs_digest``) for notebooks that read runs."""
    nb = _read_notebook(path)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    inputs = {"preset": preset, "parameters": parameters, "code": code, "lib": _source_digest(path.stem, code)}
    environment = library_environment()
    if environment:  # weight files named by INPAINTLIB_* variables change what a notebook computes
        inputs["environment"] = environment
    if runs_seen is not None:
        inputs["runs"] = runs_seen
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:10]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for pkg in VERSIONED_PACKAGES:
        try:
            found[pkg] = version(pkg)
        except PackageNotFoundError:
            found[pkg] = "not installed"
    return found


def _device_description(device: str) -> dict[str, str]:
    import torch

    from inpaintlib.train import resolve_device

    dev = resolve_device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine()
    return {"requested": device, "resolved": str(dev), "name": name, "cpu_threads": str(torch.get_num_threads())}


def _failing_cell(err: Exception) -> str:
    cell = getattr(err, "exec_count", None)
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    where = f"cell [{cell}]" if cell is not None else "a cell"
    return f"{where} raised {ename}: {str(evalue).strip().splitlines()[-1] if str(evalue).strip() else ''}"


def run(
    notebook: str | Path,
    preset: str = "cpu",
    parameters: dict[str, Any] | None = None,
    runs_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> RunResult:
    """Execute ``notebook`` with ``preset`` and ``parameters`` (or reuse the finished identical run)."""
    import papermill

    parameters = dict(parameters or {})
    path, checked = check_run_request(notebook, preset, parameters)
    stem = notebook_stem(path)
    runs = Path(runs_dir) if runs_dir is not None else RUNS_DIR
    # A notebook that reads other runs is re-run when any of them changed, not reused.
    key = run_key(path, preset, checked, runs_digest(runs, preset, exclude=stem) if reads_runs(path) else None)
    final = runs / stem / f"{preset}-{key}"
    if final.is_dir() and not force and (final / "config.json").is_file():
        return RunResult(final, reused=True)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create run directory {final.parent}: {err.strerror or err}") from err
    if not os.access(final.parent, os.W_OK):
        raise ConfigError(f"run directory {final.parent} is not writable")
    partial = final.parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    seed = int(checked.get("seed", 0))
    device = str(checked.get("device", "auto"))
    resolved = vars(load_config(stem, preset, **(checked | {"run_dir": str(partial)})))
    commit, dirty = _git("rev-parse", "HEAD"), bool(_git("status", "--porcelain", "--untracked-files=no"))
    started = time.time()  # the commit is the one the run started from, not whatever HEAD is when it ends
    try:
        papermill.execute_notebook(
            str(path),
            str(partial / "notebook.ipynb"),
            parameters=checked | {"preset": preset, "run_dir": str(partial.resolve())},
            cwd=str(path.parent),
            kernel_name="python3",
            progress_bar=progress,
            request_save_on_cell_execute=True,
        )
        if not (partial / "metrics.json").is_file():
            raise RunFailed(f"{path.name} finished but wrote no metrics.json (call inpaintlib.runner.save_metrics)")
    except Exception as err:
        failed = final.with_name(final.name + ".failed")
        shutil.rmtree(failed, ignore_errors=True)
        if partial.exists():
            partial.rename(failed)
        if isinstance(err, RunFailed):
            raise
        if isinstance(err, papermill.PapermillExecutionError):
            raise RunFailed(f"{path.name} ({preset}): {_failing_cell(err)}; executed notebook kept in {failed}") from err
        raise RunFailed(f"{path.name} ({preset}): {type(err).__name__}: {err}; partial run kept in {failed}") from err
    config = {
        "notebook": path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else str(path),
        "preset": preset,
        "key": key,
        "overrides": checked,
        "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in resolved.items() if k not in ("run_dir", "checkpoint_dir")},
        "seed": seed,
        "environment": library_environment(),
        "device": _device_description(device),
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": _versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_time_s": round(time.time() - started, 2),
        "status": "complete",
    }
    (partial / "config.json").write_text(json.dumps(config, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return RunResult(final, reused=False)


def notebooks_in_order() -> list[Path]:
    """Every notebook that has presets, in book order."""
    from inpaintlib.config import notebook_names

    return [resolve_notebook(name) for name in notebook_names() if (NOTEBOOKS_DIR / f"{name}.ipynb").is_file()]


def run_all(preset: str = "cpu", runs_dir: str | Path | None = None, force: bool = False) -> list[RunResult]:
    """Run (or reuse) every notebook with ``preset``; stops at the first failure."""
    preset_values(notebooks_in_order()[0].stem if notebooks_in_order() else "01_unet_baseline", preset)
    results = []
    for path in notebooks_in_order():
        result = run(path, preset, runs_dir=runs_dir, force=force)
        print(f"{'reused' if result.reused else 'ran   '} {path.name:32s} -> {result.path}", file=sys.stderr)
        results.append(result)
    return results


def save_metrics(run_dir: str | Path, metrics: dict) -> None:
    """Write ``metrics.json`` into a run folder (called by notebooks at the end). Returns nothing, so a
    notebook's last line does not display the run's temporary path."""
    out = Path(run_dir) / "metrics.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True, default=float))
    os.replace(tmp, out)
