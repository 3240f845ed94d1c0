"""The runner: any notebook, a preset and parameters -> a recorded experiment in a run folder.

``run("notebooks/01_unet_baseline.ipynb", "cpu", {"steps": 500})`` executes the notebook with
papermill and leaves ``runs/01_unet_baseline/cpu-<key>/`` holding

- ``notebook.ipynb``  the executed notebook,
- ``metrics.json``    what the notebook measured (written by ``save_metrics``),
- ``config.json``     every parameter, git commit, package versions, device, seed, wall time,
- ``checkpoints/``    safetensors weights.

The key hashes the preset, the parameters, the notebook's code, the library modules it imports
(transitively), its presets and any ``INPAINTLIB_*`` environment variables (weight files), so a
finished run is reused until one of them changes. The contents of the weight files a run reads (named
by ``INPAINTLIB_*`` variables, or by parameters such as chapter 7's ``teacher_checkpoint``) count too,
so replacing a file behind the same name runs again.

A run is reused only when it is complete and verified (:func:`verify_run`): ``config.json`` says
"complete" and lists the SHA-256 of every file of the folder (checkpoints, ``metrics.json``, the
executed notebook), and each still matches. Anything else is executed again, with one line saying why.

A run is built in a hidden folder ``.<name>.partial-<pid>`` and renamed into place only when it
succeeds; an existing folder is replaced atomically (the old one is moved aside, the new one renamed
in, then the old one deleted). A failed, interrupted (Ctrl-C) or stuck run is kept as ``<name>.failed``
with the cell named; the next run of the same key adopts that folder, or the ``.partial-<pid>`` folder
of a process that was killed, so its trainers resume from their last checkpoints.

No run waits forever: papermill gets a kernel start timeout and a per-cell timeout scaled to the
preset, and a watchdog ends a run whose kernel has used no CPU for a while (a lost kernel message
leaves both sides waiting on their sockets), naming the cell.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
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
# Files every complete run folder holds (besides config.json, which lists their checksums).
REQUIRED_FILES = ("metrics.json", "notebook.ipynb")
# Longest a single cell may run, per preset (papermill's execution_timeout), and longest the kernel
# may use no CPU while a cell runs (the watchdog); a stuck run ends with one line naming the cell.
CELL_TIMEOUT_S: dict[str, int] = {"smoke": 30 * 60, "cpu": 8 * 3600, "gpu": 48 * 3600}
IDLE_TIMEOUT_S: dict[str, int] = {"smoke": 5 * 60, "cpu": 15 * 60, "gpu": 30 * 60}
KERNEL_START_TIMEOUT_S = 300
KERNEL_LOG = "kernel.log"  # the kernel process's own output; kept in a failed run's folder


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


def _first_line(text: object, limit: int = 300) -> str:
    """The first non-empty line of ``text`` (error messages shown in one line), shortened to ``limit``."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _read_notebook(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path`` (nbformat v4); one ``ConfigError`` line when it is not a valid notebook.
    nbformat is imported here, not at module level, so the scripts that only use the runner's
    provenance helpers (``scripts/train_ddp.py``) run without Jupyter."""
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # noqa: BLE001 - not JSON, not nbformat, unreadable: all the same to the user
        raise ConfigError(f"{path} is not a valid Jupyter notebook ({type(err).__name__}: {_first_line(err, 160)})") from err
    return nb


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
    if parameters.get("run_dir") is not None:
        raise ConfigError("parameter 'run_dir' is chosen by the runner (one folder per run under the runs "
                          "directory); use runs_dir (--runs-dir) to put runs elsewhere")
    path = resolve_notebook(notebook)
    if isinstance(parameters.get("data_root"), str) and parameters["data_root"].strip():
        # relative to where the command was typed, not to notebooks/ where the kernel runs
        parameters = parameters | {"data_root": str(Path(parameters["data_root"]).expanduser().resolve())}
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
    """The newest complete, verified run (:func:`verify_run`) of ``preset`` for each notebook under
    ``runs_dir``: ``{stem: folder}``; folders that fail verification (a corrupt ``config.json``
    included) are skipped.

    Runs without parameter overrides (what ``run-all`` and the book use) win over runs with
    overrides; among equals the latest ``started`` time in ``config.json`` wins.
    """
    found: dict[str, tuple[tuple, Path]] = {}
    for config_file in Path(runs_dir).glob(f"*/{preset}-*/config.json"):
        folder = config_file.parent
        if folder.name.endswith(".failed") or verify_run(folder) is not None:
            continue  # incomplete, unreadable or altered since it finished: not a run to show
        config = json.loads(config_file.read_text())
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


_DIGESTS: dict[tuple, str] = {}


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (cached in this process by path, inode, size and modification time)."""
    path = Path(path)
    st = path.stat()
    memo = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if memo not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[memo] = h.hexdigest()
    return _DIGESTS[memo]


