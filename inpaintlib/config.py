"""Presets and run configuration: what a notebook's ``parameters`` cell resolves to.

``presets/`` (next to this file) is the single source of the preset values: ``common.yaml`` for
knobs every notebook has, and one ``<notebook>.yaml`` per notebook. A notebook declares
its knobs with default ``None`` and calls ``load_config(name, preset, **knobs)``; the runner uses
``validate_parameters`` to refuse unknown names and ill-typed values before any work starts.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

PRESETS_DIR = Path(__file__).with_name("presets")
REPO_ROOT = Path(__file__).resolve().parent.parent
PRESETS: tuple[str, ...] = ("smoke", "cpu", "gpu")
# Parameters every notebook has besides its preset knobs, with the types they accept.
FIXED_PARAMETERS: dict[str, tuple[type, ...]] = {
    "preset": (str,),
    "seed": (int,),
    "device": (str,),
    "run_dir": (str, type(None)),
    "data_root": (str, type(None)),
}


# Chapters that cannot run on a folder of photos (``data_root``), and why: refused in one line before
# any work. The others train and evaluate on the folder (inpaintlib.data.sources).
NO_FOLDER_DATA: dict[str, str] = {
    "00_data_and_masks": "chapter 0 shows the procedural Scenes data set itself",
    **{chapter: f"{what} per-pixel labels of the Scenes classes (and is scored by a segmenter trained on Scenes); "
                "a folder of photos has no such labels, and labelled layouts (Cityscapes, ADE20K) have other classes"
       for chapter, what in (("04_sge_net", "SGE-Net's segmentation branch needs"),
                             ("05_coherence_priors", "the coherence priors' segmentation head needs"),
                             ("06_saca", "SACA's segmentation head needs"),
                             ("07_spl", "SPL's semantic prior teacher needs"))},
}
FOLDER_CHAPTERS = "01, 02, 03, 08 and the comparison (09)"
# Where interactive sessions (Jupyter) put their run folders when ``run_dir`` is not given.
INTERACTIVE_RUNS = REPO_ROOT / "runs" / "interactive"


class ConfigError(ValueError):
    """A preset or parameter problem, reported in one line before any work starts."""


@lru_cache(maxsize=None)
def _read_presets(name: str) -> dict:
    with open(PRESETS_DIR / f"{name}.yaml") as f:
        sections = yaml.safe_load(f)
    if set(sections) != set(PRESETS):
        raise ConfigError(f"presets/{name}.yaml must have exactly the sections {', '.join(PRESETS)}")
    return sections


def notebook_names() -> list[str]:
    """Notebooks that have a presets file."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml") if p.stem != "common")


def preset_values(notebook: str, preset: str) -> dict[str, Any]:
    """The knob values of ``preset`` for ``notebook``: the common section, then the notebook's own."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if notebook not in notebook_names():
        raise ConfigError(f"no presets file presets/{notebook}.yaml; known notebooks: {', '.join(notebook_names())}")
    return dict(_read_presets("common")[preset]) | dict(_read_presets(notebook)[preset] or {})


def _type_ok(value: Any, reference: Any) -> bool:
    """``value`` may replace ``reference``: same type, an int for a float, or a list of the same item type."""
    if isinstance(reference, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(reference, bool)
    if isinstance(reference, float):
        return isinstance(value, (int, float))
    if isinstance(reference, list):
        return isinstance(value, list) and all(_type_ok(v, reference[0]) for v in value) if reference else isinstance(value, list)
    return isinstance(value, type(reference))


def validate_parameters(notebook: str, preset: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Check names and types of user parameters; returns them (ints given for floats become floats)."""
    knobs = preset_values(notebook, preset)
    checked = {}
    for name, value in parameters.items():
        if name == "data_root" and value is not None:
            _check_data_root(notebook, value)
        if name in FIXED_PARAMETERS:
            if not isinstance(value, FIXED_PARAMETERS[name]) or isinstance(value, bool):
                allowed = " or ".join("None" if t is type(None) else t.__name__ for t in FIXED_PARAMETERS[name])
                raise ConfigError(f"parameter {name!r} must be {allowed}, got {value!r}")
        elif name in knobs:
            if not _type_ok(value, knobs[name]):
                raise ConfigError(
                    f"parameter {name!r} must be like {knobs[name]!r} ({type(knobs[name]).__name__}), got {value!r}"
                )
            if isinstance(knobs[name], float):
                value = float(value)
        else:
            valid = sorted(set(FIXED_PARAMETERS) | set(knobs))
            raise ConfigError(f"unknown parameter {name!r} for {notebook}; valid: {', '.join(valid)}")
        checked[name] = value
    if "preset" in checked and checked["preset"] != preset:
        raise ConfigError(f"parameter 'preset' ({checked['preset']!r}) contradicts the preset {preset!r}")
    return checked


def _check_data_root(notebook: str, value: Any) -> None:
    """A ``data_root`` this notebook can use: a folder of at least two photos, in a chapter that trains on it."""
    if notebook in NO_FOLDER_DATA:
        raise ConfigError(f"parameter 'data_root' is not available in {notebook}: {NO_FOLDER_DATA[notebook]}; "
                          f"chapters {FOLDER_CHAPTERS} run on a folder")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"parameter 'data_root' must be a folder path, got {value!r}")
    from inpaintlib.data.folders import FolderDatasetError
    from inpaintlib.data.sources import open_data_root

    try:
        open_data_root(value)
    except FolderDatasetError as err:
        raise ConfigError(f"parameter 'data_root': {err}") from err


def load_config(notebook: str, preset: str, **parameters: Any) -> SimpleNamespace:
    """The resolved configuration of a notebook run; ``None`` parameters take the preset's value.

    ``run_dir`` becomes a ``Path``, created if needed; ``checkpoint_dir`` is ``run_dir / "checkpoints"``;
    ``data`` records the training and evaluation data (``{"name": "scenes"}`` or the ``data_root`` folder's
    layout, path, image counts and fingerprint).
    Without ``run_dir`` (an interactive session) it is ``runs/interactive/<notebook>-<preset>-<key>``,
    ``key`` a hash of every resolved value (:func:`interactive_key`): a session with other parameters
    gets its own folder, so the trainer never resumes a model trained with other parameters.
    """
    given = {k: v for k, v in parameters.items() if v is not None}
    given.setdefault("seed", 0)
    given.setdefault("device", "auto")
    cfg = preset_values(notebook, preset) | validate_parameters(notebook, preset, given)
    run_dir = cfg.pop("run_dir", None)
    from inpaintlib.data.sources import data_record

    data = data_record(cfg.get("data_root"))
    keyed = cfg | {"data": data} if "data_root" in cfg else cfg  # a folder's contents, not only its path
    run_dir = Path(run_dir) if run_dir else INTERACTIVE_RUNS / f"{notebook}-{preset}-{interactive_key(keyed)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.setdefault("data_root", None)
    return SimpleNamespace(
        notebook=notebook, preset=preset, run_dir=run_dir, checkpoint_dir=run_dir / "checkpoints", data=data, **cfg
    )



def interactive_key(values: dict[str, Any]) -> str:
    """10 hex digits of the SHA-256 of the resolved parameters (``run_dir`` excluded) and of the
    library's source files (an edited library trains anew too)."""
    shown = {k: str(v) if isinstance(v, Path) else v for k, v in values.items() if k != "run_dir"}
    h = hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode())
    for source in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(source.read_bytes())
    return h.hexdigest()[:10]
