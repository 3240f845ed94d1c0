"""The runner and CLI: validation before any work, run folders, reuse, failures named by cell."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from inpaintlib.__main__ import main
from inpaintlib.config import ConfigError, load_config, preset_values, validate_parameters
from inpaintlib.runner import RunFailed, run, write_config

PARAMS = 'preset = "cpu"\nseed = 0\ndevice = "auto"\nrun_dir = None\ndata_root = None\nstats_images = None\n'


def _notebook(tmp_path, body: str, params: str = PARAMS, name: str = "00_data_and_masks"):
    """A tiny notebook named like a real one, so it gets that notebook's presets."""
    nb = new_notebook()
    cell = new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder = tmp_path / "nbs"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


WRITES_METRICS = (
    "from inpaintlib.config import load_config\nfrom inpaintlib.runner import save_metrics\n"
    "cfg = load_config('00_data_and_masks', preset, run_dir=run_dir, stats_images=stats_images)\n"
    "save_metrics(cfg.run_dir, {'stats_images': cfg.stats_images, 'seed': cfg.seed})\n"
)


def test_presets_merge_common_and_notebook_sections():
    smoke = preset_values("01_unet_baseline", "smoke")
    assert smoke["image_size"] == 32 and smoke["channels"] == [8, 16, 32, 64]
    assert preset_values("01_unet_baseline", "cpu")["image_size"] == 64


@pytest.mark.parametrize(
    "preset, params, message",
    [
        ("fast", {}, "unknown preset 'fast'"),
        ("cpu", {"stepz": 3}, "unknown parameter 'stepz'"),
        ("cpu", {"steps": "many"}, "parameter 'steps' must be like"),
        ("cpu", {"steps": True}, "parameter 'steps' must be like"),
        ("cpu", {"channels": [8, "x"]}, "parameter 'channels' must be like"),
        ("cpu", {"seed": 1.5}, "parameter 'seed' must be int"),
        ("cpu", {"preset": "smoke"}, "contradicts"),
    ],
)
def test_bad_parameters_fail_with_one_clear_line(preset, params, message):
    with pytest.raises(ConfigError, match=message) as err:
        validate_parameters("01_unet_baseline", preset, params)
    assert "\n" not in str(err.value)


def test_load_config_resolves_none_to_the_preset(tmp_path):
    cfg = load_config("01_unet_baseline", "smoke", steps=None, batch_size=2, run_dir=str(tmp_path / "r"))
    assert cfg.steps == 4 and cfg.batch_size == 2 and cfg.seed == 0
    assert cfg.run_dir.is_dir() and cfg.checkpoint_dir == cfg.run_dir / "checkpoints"


def test_run_writes_a_complete_folder_and_reuses_it(tmp_path):
    nb = _notebook(tmp_path, WRITES_METRICS)
    runs = tmp_path / "runs"
    first = run(nb, "smoke", {"stats_images": 3}, runs_dir=runs, progress=False)
    assert not first.reused and first.path.parent == runs / "00_data_and_masks"
    assert sorted(p.name for p in first.path.iterdir()) == ["config.json", "metrics.json", "notebook.ipynb"]
    assert first.metrics == {"seed": 0, "stats_images": 3}
    config = first.config
    assert config["preset"] == "smoke" and config["overrides"] == {"stats_images": 3}
    assert config["parameters"]["image_size"] == 32 and config["parameters"]["stats_images"] == 3
    assert {"torch", "numpy", "python"} <= set(config["versions"]) and config["device"]["resolved"] == "cpu"
    assert config["wall_time_s"] > 0 and config["seed"] == 0 and "git_commit" in config
    executed = nbformat.read(first.path / "notebook.ipynb", as_version=4)
    assert any(c.get("outputs") is not None for c in executed.cells if c.cell_type == "code")

    again = run(nb, "smoke", {"stats_images": 3}, runs_dir=runs, progress=False)
    assert again.reused and again.path == first.path
    other = run(nb, "smoke", {"stats_images": 4}, runs_dir=runs, progress=False)
    assert not other.reused and other.path != first.path
    assert not any(p.name.startswith(".") for p in (runs / "00_data_and_masks").iterdir())


def test_failed_run_names_the_cell_and_leaves_no_finished_folder(tmp_path):
    nb = _notebook(tmp_path, "x = 1\nraise ValueError('the data folder is empty')")
    runs = tmp_path / "runs"
    # [3]: the execution count in the executed notebook, after the cell papermill injects
    with pytest.raises(RunFailed, match=r"cell \[3\] raised ValueError: the data folder is empty"):
        run(nb, "smoke", runs_dir=runs, progress=False)
    names = [p.name for p in (runs / "00_data_and_masks").iterdir()]
    assert len(names) == 1 and names[0].endswith(".failed")