def weight_files(parameters: dict[str, Any], notebook_dir: Path = NOTEBOOKS_DIR) -> dict[str, dict[str, str]]:
    """The files a run reads besides the library: every ``INPAINTLIB_*`` variable and every string
    parameter that names a file (e.g. ``teacher_checkpoint``; relative paths as the notebook, which runs
    in ``notebooks/``, sees them), as ``{name: {"path", "sha256"}}``. A named file that does not exist
    has no digest ("missing"); one that cannot be read is a ``ConfigError`` naming it."""
    named = dict(library_environment())
    for name, value in sorted(parameters.items()):
        if isinstance(value, str) and value and name not in ("preset", "device", "run_dir"):
            candidate = Path(value).expanduser()
            candidate = candidate if candidate.is_absolute() else notebook_dir / candidate
            if candidate.is_file():
                named[name] = str(candidate)
    found = {}
    for name, value in named.items():
        file = Path(value).expanduser()
        if not file.is_absolute() and not file.is_file():
            file = notebook_dir / file
        if not file.is_file():
            if name.startswith("INPAINTLIB_"):
                found[name] = {"path": value, "sha256": "missing"}
            continue
        try:
            found[name] = {"path": str(file), "sha256": file_digest(file)}
        except OSError as err:
            raise ConfigError(f"cannot read {file} (named by {name}): {err.strerror or err}") from err
    return found


