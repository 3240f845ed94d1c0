"""Issue 20, defects 6 and 9 with a real kernel: an interrupted run resumes, a stuck run ends.

- Ctrl-C during training: one line, exit 130, the run kept; running again resumes the trainer from its
  last checkpoint (not step 0), saying so.
- A kernel that goes quiet while the runner waits (what a lost kernel message looks like) is ended by
  the watchdog in one line naming the cell; a cell that never ends is ended by the per-cell timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_helpers import make_notebook

from inpaintlib.config import REPO_ROOT
from inpaintlib.runner import RunFailed, run

pytestmark = pytest.mark.slow

TRAINING = """
import contextlib, io, json, time
from pathlib import Path
from inpaintlib.data.batches import InpaintingBatches
from inpaintlib.models.unet import UNetMethod
from inpaintlib.runner import save_metrics
from inpaintlib.train import Trainer, seed_everything

seed_everything(0)
scenes = InpaintingBatches.scenes(32, 8, 4, seed=0)
first_step = []
def batches(step):
    first_step.append(step)
    time.sleep(0.4)  # slow enough (30 steps, 12 s) to be interrupted well before the end
    return scenes(step)
said = io.StringIO()
with contextlib.redirect_stderr(said):
    trainer = Trainer(UNetMethod((4, 8)), batches, 30, checkpoint_dir=Path(run_dir) / "checkpoints" / "unet",
                      checkpoint_every=1, progress=False)
    trainer.fit()
save_metrics(run_dir, {"first_step": first_step[0], "steps": trainer.step, "stderr": said.getvalue()})
"""


@pytest.fixture
def kernel_environment(monkeypatch):
    """The kernel imports this checkout's library; no weight files from the developer's shell."""
    for name in [n for n in os.environ if n.startswith("INPAINTLIB_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_6_ctrl_c_gives_one_line_and_exit_130_and_the_rerun_resumes(tmp_path, kernel_environment):
    nb = make_notebook(tmp_path / "nbs", TRAINING)
    runs = tmp_path / "runs"
    # A terminal delivers Ctrl-C to a process whose SIGINT is at its default; a test run started in the
    # background (`cmd &` in a script) inherits SIGINT ignored, so the child resets it as a terminal would.
    cli = subprocess.Popen([sys.executable, "-m", "inpaintlib", "run", str(nb), "--preset", "smoke", "--runs-dir", str(runs)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        def checkpoint_at_step_2():
            for ckpt in (runs / nb.stem).glob(".smoke-*.partial-*/checkpoints/unet/latest.safetensors"):
                from safetensors import safe_open
                import json

                try:
                    with safe_open(str(ckpt), "pt") as f:
                        if json.loads(f.metadata()["trainer"])["step"] >= 2:
                            return ckpt
                except Exception:  # noqa: BLE001 - being replaced right now
                    pass
            return None

        _wait_for(checkpoint_at_step_2, 180, "the second checkpoint")
        cli.send_signal(signal.SIGINT)  # what Ctrl-C sends to the runner (the kernel has its own session)
        _, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 130, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted: "), err[-2000:]
    kept = list((runs / nb.stem).glob("*.failed"))
    assert len(kept) == 1 and (kept[0] / "checkpoints" / "unet" / "latest.safetensors").is_file()
    time.sleep(1.5)
    assert not list((runs / nb.stem).glob(".*.partial-*")), "the interrupted kernel must not write on"

    done = run(nb, "smoke", runs_dir=runs, progress=False)
    metrics = done.metrics
    assert metrics["steps"] == 30 and metrics["first_step"] >= 2, metrics
    assert f"resuming from step {metrics['first_step']} of 30" in metrics["stderr"]
    assert [p.name for p in (runs / nb.stem).iterdir()] == [done.path.name]


def test_9_the_watchdog_ends_a_run_whose_kernel_went_quiet(tmp_path, kernel_environment):
    nb = make_notebook(tmp_path / "nbs", "import time\ntime.sleep(600)  # like a reply that never comes")
    runs = tmp_path / "runs"
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])  # idle, not the kernel's
    started = time.monotonic()
    try:
        with pytest.raises(RunFailed, match=r"cell \[3\] \(import time\) made no progress for 4 s") as err:
            run(nb, "smoke", runs_dir=runs, progress=False, idle_timeout=4)
        assert bystander.poll() is None, "the watchdog ends the kernel only"
    finally:
        bystander.kill()
        bystander.wait()
    assert time.monotonic() - started < 120 and "\n" not in str(err.value)
    assert "run the same command again to resume" in str(err.value)
    assert [p.name for p in (runs / nb.stem).iterdir()][0].endswith(".failed")


def test_9_a_cell_that_never_ends_is_ended_by_the_cell_timeout(tmp_path, kernel_environment):
    nb = make_notebook(tmp_path / "nbs", "while True:\n    pass")
    started = time.monotonic()
    with pytest.raises(RunFailed, match=r"cell \[3\] \(while True:\) ran past the limit of 3 s per cell") as err:
        run(nb, "smoke", runs_dir=tmp_path / "runs", progress=False, cell_timeout=3)
    assert time.monotonic() - started < 120 and "\n" not in str(err.value)


def test_a_relative_runs_folder_works(tmp_path, monkeypatch, kernel_environment):
    """``make test`` passes ``runs`` (relative); papermill starts the kernel from the notebook's folder, so
    the kernel's log file must not be opened relative to that folder."""
    nb = make_notebook(tmp_path / "nbs", "from inpaintlib.runner import save_metrics\nsave_metrics(run_dir, {'ok': 1})")
    monkeypatch.chdir(tmp_path)
    done = run(nb, "smoke", runs_dir=Path("runs"), progress=False)
    assert (tmp_path / done.path / "metrics.json").is_file() and not (tmp_path / done.path / "kernel.log").exists()
