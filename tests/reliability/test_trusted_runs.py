"""Issue 20: a run is reused, read or compared only when it is what it claims to be.

One test (or a few) per defect of the issue, numbered like it; each fails on the code before the fix.
Most use a stand-in for papermill (``fake_papermill``), so they test the runner's decisions in
milliseconds; the ones that need a real kernel are in ``test_stuck_and_killed_runs.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import inpaintlib.config as config_module
from inpaintlib.__main__ import _parse_parameters, main
from inpaintlib.config import ConfigError, load_config
from inpaintlib.runner import RunFailed, RunResult, check_run_request, latest_runs, run, runs_digest

from reliability_helpers import PARAMS, make_notebook

try:  # names added by the fix; the tests that use them fail (not error at collection) on the old code
    from inpaintlib.runner import verify_run, write_config
except ImportError:  # pragma: no cover - old code
    def write_config(folder, config):
        (Path(folder) / "config.json").write_text(json.dumps(config))
        return config

    def verify_run(folder):
        return "not verified (no verify_run)"


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# 1. Interactive reruns report a different model ------------------------------------------------


def test_1_interactive_sessions_with_other_parameters_do_not_share_a_model(tmp_path, monkeypatch):
    from inpaintlib.data.batches import InpaintingBatches
    from inpaintlib.models.unet import UNetMethod
    from inpaintlib.train import Trainer

    monkeypatch.setattr(config_module, "INTERACTIVE_RUNS", tmp_path / "interactive", raising=False)
    monkeypatch.setattr(config_module, "REPO_ROOT", tmp_path)  # where the old code put interactive runs
    models = {}
    for lr in (0.001, 0.5):  # chapter 1 in Jupyter, run twice with another learning rate
        cfg = load_config("01_unet_baseline", "smoke", lr=lr, steps=2)
        method = UNetMethod((4, 8), lr=cfg.lr)
        batches = InpaintingBatches.scenes(cfg.image_size, 8, cfg.batch_size, seed=0)
        trainer = Trainer(method, batches, cfg.steps, checkpoint_dir=cfg.checkpoint_dir / "unet", progress=False)
        trainer.fit()
        models[lr] = (cfg.run_dir, trainer, {k: v.clone() for k, v in method.state_dict().items()})
    (dir_a, _, weights_a), (dir_b, trainer_b, weights_b) = models[0.001], models[0.5]
    assert dir_a != dir_b and dir_a.parent == dir_b.parent == tmp_path / "interactive"
    assert any(row.get("losses") for row in trainer_b.history), "the second session trained its own model"
    assert any(not torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert load_config("01_unet_baseline", "smoke", lr=0.001, steps=2).run_dir == dir_a  # same parameters: same folder


def test_1_trainer_refuses_a_checkpoint_from_past_its_steps_and_says_when_it_resumes(tmp_path, capsys):
    from inpaintlib.data.batches import InpaintingBatches
    from inpaintlib.models.unet import UNetMethod
    from inpaintlib.train import CheckpointError, Trainer

    batches = InpaintingBatches.scenes(32, 8, 4, seed=0)
    Trainer(UNetMethod((4, 8)), batches, 3, checkpoint_dir=tmp_path, progress=False).fit()
    capsys.readouterr()
    with pytest.raises(CheckpointError, match=r"at step 3, past this run's 2 steps") as err:
        Trainer(UNetMethod((4, 8)), batches, 2, checkpoint_dir=tmp_path, progress=False).fit()
    assert "\n" not in str(err.value)
    Trainer(UNetMethod((4, 8)), batches, 4, checkpoint_dir=tmp_path, progress=False).fit()
    err = capsys.readouterr().err
    assert "resuming from step 3 of 4" in err and err.count("\n") == 1


# 2. data_root is accepted and never used -------------------------------------------------------


def _photos(folder: Path, count: int) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (12, 10), (20 * i, 40, 60)).save(folder / f"{i}.png")
    return folder


def test_2_a_bad_data_root_is_refused_in_one_line_before_any_work(tmp_path, fake_papermill, capsys):
    with pytest.raises(ConfigError, match="'data_root': data root .*nope does not exist"):
        check_run_request("01_unet_baseline", "smoke", {"data_root": str(tmp_path / "nope")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no images"):
        load_config("01_unet_baseline", "smoke", data_root=str(tmp_path / "empty"), run_dir=str(tmp_path / "r"))
    with pytest.raises(ConfigError, match="not available in 04_sge_net"):
        check_run_request("04_sge_net", "smoke", {"data_root": str(_photos(tmp_path / "few", 3))})
    for folder in ("empty", str(_photos(tmp_path / "one", 1))):
        argv = ["run", "01_unet_baseline", "--preset", "smoke", "-p", "data_root", str(tmp_path / folder),
                "--runs-dir", str(tmp_path / "runs")]
        assert main(argv) == 2
        assert "data_root" in _one_line_error(capsys)
    assert not fake_papermill.calls and not (tmp_path / "runs").exists()


def test_2_a_data_root_reaches_the_notebook_and_its_contents_key_the_run(tmp_path, fake_papermill, monkeypatch):
    _photos(tmp_path / "mine", 6)
    monkeypatch.chdir(tmp_path)  # a relative folder is taken from where the command was typed
    first = run("01_unet_baseline", "smoke", {"data_root": "mine"}, runs_dir=tmp_path / "runs", progress=False)
    assert fake_papermill.calls[-1]["parameters"]["data_root"] == str((tmp_path / "mine").resolve())
    assert first.config["data"]["name"] == "flat" and first.config["data"]["train_images"] == 5
    assert run("01_unet_baseline", "smoke", {"data_root": "mine"}, runs_dir=tmp_path / "runs", progress=False).reused
    _photos(tmp_path / "mine", 7)  # one more photo: another data set, another run
    second = run("01_unet_baseline", "smoke", {"data_root": "mine"}, runs_dir=tmp_path / "runs", progress=False)
    assert not second.reused and second.path != first.path and len(fake_papermill.calls) == 2


# 3. Incomplete run folders are reused as finished ----------------------------------------------


def _damage(kind: str, folder: Path) -> None:
    if kind == "metrics truncated":
        (folder / "metrics.json").write_text((folder / "metrics.json").read_text()[:5])
    elif kind == "metrics deleted":
        (folder / "metrics.json").unlink()
    elif kind == "notebook deleted":
        (folder / "notebook.ipynb").unlink()
    elif kind == "checkpoint corrupted":
        path = folder / "checkpoints" / "latest.safetensors"
        path.write_bytes(b"\x00" * len(path.read_bytes()))
    elif kind == "config corrupted":
        (folder / "config.json").write_text('{"status": "compl')
    elif kind == "status not complete":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(config | {"status": "running"}))


DAMAGES = ["metrics truncated", "metrics deleted", "notebook deleted", "checkpoint corrupted", "config corrupted",
           "status not complete"]


@pytest.mark.parametrize("damage", DAMAGES)
def test_3_a_damaged_run_folder_is_executed_again_not_reused(damage, tmp_path, fake_papermill, clean_environment, capsys):
    nb = make_notebook(tmp_path / "nbs", "x = 1")
    runs = tmp_path / "runs"
    first = run(nb, "smoke", runs_dir=runs, progress=False)
    assert verify_run(first.path) is None and "files" in first.config
    assert run(nb, "smoke", runs_dir=runs, progress=False).reused
    _damage(damage, first.path)
    capsys.readouterr()
    again = run(nb, "smoke", runs_dir=runs, progress=False)
    assert not again.reused and again.path == first.path and len(fake_papermill.calls) == 2
    assert verify_run(again.path) is None and again.metrics["results"]
    err = capsys.readouterr().err
    assert "not a complete run" in err and err.count("\n") == 1


def test_3_force_replaces_a_run_folder_atomically(tmp_path, fake_papermill, clean_environment, monkeypatch):
    nb = make_notebook(tmp_path / "nbs", "x = 1")
    runs = tmp_path / "runs"
    first = run(nb, "smoke", runs_dir=runs, progress=False)
    before = first.metrics
    rename = Path.rename

    def killed_while_renaming(self, target):  # the process dies as the new folder is renamed into place
        if ".partial-" in self.name and Path(target) == first.path:
            raise KeyboardInterrupt
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", killed_while_renaming)
    with pytest.raises(KeyboardInterrupt):
        run(nb, "smoke", runs_dir=runs, progress=False, force=True)
    monkeypatch.setattr(Path, "rename", rename)
    assert verify_run(first.path) is None and first.metrics == before, "the old run must survive"
    forced = run(nb, "smoke", runs_dir=runs, progress=False, force=True)
    assert not forced.reused and forced.metrics != before and verify_run(forced.path) is None


def test_3_a_replacement_cut_short_is_put_back_by_the_next_run(tmp_path, fake_papermill, clean_environment):
    nb = make_notebook(tmp_path / "nbs", "x = 1")
    runs = tmp_path / "runs"
    first = run(nb, "smoke", runs_dir=runs, progress=False)
    aside = first.path.with_name(f".{first.path.name}.old-{_dead_pid()}")
    first.path.rename(aside)  # a --force run killed between its two renames
    again = run(nb, "smoke", runs_dir=runs, progress=False)
    assert again.reused and again.path == first.path and not aside.exists()


# 4. The comparison silently uses another run; a missing runs_root is "missing" chapters -----------


def _chapter_run(runs: Path, stem: str, name: str, psnr: float, overrides: dict | None = None) -> Path:
    folder = runs / stem / name
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"results": {"model": {"overall": {"psnr_hole": psnr}, "n": 4}}}))
    (folder / "notebook.ipynb").write_text("{}")
    write_config(folder, {"notebook": f"notebooks/{stem}.ipynb", "preset": "smoke", "overrides": overrides or {},
                          "started": "2026-01-01T00:00:00Z", "status": "complete", "parameters": {"image_size": 32}})
    return folder


def test_4_the_comparison_refuses_a_run_with_other_parameters_unless_asked(tmp_path):
    from inpaintlib.compare import collect

    runs = tmp_path / "runs"
    default = _chapter_run(runs, "01_unet_baseline", "smoke-aaa", 20.0)
    _chapter_run(runs, "01_unet_baseline", "smoke-bbb", 9.0, overrides={"steps": 1})
    chosen = collect(runs, "smoke", ["01_unet_baseline"])
    assert [r.path for r in chosen] == [default]
    (default / "metrics.json").write_text("{\"results\": {}")  # the default run becomes unusable
    with pytest.raises(ValueError, match=r"01_unet_baseline/smoke-bbb.*steps=1.*allow_overrides") as err:
        collect(runs, "smoke", ["01_unet_baseline"])
    assert "\n" not in str(err.value)
    named = []
    chosen = collect(runs, "smoke", ["01_unet_baseline"], allow_overrides=True, report=named.append)
    assert chosen[0].path.name == "smoke-bbb" and named == ["01_unet_baseline: 01_unet_baseline/smoke-bbb with overrides steps=1"]


def test_4_a_missing_runs_root_fails_in_one_line(tmp_path):
    from inpaintlib.compare import collect

    with pytest.raises(ValueError, match="runs folder .*nowhere does not exist") as err:
        collect(tmp_path / "nowhere", "smoke", ["01_unet_baseline"])
    assert "\n" not in str(err.value)


# 5. Weight files are identified by path, not content ------------------------------------------


def test_5_replacing_a_weight_file_behind_the_same_name_runs_again(tmp_path, fake_papermill, clean_environment, monkeypatch):
    nb = make_notebook(tmp_path / "nbs", "x = 1", name="09_comparison", reads_runs=True,
                       params=PARAMS + "runs_root = None\n")
    runs = tmp_path / "runs"
    extractor = tmp_path / "weights" / "inception.pt"
    extractor.parent.mkdir()
    extractor.write_bytes(b"extractor A")
    monkeypatch.setenv("INPAINTLIB_FID_EXTRACTOR", str(extractor))
    first = run(nb, "smoke", runs_dir=runs, progress=False)
    assert run(nb, "smoke", runs_dir=runs, progress=False).reused
    extractor.write_bytes(b"extractor B")  # same path, other network
    second = run(nb, "smoke", runs_dir=runs, progress=False)
    assert not second.reused and second.path != first.path
    recorded = second.config["weights"]["INPAINTLIB_FID_EXTRACTOR"]
    assert recorded["path"] == str(extractor) and len(recorded["sha256"]) == 64


def test_5_a_teacher_checkpoint_parameter_counts_by_content(tmp_path, fake_papermill, clean_environment):
    nb = make_notebook(tmp_path / "nbs", "x = 1", name="07_spl", params=PARAMS + "teacher_checkpoint = None\n")
    runs = tmp_path / "runs"
    teacher = tmp_path / "teacher.safetensors"
    teacher.write_bytes(b"teacher A")
    params = {"teacher_checkpoint": str(teacher)}
    first = run(nb, "smoke", params, runs_dir=runs, progress=False)
    assert run(nb, "smoke", params, runs_dir=runs, progress=False).reused
    teacher.write_bytes(b"teacher B")
    assert not run(nb, "smoke", params, runs_dir=runs, progress=False).reused
    assert first.config["weights"]["teacher_checkpoint"]["path"] == str(teacher)


# 6. Killed runs restart from step 0 and leave .partial-<pid> folders (runner side) ---------------


def test_6_a_killed_runs_folder_is_resumed_and_cleaned_up(tmp_path, fake_papermill, clean_environment, capsys):
    nb = make_notebook(tmp_path / "nbs", "x = 1")
    runs = tmp_path / "runs"
    from inpaintlib.runner import run_key

    key = run_key(nb, "smoke", {})
    dead, dead_too = (_dead_pid() for _ in range(2))
    killed = runs / nb.stem / f".smoke-{key}.partial-{dead}"  # what `kill -9` of the runner leaves
    (killed / "checkpoints").mkdir(parents=True)
    (killed / "checkpoints" / "latest.safetensors").write_bytes(b"step 2")
    older = runs / nb.stem / f".smoke-{key}.partial-{dead_too}"  # killed before its first checkpoint
    older.mkdir()
    done = run(nb, "smoke", runs_dir=runs, progress=False)
    assert fake_papermill.calls[0]["resumed"], "the run must start from the killed run's checkpoints"
    assert "resuming" in capsys.readouterr().err and done.config["resumed_from"] == killed.name
    assert sorted(p.name for p in (runs / nb.stem).iterdir()) == [done.path.name]


def test_6_a_failed_run_is_kept_and_resumed_by_the_next_run(tmp_path, fake_papermill, clean_environment):
    nb = make_notebook(tmp_path / "nbs", "x = 1")
    runs = tmp_path / "runs"
    fake_papermill.fail = True
    with pytest.raises(RunFailed, match="the machine went away.*run the same command again") as err:
        run(nb, "smoke", runs_dir=runs, progress=False)
    assert "\n" not in str(err.value)
    fake_papermill.fail = False
    done = run(nb, "smoke", runs_dir=runs, progress=False)
    assert fake_papermill.calls[1]["resumed"] and verify_run(done.path) is None
    assert [p.name for p in (runs / nb.stem).iterdir()] == [done.path.name]


def test_6_the_same_run_executing_in_another_live_process_is_refused(tmp_path, fake_papermill, clean_environment):
    nb = make_notebook(tmp_path / "nbs", "x = 1")
    runs = tmp_path / "runs"
    from inpaintlib.runner import run_key

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (runs / nb.stem / f".smoke-{run_key(nb, 'smoke', {})}.partial-{other.pid}").mkdir(parents=True)
        with pytest.raises(ConfigError, match=f"process {other.pid} is executing this run now"):
            run(nb, "smoke", runs_dir=runs, progress=False)
    finally:
        other.kill()
        other.wait()


# 7. Tracebacks instead of one line ----------------------------------------------------------------


def test_7_a_corrupt_config_json_in_another_run_folder_is_skipped(tmp_path, fake_papermill, clean_environment):
    runs = tmp_path / "runs"
    good = _chapter_run(runs, "01_unet_baseline", "smoke-aaa", 20.0)
    broken = runs / "02_contextual_attention" / "smoke-bbb"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{not json")
    assert latest_runs(runs, "smoke") == {"01_unet_baseline": good}
    runs_digest(runs, "smoke", exclude="09_comparison")
    nb = make_notebook(tmp_path / "nbs", "x = 1", name="09_comparison", reads_runs=True,
                       params=PARAMS + "runs_root = None\n")
    assert not run(nb, "smoke", runs_dir=runs, progress=False).reused


@pytest.mark.parametrize("content", ["this is not json", '{"cells": 5, "nbformat": 4}'])
def test_7_a_notebook_that_is_not_a_notebook_fails_in_one_line(content, tmp_path, capsys):
    nb = tmp_path / "00_data_and_masks.ipynb"
    nb.write_text(content)
    assert main(["run", str(nb), "--preset", "smoke", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "is not a valid Jupyter notebook" in _one_line_error(capsys)


def test_7_the_book_names_a_run_that_lost_its_notebook(tmp_path):
    from inpaintlib.book import BookBuildError, assemble

    folder = _chapter_run(tmp_path / "runs", "01_unet_baseline", "smoke-aaa", 20.0)
    (folder / "notebook.ipynb").unlink()
    with pytest.raises(BookBuildError, match=r"smoke-aaa/notebook.ipynb") as err:
        assemble([RunResult(folder, reused=True)], tmp_path / "src")
    assert "\n" not in str(err.value)


class NotAStateDict:  # pickled by reference: torch.load(weights_only=True) refuses it with a long message
    pass


def test_7_an_unreadable_lpips_file_is_named_in_one_line(tmp_path):
    from inpaintlib.lpips import LPIPS, LPIPSWeightsError
    from inpaintlib.runner import _failing_cell

    bad = tmp_path / "vgg16-397923af.pth"
    torch.save({"x": NotAStateDict()}, bad)
    with pytest.raises(LPIPSWeightsError) as err:
        LPIPS.from_files(bad, bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)

    class CellError(Exception):  # what papermill reports for a cell that raised a multi-line message
        exec_count, ename = 7, "LPIPSWeightsError"
        evalue = f"cannot read VGG16 weights {bad}: UnpicklingError: Weights only load failed.\nPlease file an issue.\nCheck the docs."

    line = _failing_cell(CellError())
    assert line.startswith("cell [7] raised LPIPSWeightsError") and str(bad) in line


def test_7_unexpected_errors_and_failed_runs_exit_1_in_one_line(tmp_path, fake_papermill, clean_environment, capsys):
    nb = make_notebook(tmp_path / "nbs", "x = 1")
    fake_papermill.fail = True
    assert main(["run", str(nb), "--preset", "smoke", "--runs-dir", str(tmp_path / "runs")]) == 1
    assert "the machine went away" in _one_line_error(capsys)


# 9. A run can hang forever (runner side: papermill gets timeouts) ---------------------------------


def test_9_papermill_gets_a_start_timeout_and_a_cell_timeout_scaled_to_the_preset(tmp_path, fake_papermill, clean_environment):
    nb = make_notebook(tmp_path / "nbs", "x = 1")
    for preset in ("smoke", "cpu", "gpu"):
        run(nb, preset, runs_dir=tmp_path / "runs", progress=False)
    timeouts = [call["kwargs"].get("execution_timeout") for call in fake_papermill.calls]
    assert all(call["kwargs"].get("start_timeout") for call in fake_papermill.calls)
    assert all(t is not None for t in timeouts) and timeouts[0] < timeouts[1] < timeouts[2]


# 10. Smaller: run_dir, --runs-dir "", numbers people type ----------------------------------------


def test_10_run_dir_is_refused_and_an_empty_runs_dir_too(tmp_path, fake_papermill, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "01_unet_baseline", "--preset", "smoke", "-p", "run_dir", str(tmp_path / "x"),
                 "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "run_dir" in _one_line_error(capsys)
    assert main(["run", "01_unet_baseline", "--preset", "smoke", "--runs-dir", ""]) == 2
    assert "--runs-dir" in _one_line_error(capsys)
    assert not fake_papermill.calls and not any(tmp_path.iterdir())


@pytest.mark.parametrize("typed, value", [("1e-4", 1e-4), ("2E-3", 2e-3), (".5", 0.5), ("0.001", 0.001), ("3", 3)])
def test_10_numbers_are_read_as_people_type_them(typed, value):
    parsed = _parse_parameters([["lr", typed]])["lr"]
    assert parsed == value and type(parsed) is type(value)
    _, checked = check_run_request("01_unet_baseline", "smoke", {"lr": parsed})
    assert checked["lr"] == pytest.approx(float(value))
    assert _parse_parameters([["recipe", "nan"]])["recipe"] == "nan"  # words stay words


# Beyond the list ----------------------------------------------------------------------------------


def test_beyond_a_comparison_of_another_runs_root_is_rerun_when_a_run_there_changes(tmp_path, fake_papermill,
                                                                                     clean_environment):
    nb = make_notebook(tmp_path / "nbs", "x = 1", name="09_comparison", reads_runs=True,
                       params=PARAMS + "runs_root = None\n")
    other = tmp_path / "colleague_runs"
    chapter = _chapter_run(other, "01_unet_baseline", "smoke-aaa", 20.0)
    params = {"runs_root": str(other)}
    runs = tmp_path / "runs"
    first = run(nb, "smoke", params, runs_dir=runs, progress=False)
    assert run(nb, "smoke", params, runs_dir=runs, progress=False).reused
    (chapter / "metrics.json").write_text(json.dumps({"results": {"model": {"overall": {"psnr_hole": 30.0}}}}))
    write_config(chapter, json.loads((chapter / "config.json").read_text()))  # a new, complete result there
    again = run(nb, "smoke", params, runs_dir=runs, progress=False)
    assert not again.reused and again.path != first.path