def run_key(path: Path, preset: str, parameters: dict[str, Any], runs_seen: str | None = None) -> str:
    """Hash of preset, parameters, notebook code, library, the contents of the weight files the run
    reads (:func:`weight_files`) and the fingerprint of a ``data_root`` folder; ``runs_seen`` (a ``runs_digest``) for notebooks that read runs."""
    nb = _read_notebook(path)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    inputs = {"preset": preset, "parameters": parameters, "code": code, "lib": _source_digest(path.stem, code)}
    environment = library_environment()
    if environment:  # weight files named by INPAINTLIB_* variables change what a notebook computes
        inputs["environment"] = environment
    weights = {name: entry["sha256"] for name, entry in weight_files(parameters, path.parent).items()}
    if weights:  # their contents, not only their names: a file replaced behind the same path counts
        inputs["weights"] = weights
    if parameters.get("data_root"):  # the folder's files (names, sizes, times), not only its path
        from inpaintlib.data.sources import open_data_root

        inputs["data"] = open_data_root(parameters["data_root"]).fingerprint()
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


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (e.g. "AMD EPYC 9B14"); the architecture elsewhere."""
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    except OSError:
        match = None
    return match.group(1).strip() if match else platform.processor() or platform.machine()


def _device_description(device: str) -> dict[str, str]:
    """What a run's numbers depend on beyond its code: the device, and on a CPU its model, the kernels torch
    chose for its instruction set (``get_cpu_capability``) and the thread count."""
    import torch

    from inpaintlib.train import resolve_device

    dev = resolve_device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_model()
    return {"requested": device, "resolved": str(dev), "name": name, "cpu_model": cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_threads": str(torch.get_num_threads())}


def _failing_cell(err: Exception) -> str:
    """``cell [n] raised Error: <first line of its message>`` (the first line names the file or value
    at fault; later lines are usually advice or a nested cause)."""
    cell = getattr(err, "exec_count", None)
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    where = f"cell [{cell}]" if cell is not None else "a cell"
    return f"{where} raised {ename}: {_first_line(evalue)}"


def _running_cell(executed: Path) -> str:
    """The last cell papermill started in a partly executed notebook (the one running when the run
    stopped), as ``cell [n] (first line of its code)``; "a cell" when the notebook says nothing."""
    try:
        cells = json.loads(executed.read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return "a cell"
    count, found = 0, "a cell"
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        count += 1
        if cell.get("metadata", {}).get("papermill", {}).get("start_time"):
            source = "".join(cell.get("source", ""))
            found = f"cell [{count}] ({_first_line(source, 60) or 'empty'})"
    return found


def _kernel_manager(log_path: Path) -> type:
    """A jupyter_client kernel manager whose kernel writes its own stdout and stderr (start-up warnings,
    the traceback of a kernel killed mid-message) to ``log_path`` rather than to the user's terminal."""
    from jupyter_client.manager import AsyncKernelManager

    log_path = Path(log_path).absolute()  # papermill launches the kernel from inside the notebook's folder

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> Any:
            with open(log_path, "ab") as log:  # the kernel keeps its own copy of the descriptor
                return await super()._async_launch_kernel(kernel_cmd, **(kw | {"stdout": log, "stderr": log}))

    return LoggedKernelManager


def write_config(folder: str | Path, config: dict) -> dict:
    """Write ``config.json`` into a run folder with ``files``: the SHA-256 of every other file in it
    (what :func:`verify_run` checks before the run is reused or read). Returns the written config."""
    folder = Path(folder)
    files = {}
    for file in sorted(folder.rglob("*")):
        rel = file.relative_to(folder).as_posix()
        if file.is_file() and rel != "config.json" and not any(part.startswith(".") for part in file.relative_to(folder).parts):
            files[rel] = file_digest(file)
    config = dict(config) | {"files": files}
    tmp = folder / ".config.json.tmp"
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, folder / "config.json")
    return config