def test_notebook_without_metrics_fails(tmp_path):
    nb = _notebook(tmp_path, "x = 1")
    with pytest.raises(RunFailed, match="wrote no metrics.json"):
        run(nb, "smoke", runs_dir=tmp_path / "runs", progress=False)


def test_notebook_without_parameters_cell_or_parameter(tmp_path):
    nb = _notebook(tmp_path, WRITES_METRICS, params="# no tags here")
    nbj = json.loads(nb.read_text())
    nbj["cells"][0]["metadata"]["tags"] = []
    nb.write_text(json.dumps(nbj))
    with pytest.raises(ConfigError, match="no cell tagged 'parameters'"):
        run(nb, "smoke", runs_dir=tmp_path / "runs")
    nb2 = _notebook(tmp_path, WRITES_METRICS, params='preset = "cpu"\nrun_dir = None', name="01_unet_baseline")
    with pytest.raises(ConfigError, match="does not declare parameter"):
        run(nb2, "smoke", {"steps": 3}, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "notebooks/01_unet_baseline.ipynb", "--preset", "turbo"], "unknown preset 'turbo'"),
        (["run", "notebooks/01_unet_baseline.ipynb", "-p", "stepz", "5"], "unknown parameter 'stepz'"),
        (["run", "notebooks/01_unet_baseline.ipynb", "-p", "steps", "five"], "parameter 'steps' must be like"),
        (["run", "notebooks/does_not_exist.ipynb"], "notebook not found"),
        (["run-all", "--preset", "turbo"], "unknown preset 'turbo'"),
    ],
)
def test_cli_refuses_bad_requests_in_one_line(argv, message, capsys, tmp_path):
    assert main(argv + ["--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def _fake_run(runs, stem: str, name: str, metrics: dict, started: str, overrides: dict | None = None, status="complete"):
    """A run folder as the runner leaves it (config.json + metrics.json), written by hand."""
    folder = runs / stem / name
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "notebook.ipynb").write_text("{}")
    config = {"preset": name.split("-")[0], "overrides": overrides or {}, "started": started, "status": status}
    write_config(folder, config)  # with the checksums the runner verifies
    return folder


def test_latest_runs_prefers_runs_without_overrides_then_the_newest(tmp_path):
    from inpaintlib.runner import latest_runs

    runs = tmp_path / "runs"
    _fake_run(runs, "01_unet_baseline", "smoke-aaa", {"v": 1}, "2026-01-01T00:00:00Z")
    newest = _fake_run(runs, "01_unet_baseline", "smoke-bbb", {"v": 2}, "2026-01-02T00:00:00Z")
    _fake_run(runs, "01_unet_baseline", "smoke-ccc", {"v": 3}, "2026-01-03T00:00:00Z", overrides={"steps": 9})
    _fake_run(runs, "01_unet_baseline", "cpu-ddd", {"v": 4}, "2026-01-04T00:00:00Z")
    only_overridden = _fake_run(runs, "02_contextual_attention", "smoke-eee", {"v": 5}, "2026-01-01T00:00:00Z", overrides={"steps": 9})
    _fake_run(runs, "03_csa", "smoke-fff", {"v": 6}, "2026-01-05T00:00:00Z", status="running")
    (runs / "03_csa" / "smoke-ggg.failed").mkdir()
    assert latest_runs(runs, "smoke") == {"01_unet_baseline": newest, "02_contextual_attention": only_overridden}
    assert latest_runs(tmp_path / "nowhere", "smoke") == {}


def _execute_without_kernel(input_path, output_path, parameters, **kwargs):
    """Stands in for papermill.execute_notebook: what the runner needs of an execution, in milliseconds."""
    Path(output_path).write_text(Path(input_path).read_text())
    (Path(parameters["run_dir"]) / "metrics.json").write_text("{}")


def test_a_notebook_that_reads_runs_is_rerun_when_another_run_changes(tmp_path, monkeypatch):
    import papermill

    import inpaintlib.runner

    monkeypatch.setattr(papermill, "execute_notebook", _execute_without_kernel)
    monkeypatch.setattr(inpaintlib.runner, "_source_digest", lambda stem, code: "library")  # others may edit it meanwhile
    monkeypatch.setattr(inpaintlib.runner, "_device_description", lambda device: {"requested": device})  # no torch import
    nb_path = _notebook(tmp_path, "x = 1", name="09_comparison")
    nb = nbformat.read(nb_path, as_version=4)
    nb.metadata["inpaintlib"] = {"reads_runs": True}
    nbformat.write(nb, nb_path)
    runs = tmp_path / "runs"
    baseline = _fake_run(runs, "01_unet_baseline", "smoke-aaa", {"results": {"unet": 1}}, "2026-01-01T00:00:00Z")
    first = run(nb_path, "smoke", runs_dir=runs, progress=False)
    assert not first.reused
    assert run(nb_path, "smoke", runs_dir=runs, progress=False).reused  # nothing changed
    (baseline / "metrics.json").write_text(json.dumps({"results": {"unet": 2}}))
    write_config(baseline, json.loads((baseline / "config.json").read_text()))  # a new, verified result
    changed = run(nb_path, "smoke", runs_dir=runs, progress=False)
    assert not changed.reused and changed.path != first.path
    from inpaintlib.runner import reads_runs, run_key, runs_digest

    seen = runs_digest(runs, "smoke", exclude="09_comparison")
    _fake_run(runs, "02_contextual_attention", "smoke-bbb", {"results": {}}, "2026-01-01T00:00:00Z")
    assert runs_digest(runs, "smoke", exclude="09_comparison") != seen  # a new chapter run counts too
    assert runs_digest(runs, "cpu", exclude="09_comparison") == runs_digest(tmp_path, "cpu", exclude="x")  # other presets do not
    assert reads_runs(nb_path) and not reads_runs(_notebook(tmp_path, "x = 1"))
    assert run_key(nb_path, "smoke", {}, "digest-a") != run_key(nb_path, "smoke", {}, "digest-b")
    # a notebook without the flag keeps the key it had before run-reading existed
    plain = _notebook(tmp_path, "x = 1", name="01_unet_baseline")
    assert run_key(plain, "smoke", {}) == run_key(plain, "smoke", {}, None)


def test_run_key_follows_the_library_modules_a_notebook_imports():
    from inpaintlib.config import REPO_ROOT
    from inpaintlib.runner import library_files

    files = {p.relative_to(REPO_ROOT).as_posix() for p in library_files(["from inpaintlib.models.unet import UNetMethod\n"
                                                                         "from inpaintlib import metrics as m"])}
    assert {"inpaintlib/models/unet.py", "inpaintlib/train.py", "inpaintlib/losses.py", "inpaintlib/metrics.py"} <= files
    assert "inpaintlib/data/scenes.py" not in files  # the U-Net module does not import the data set
    assert "inpaintlib/lbp.py" not in files
    both = library_files(["from inpaintlib.data import (\n    ScenesDataset,\n    render_scene,\n)\n"])
    assert any(p.name == "scenes.py" for p in both)


def test_run_key_follows_the_weight_files_named_in_the_environment(tmp_path, monkeypatch):
    from inpaintlib.runner import run_key

    for name in [n for n in os.environ if n.startswith("INPAINTLIB_")]:
        monkeypatch.delenv(name)
    nb_path = _notebook(tmp_path, WRITES_METRICS)
    plain = run_key(nb_path, "smoke", {})
    monkeypatch.setenv("INPAINTLIB_LPIPS_VGG16", "/weights/vgg16.pth")
    with_weights = run_key(nb_path, "smoke", {})
    monkeypatch.setenv("INPAINTLIB_LPIPS_VGG16", "/weights/other.pth")
    assert len({plain, with_weights, run_key(nb_path, "smoke", {})}) == 3
    monkeypatch.delenv("INPAINTLIB_LPIPS_VGG16")
    monkeypatch.setenv("UNRELATED_VARIABLE", "1")
    assert run_key(nb_path, "smoke", {}) == plain


def test_gpu_machine_scripts_import_without_jupyter():
    """The lent GPU machine has torch but no Jupyter stack: the DDP script and the benchmarks, which use
    the runner's provenance helpers, must import without nbformat and papermill."""
    blocked = "import sys\nfor m in ('nbformat', 'papermill', 'nbclient', 'ipywidgets'):\n    sys.modules[m] = None\n"
    code = blocked + "import runpy\nrunpy.run_path('scripts/train_ddp.py')\nimport benchmarks.run_all\n"
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_device_record_names_the_cpu_its_kernels_and_threads():
    import torch

    from inpaintlib.runner import _device_description, cpu_model

    found = _device_description("cpu")
    assert found["resolved"] == "cpu" and found["cpu_model"] == cpu_model() == found["name"]
    assert found["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert found["cpu_threads"] == str(torch.get_num_threads())
    assert cpu_model() not in ("", "x86_64") or not Path("/proc/cpuinfo").is_file()  # a model, not the architecture