def verify_run(folder: str | Path) -> str | None:
    """``None`` when ``folder`` holds a complete run whose files are all as it recorded them; else the
    reason, in a few words (unreadable config, not complete, a file missing or changed)."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        return "no config.json"
    except (OSError, ValueError) as err:
        return f"config.json is unreadable ({_first_line(err, 80)})"
    if not isinstance(config, dict):
        return "config.json is not an object"
    if config.get("status") != "complete":
        return f"status is {config.get('status')!r}, not 'complete'"
    files = config.get("files")
    if not isinstance(files, dict):
        return "config.json lists no checksums (written by an older runner)"
    for name in REQUIRED_FILES:
        if name not in files:
            return f"config.json lists no {name}"
    for rel, digest in files.items():
        file = folder / rel
        if not file.is_file():
            return f"{rel} is missing"
        try:
            if file_digest(file) != digest:
                return f"{rel} changed since the run finished"
        except OSError as err:
            return f"{rel} is unreadable ({err.strerror or err})"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftover_pid(folder: Path, kind: str) -> int | None:
    """The pid in ``.<name>.<kind>-<pid>``, or None when the name is not of that form."""
    head, _, pid = folder.name.rpartition(f".{kind}-")
    return int(pid) if head and pid.isdigit() else None


def _restore_aside(final: Path) -> None:
    """A ``.<name>.old-<pid>`` of a dead process (a replacement cut short) is put back when ``final``
    is missing, else deleted."""
    for old in final.parent.glob(f".{final.name}.old-*"):
        pid = _leftover_pid(old, "old")
        if pid is None or pid == os.getpid() or _pid_alive(pid):
            continue
        if not final.exists():
            old.rename(final)
        else:
            shutil.rmtree(old, ignore_errors=True)


def _tidy_leftovers(final: Path, adopt: bool) -> Path | None:
    """Clean up what killed or failed runs of ``final`` left, and return the folder to resume from.

    Replacements cut short are undone (:func:`_restore_aside`). The ``.<name>.partial-<pid>`` folders
    of dead processes and ``<name>.failed`` are candidates to resume from (when ``adopt``, the newest
    one holding checkpoints wins); the others are deleted. A partial
    folder of a live process means the same run is being executed now: that is refused.
    """
    parent = final.parent
    if not parent.is_dir():
        return None
    _restore_aside(final)
    candidates = []
    for partial in parent.glob(f".{final.name}.partial-*"):
        pid = _leftover_pid(partial, "partial")
        if pid is None:
            continue
        if pid != os.getpid() and _pid_alive(pid):
            raise ConfigError(f"process {pid} is executing this run now (folder {partial}); wait for it or stop it")
        candidates.append(partial)
    failed = final.with_name(final.name + ".failed")
    if failed.is_dir():
        candidates.append(failed)
    candidates.sort(key=lambda p: ((p / "checkpoints").is_dir(), p.stat().st_mtime_ns), reverse=True)
    keep = candidates[0] if adopt and candidates else None
    for folder in candidates:
        if folder != keep:
            shutil.rmtree(folder, ignore_errors=True)
    return keep


def _replace_folder(new: Path, final: Path) -> None:
    """Rename ``new`` to ``final``, replacing an existing ``final`` so that a kill at any moment leaves
    either the old or the new folder (or the old one aside as ``.<name>.old-<pid>``, put back by the next run)."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    try:
        new.rename(final)
    except BaseException:
        if old is not None and not final.exists():
            old.rename(final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _process_table() -> dict[int, tuple[int, float]]:
    """``{pid: (parent pid, CPU seconds of it and its reaped children)}`` from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        # after the command name: state ppid ... utime(12) stime(13) cutime(14) cstime(15) (0-based here)
        table[int(entry.name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]) / tick)
    return table


def _descendants(pid: int, table: dict[int, tuple[int, float]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, pending = set(), [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def _new_descendants(known: set[int]) -> set[int]:
    """This process's descendants that are not in ``known`` (empty where there is no /proc)."""
    if not os.path.isdir("/proc"):
        return set()
    return _descendants(os.getpid(), _process_table()) - known


def _end_processes(pids: set[int], wait_s: float = 5.0) -> None:
    """SIGKILL ``pids`` and wait (up to ``wait_s``) until they are gone."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{pid}") and _pid_alive(pid) and
                                              not _is_zombie(pid) for pid in pids):
        time.sleep(0.05)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


class KernelWatchdog(threading.Thread):
    """Ends a run whose kernel (and its child processes) used no CPU for ``idle_s`` seconds.

    A notebook of this book computes in every cell, so a kernel that stays idle while the runner waits
    for a cell's reply is a lost message (both sides wait on their sockets forever): the watchdog kills
    the kernel's processes, papermill reports a dead kernel, and the runner names the cell. Linux only
    (it reads /proc); elsewhere it does nothing and the per-cell timeout remains.
    """

    def __init__(self, idle_s: float, interval_s: float | None = None, exclude: set[int] | frozenset = frozenset()) -> None:
        super().__init__(daemon=True, name="kernel-watchdog")
        self.idle_s = idle_s
        self.exclude = set(exclude)  # processes that are not the kernel's (they were there before it)
        self.interval_s = interval_s if interval_s is not None else max(0.5, min(10.0, idle_s / 10))
        self.fired = False
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def run(self) -> None:
        if not os.path.isdir("/proc"):
            return
        last: tuple[frozenset, float] | None = None
        quiet_since = time.monotonic()
        while not self._stop_event.wait(self.interval_s):
            table = _process_table()
            pids = _descendants(os.getpid(), table) - self.exclude
            now = time.monotonic()
            if not pids:  # the kernel is not started yet (papermill's start timeout covers that)
                last, quiet_since = None, now
                continue
            state = (frozenset(pids), sum(table[p][1] for p in pids))
            # progress: a process came or went, or they used at least 2 % of a core since the last look
            if last is None or state[0] != last[0] or state[1] - last[1] >= 0.02 * self.interval_s:
                quiet_since = now
            last = state
            if now - quiet_since >= self.idle_s:
                self.fired = True
                _end_processes(pids)
                return


def run(
    notebook: str | Path,
    preset: str = "cpu",
    parameters: dict[str, Any] | None = None,
    runs_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    cell_timeout: float | None = None,
    idle_timeout: float | None = None,
) -> RunResult:
    """Execute ``notebook`` with ``preset`` and ``parameters`` (or reuse the finished identical run).

    A run is reused only when :func:`verify_run` accepts its folder; otherwise it is executed again,
    resuming the checkpoints of an earlier attempt that was killed, interrupted or failed (``force``
    starts afresh and replaces even a verified run). ``cell_timeout`` (seconds a cell may run) and
    ``idle_timeout`` (seconds the kernel may use no CPU) default to the preset's ``CELL_TIMEOUT_S``
    and ``IDLE_TIMEOUT_S``.
    """
    import papermill

    parameters = dict(parameters or {})
    path, checked = check_run_request(notebook, preset, parameters)
    stem = notebook_stem(path)
    if runs_dir is not None and not str(runs_dir).strip():
        raise ConfigError("runs_dir is empty; give a folder (default runs/)")
    runs = Path(runs_dir) if runs_dir is not None else RUNS_DIR
    # A notebook that reads other runs is re-run when any of them changed, not reused.
    if reads_runs(path):
        # the runs it will read: its runs_root parameter as the notebook (running in its folder) sees it
        read_root = path.parent / Path(checked["runs_root"]).expanduser() if checked.get("runs_root") else runs
        key = run_key(path, preset, checked, runs_digest(read_root, preset, exclude=stem))
    else:
        key = run_key(path, preset, checked)
    final = runs / stem / f"{preset}-{key}"
    if final.parent.is_dir():
        _restore_aside(final)
    if final.is_dir() and not force:
        problem = verify_run(final)
        if problem is None:
            _tidy_leftovers(final, adopt=False)
            return RunResult(final, reused=True)
        print(f"run folder {final} is not a complete run ({problem}): executing it again", file=sys.stderr)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create run directory {final.parent}: {err.strerror or err}") from err
    if not os.access(final.parent, os.W_OK):
        raise ConfigError(f"run directory {final.parent} is not writable")
    partial = final.parent / f".{final.name}.partial-{os.getpid()}"
    resumed = _tidy_leftovers(final, adopt=not force)
    shutil.rmtree(partial, ignore_errors=True)
    if resumed is not None:
        resumed.rename(partial)
        for name in (*REQUIRED_FILES, "config.json"):  # written again by this run
            (partial / name).unlink(missing_ok=True)
        if (partial / "checkpoints").is_dir():
            print(f"resuming {stem} ({preset}) from the checkpoints of an earlier, unfinished attempt ({resumed.name})",
                  file=sys.stderr)
    else:
        partial.mkdir()
    seed = int(checked.get("seed", 0))
    device = str(checked.get("device", "auto"))
    resolved = vars(load_config(stem, preset, **(checked | {"run_dir": str(partial)})))
    weights = weight_files(checked, path.parent)
    commit, dirty = _git("rev-parse", "HEAD"), bool(_git("status", "--porcelain", "--untracked-files=no"))
    cell_timeout = cell_timeout if cell_timeout is not None else CELL_TIMEOUT_S.get(preset, max(CELL_TIMEOUT_S.values()))
    idle_timeout = idle_timeout if idle_timeout is not None else IDLE_TIMEOUT_S.get(preset, max(IDLE_TIMEOUT_S.values()))
    before = _new_descendants(set())  # processes this one had before the kernel started: not the kernel's
    watchdog = KernelWatchdog(idle_timeout, exclude=before)
    started = time.time()  # the commit is the one the run started from, not whatever HEAD is when it ends
    failed = final.with_name(final.name + ".failed")
    try:
        watchdog.start()
        try:
            papermill.execute_notebook(
                str(path),
                str(partial / "notebook.ipynb"),
                parameters=checked | {"preset": preset, "run_dir": str(partial.resolve())},
                cwd=str(path.parent),
                kernel_name="python3",
                progress_bar=progress,
                request_save_on_cell_execute=True,
                execution_timeout=cell_timeout,
                start_timeout=KERNEL_START_TIMEOUT_S,
                kernel_manager_class=_kernel_manager(partial / KERNEL_LOG),
            )
        finally:
            watchdog.stop()
        (partial / KERNEL_LOG).unlink(missing_ok=True)  # kept only with a failed run
        if not (partial / "metrics.json").is_file():
            raise RunFailed(f"{path.name} finished but wrote no metrics.json (call inpaintlib.runner.save_metrics)")
        try:
            json.loads((partial / "metrics.json").read_text())
        except ValueError as err:
            raise RunFailed(f"{path.name} wrote a metrics.json that is not JSON ({_first_line(err)})") from err
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt):  # a kernel left running would go on writing into the folder
            # The user asked to stop: papermill's and asyncio's complaints about the kernel ended here
            # (a dead kernel, a task never awaited) would bury the one line that says what happened.
            for name in ("papermill", "asyncio"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
            _end_processes(_new_descendants(before))
        shutil.rmtree(failed, ignore_errors=True)
        if partial.exists():
            partial.rename(failed)
        where = _running_cell(failed / "notebook.ipynb")
        again = "run the same command again to resume it"
        log = f" (kernel output in {failed / KERNEL_LOG})" if (failed / KERNEL_LOG).is_file() and \
            (failed / KERNEL_LOG).stat().st_size else ""
        if isinstance(err, KeyboardInterrupt):
            raise
        if watchdog.fired:
            raise RunFailed(f"{path.name} ({preset}): {where} made no progress for {idle_timeout:.0f} s (the kernel "
                            f"used no CPU: a lost kernel message or a stuck cell); stopped and kept in {failed}; {again}") from err
        if isinstance(err, RunFailed):
            raise
        if isinstance(err, papermill.PapermillExecutionError):
            raise RunFailed(f"{path.name} ({preset}): {_failing_cell(err)}; executed notebook kept in {failed}") from err
        if isinstance(err, TimeoutError) or "Timeout" in type(err).__name__:
            raise RunFailed(f"{path.name} ({preset}): {where} ran past the limit of {cell_timeout:.0f} s per cell "
                            f"({type(err).__name__}); kept in {failed}; {again}") from err
        if not isinstance(err, Exception):
            raise
        raise RunFailed(f"{path.name} ({preset}): {type(err).__name__}: {_first_line(err)}; partial run kept in {failed}"
                        f"{log}; {again}") from err
    config = {
        "notebook": path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else str(path),
        "preset": preset,
        "key": key,
        "overrides": checked,
        "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in resolved.items() if k not in ("run_dir", "checkpoint_dir")},
        "seed": seed,
        "environment": library_environment(),
        "weights": weights,
        "data": resolved["data"],
        "resumed_from": resumed.name if resumed is not None else None,
        "device": _device_description(device),
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": _versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_time_s": round(time.time() - started, 2),
        "status": "complete",
    }
    write_config(partial, config)
    _replace_folder(partial, final)
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
