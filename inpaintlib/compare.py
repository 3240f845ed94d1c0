"""The comparison chapter: every model of every chapter in one table, each number tied to its run.

The runner leaves one folder per run, ``<runs root>/<notebook>/<preset>-<key>/`` (``inpaintlib.runner``),
and every chapter's ``metrics.json`` holds ``{"results": {model: EvalResult.summary() | {"params",
"train_seconds", "steps", optionally "semantic": {"miou", "miou_hole"} and "inpainter"}}}``.

- ``collect`` picks the newest complete, verified run of each chapter for one preset
  (``runner.latest_runs``), names each, and refuses runs made with parameter overrides unless asked; a
  chapter the table expects but that has no run is kept, with no path.
- ``model_rows`` flattens the runs into one row per model; a chapter without a run (or without
  results) is one explicit row whose numbers are NaN and print as "missing", never as 0. The classical
  baselines, which every chapter scores, appear once unless a chapter scored them on other data.
- ``comparison_table``, ``bucket_table``, ``table_html`` (each number a link to its run) and
  ``plot_buckets`` present the rows; ``provenance_table`` and ``budget_notes`` say where they came
  from and whether the budgets match; ``split_by_budget`` keeps the main table to models trained on the
  same number of images, and ``paired_versus`` compares models seed by seed and image by image from the
  per-image scores each chapter records (``seed_scores``).
- ``composed_outputs`` runs every model it can rebuild on the same inputs: the classical methods always,
  a learned model when its chapter recorded an ``inpainter_spec`` beside its results; ``example_grid``
  shows them, and ``perceptual_scores`` scores them with LPIPS and FID when the user supplies those networks.
"""

from __future__ import annotations

import html
import importlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from inpaintlib.classical import CLASSICAL_METHODS
from inpaintlib.evaluate import Benchmark, EvalResult, evaluate
from inpaintlib.masks import BUCKET_NAMES
from inpaintlib.runner import latest_runs
from inpaintlib.stats import HELPS, HURTS, NO_EFFECT, paired_comparison, seed_interval, verdict
from inpaintlib.train import CheckpointError, load_weights

InpaintFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

OVERALL_METRICS: tuple[str, ...] = ("psnr_hole", "ssim_hole", "l1_hole", "psnr", "ssim", "l1")
SEMANTIC_METRICS: tuple[str, ...] = ("miou", "miou_hole")
COST_COLUMNS: tuple[str, ...] = ("params", "train_seconds", "steps", "images_per_s")
SEED_COLUMNS: tuple[str, ...] = ("psnr_hole_seed_std", "seeds", "images_seen")
NUMBER_COLUMNS: tuple[str, ...] = (OVERALL_METRICS + SEMANTIC_METRICS + COST_COLUMNS + ("image_size", "eval_images")
                                   + SEED_COLUMNS)
HEADINGS = {
    "psnr_hole": "PSNR hole (dB)", "ssim_hole": "SSIM hole", "l1_hole": "L1 hole", "psnr": "PSNR (dB)",
    "ssim": "SSIM", "l1": "L1", "miou": "mIoU", "miou_hole": "mIoU hole", "params": "parameters",
    "train_seconds": "training (s)", "steps": "steps", "images_per_s": "images/s", "image_size": "size (px)",
    "eval_images": "eval images", "psnr_hole_seed_std": "± seed std (dB)", "seeds": "seeds",
    "images_seen": "images seen",
}
FORMATS = {
    "psnr_hole": "{:.2f}", "psnr": "{:.2f}", "ssim_hole": "{:.3f}", "ssim": "{:.3f}", "l1_hole": "{:.4f}",
    "l1": "{:.4f}", "miou": "{:.3f}", "miou_hole": "{:.3f}", "params": "{:,.0f}", "train_seconds": "{:.1f}",
    "steps": "{:.0f}", "images_per_s": "{:.1f}", "image_size": "{:.0f}", "eval_images": "{:.0f}",
    "psnr_hole_seed_std": "{:.2f}", "seeds": "{:.0f}", "images_seen": "{:,.0f}",
}
TABLE_STYLE = (
    ".comparison-table td, .comparison-table th { padding: 2px 6px; text-align: right; white-space: nowrap; }"
    " .comparison-table tbody th, .comparison-table td:last-child { text-align: left; }"
    " .comparison-table td.missing, .comparison-table td.not-reported { color: #888; font-style: italic; }"
)
MISSING = "missing"        # the chapter has no complete run (or its run has no results)
NOT_REPORTED = "n/a"       # the run exists but did not measure this number


@dataclass(frozen=True)
class ChapterRun:
    """A chapter's newest complete run of one preset; ``path`` is None when there is none."""

    chapter: str
    path: Path | None
    metrics: dict
    config: dict


@dataclass(frozen=True)
class ModelRow:
    """One model of one chapter's run, or (``model`` None) a chapter with nothing to show."""

    label: str
    chapter: str
    model: str | None
    run: ChapterRun

    @property
    def status(self) -> str:
        if self.model is not None:
            return "ok"
        return MISSING if self.run.path is None else "no results"

    @property
    def result(self) -> dict:
        return self.run.metrics["results"][self.model] if self.model is not None else {}


def chapter_number(stem: str) -> str:
    """``"03_csa"`` -> ``"03"``: chapters are matched by number, so a renamed notebook still counts."""
    return stem.split("_", 1)[0]


def _load_run(stem: str, folder: Path) -> ChapterRun:
    return ChapterRun(stem, folder, json.loads((folder / "metrics.json").read_text()), json.loads((folder / "config.json").read_text()))


class RunSelectionError(ValueError):
    """The comparison cannot use the runs it found (no runs folder, or runs with other parameters); one line."""


def _overrides_text(overrides: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in sorted(overrides.items()))


def collect(runs_root: str | Path, preset: str, chapters: Sequence[str], exclude: Sequence[str] = (),
            allow_overrides: bool = False, report: Callable[[str], None] | None = None) -> list[ChapterRun]:
    """The newest complete, verified run of ``preset`` for each expected chapter (matched by number),
    plus any other notebook's run that has ``results``; ``exclude`` (e.g. the comparison itself) is skipped.

    An expected chapter without a run is returned with ``path=None``. Sorted by chapter. A run made with
    parameter overrides (``-p steps 1``...) is a different experiment from the preset's: unless
    ``allow_overrides``, finding one where a chapter has no run with the preset's own parameters raises
    ``RunSelectionError`` naming it. A missing ``runs_root`` raises too. ``report`` (e.g. ``print``)
    receives one line per run used, naming its folder (and its overrides); ``provenance_table`` shows them too.
    """
    runs_root = Path(runs_root)
    if not runs_root.is_dir():
        raise RunSelectionError(f"runs folder {runs_root} does not exist; run the chapters first "
                                f"(python -m inpaintlib run-all --preset {preset}) or set runs_root")
    latest = {stem: folder for stem, folder in latest_runs(runs_root, preset).items() if stem not in exclude}
    loaded = {stem: _load_run(stem, folder) for stem, folder in latest.items()}
    runs, used = [], set()
    for expected in chapters:
        same = sorted(s for s in latest if chapter_number(s) == chapter_number(expected))
        match = expected if expected in latest else (same[0] if same else None)
        if match is None:
            runs.append(ChapterRun(expected, None, {}, {}))
        else:
            used.add(match)
            runs.append(loaded[match])
    for stem in latest:
        if stem not in used and loaded[stem].metrics.get("results"):
            runs.append(loaded[stem])
    overridden = [run for run in runs if run.config.get("overrides")]
    if overridden and not allow_overrides:
        run = overridden[0]
        more = f" (and {len(overridden) - 1} more)" if len(overridden) > 1 else ""
        raise RunSelectionError(
            f"the only complete {preset} run of {run.chapter} is {run_name(run, runs_root)}, made with other parameters "
            f"({_overrides_text(run.config['overrides'])}){more}; run the chapter with its preset's parameters, "
            f"or pass allow_overrides=True (-p allow_overrides true) to compare it anyway")
    runs = sorted(runs, key=lambda r: r.chapter)
    if report is not None:
        for run in runs:
            extra = f" with overrides {_overrides_text(run.config['overrides'])}" if run.config.get("overrides") else ""
            report(f"{run.chapter}: {run_name(run, runs_root)}{extra}")
    return runs


def _quality(result: dict) -> tuple:
    return tuple(result.get("overall", {}).get(k) for k in OVERALL_METRICS) + (result.get("n"),)


def model_rows(runs: Sequence[ChapterRun]) -> list[ModelRow]:
    """One row per model of every run, one row per chapter without results.

    A model is kept once: a later chapter's copy of a model with the same name is dropped when its
    quality numbers (and image count) equal an earlier one's. That is a classical baseline scored on
    the same benchmark, or the U-Net reference a chapter trained on the same batches, seeds and recipe
    as chapter 1 (training is deterministic, so the copy is the same model).
    """
    entries: list[tuple[str, str | None, ChapterRun]] = []
    seen: dict[str, set[tuple]] = {}
    for run in runs:
        results = run.metrics.get("results") or {}
        if not results:
            entries.append((run.chapter, None, run))
        for model, result in results.items():
            if _quality(result) in seen.setdefault(model, set()):
                continue
            seen[model].add(_quality(result))
            entries.append((run.chapter, model, run))
    counts: dict[str, int] = {}
    for _, model, _ in entries:
        if model is not None:
            counts[model] = counts.get(model, 0) + 1
    return [
        ModelRow(chapter if model is None else model if counts[model] == 1 else f"{model} ({chapter_number(chapter)})", chapter, model, run)
        for chapter, model, run in entries
    ]


def _numbers(row: ModelRow) -> dict[str, float]:
    """The row's numbers; NaN for anything absent (a missing run, or a number a chapter did not report)."""
    result = row.result
    values = dict.fromkeys(NUMBER_COLUMNS, math.nan)
    values.update({k: float(v) for k, v in result.get("overall", {}).items() if k in OVERALL_METRICS})
    values.update({k: float(v) for k, v in result.get("semantic", {}).items() if k in SEMANTIC_METRICS})
    values.update({k: float(result[k]) for k in COST_COLUMNS if k in result})
    if "seed_spread" in result:
        values["seeds"] = float(len(result["seed_spread"]["seeds"]))
        values["psnr_hole_seed_std"] = float(result["seed_spread"].get("std", math.nan))
    if "budget" in result:
        values["images_seen"] = float(result["budget"]["images_seen"])
    if "n" in result:
        values["eval_images"] = float(result["n"])
    if row.model is not None and "image_size" in row.run.config.get("parameters", {}):
        values["image_size"] = float(row.run.config["parameters"]["image_size"])
    return values


def run_name(run: ChapterRun, runs_root: str | Path) -> str:
    """The run folder relative to the runs root (``01_unet_baseline/cpu-1a2b3c4d5e``), or "missing"."""
    return MISSING if run.path is None else Path(os.path.relpath(run.path, runs_root)).as_posix()


def comparison_table(rows: Sequence[ModelRow], runs_root: str | Path):
    """A pandas table, one row per ``ModelRow`` (index: label): chapter, status, every number, run."""
    import pandas as pd

    records = {
        row.label: {"chapter": row.chapter, "status": row.status} | _numbers(row) | {"run": run_name(row.run, runs_root)}
        for row in rows
    }
    return pd.DataFrame.from_dict(records, orient="index")


def bucket_table(rows: Sequence[ModelRow], metric: str = "psnr_hole"):
    """Rows = models with results, columns = hole-ratio buckets, values = ``metric`` (NaN where absent)."""
    import pandas as pd

    return pd.DataFrame.from_dict(
        {
            row.label: {b: float(row.result.get("buckets", {}).get(b, {}).get(metric, math.nan)) for b in BUCKET_NAMES}
            for row in rows
            if row.model is not None
        },
        orient="index",
        columns=list(BUCKET_NAMES),
    )


def book_href(row: ModelRow) -> str:
    """Link to the chapter's page in the rendered book (beside the comparison page): the executed
    notebook of the run the numbers came from."""
    return f"{row.chapter}.html"


def run_href(base: str | Path) -> Callable[[ModelRow], str]:
    """Links to the executed ``notebook.ipynb`` in each run folder, relative to ``base`` (the folder
    of the notebook that shows the table)."""
    return lambda row: Path(os.path.relpath(row.run.path / "notebook.ipynb", base)).as_posix()


def table_html(rows: Sequence[ModelRow], runs_root: str | Path, href: Callable[[ModelRow], str] = book_href,
               columns: Sequence[str] = NUMBER_COLUMNS) -> str:
    """An HTML table (class ``comparison-table``) of ``rows`` and ``columns``, with the run folder last:
    each number links (``href``) to the run it came from; a chapter without a run reads "missing" in
    every cell, a number not measured "n/a"."""
    head = "".join(f"<th>{html.escape(HEADINGS[c])}</th>" for c in columns)
    lines = [
        f"<style>{TABLE_STYLE}</style>",
        '<div class="comparison-scroll" style="overflow-x: auto">',
        f'<table class="comparison-table"><thead><tr><th>model</th>{head}<th>run</th></tr></thead><tbody>',
    ]
    for row in rows:
        values, run = _numbers(row), run_name(row.run, runs_root)
        cells = []
        for c in columns:
            if row.model is None:
                cells.append(f'<td class="missing">{MISSING}</td>')
            elif math.isnan(values[c]):
                cells.append(f'<td class="not-reported">{NOT_REPORTED}</td>')
            else:
                title = html.escape(f"{HEADINGS[c]} of {row.model}, run {run}", quote=True)
                cells.append(f'<td><a href="{html.escape(href(row), quote=True)}" title="{title}">{FORMATS[c].format(values[c])}</a></td>')
        status = "" if row.model is not None else f" ({row.status})"
        lines.append(
            f'<tr class="{row.status.replace(" ", "-")}"><th>{html.escape(row.label)}{status}</th>'
            f"{''.join(cells)}<td><code>{html.escape(run)}</code></td></tr>"
        )
    lines.append("</tbody></table></div>")
    return "\n".join(lines)


def plot_buckets(rows: Sequence[ModelRow], metrics: Sequence[str] = ("psnr_hole", "ssim_hole", "l1_hole")):
    """One panel per metric: each model's value per hole-ratio bucket. Chapters without results are
    named under the panels as missing. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    colours, markers = plt.get_cmap("tab20"), "osv^DPX*<>"
    for ax, metric in zip(axes[0], metrics):
        table = bucket_table(rows, metric)
        for i, (label, values) in enumerate(table.iterrows()):  # distinct colour and marker per model
            ax.plot(range(len(BUCKET_NAMES)), values.to_numpy(), marker=markers[i % len(markers)],
                    color=colours(i % 20), markersize=4, label=label)
        ax.set_xticks(range(len(BUCKET_NAMES)), BUCKET_NAMES, rotation=30, fontsize=8)
        ax.set_title(HEADINGS[metric], fontsize=10)
        ax.set_xlabel("hole ratio", fontsize=8)
    if axes[0][-1].lines:
        axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    absent = [f"{row.chapter} ({row.status})" for row in rows if row.model is None]
    if absent:
        fig.text(0.01, -0.02, "not in the plots: " + ", ".join(absent), fontsize=8, ha="left", va="top", wrap=True)
    fig.tight_layout()
    return fig


def provenance_table(runs: Sequence[ChapterRun], runs_root: str | Path):
    """Where each chapter's numbers came from: run folder, commit, device, start and wall time."""
    import pandas as pd

    return pd.DataFrame.from_dict(
        {
            run.chapter: {
                "run": run_name(run, runs_root),
                "started": run.config.get("started", MISSING),
                "wall time (s)": run.config.get("wall_time_s", MISSING),
                "commit": (run.config.get("git_commit") or MISSING)[:10] + (" (dirty)" if run.config.get("git_dirty") else ""),
                "device": run.config.get("device", {}).get("name", MISSING),
            }
            for run in runs
        },
        orient="index",
    )


def budget_notes(rows: Sequence[ModelRow]) -> list[str]:
    """Sentences naming the models whose image size, number of evaluation images or training images seen
    differs from the most common one (the table is only a fair comparison where they agree)."""
    notes = []
    for column, what in (("image_size", "image size"), ("eval_images", "evaluation images"), ("images_seen", "images seen")):
        values = {row.label: _numbers(row)[column] for row in rows if row.model is not None}
        known = [v for v in values.values() if not math.isnan(v)]
        if not known:
            continue
        common = max(set(known), key=known.count)
        odd = [f"{label} ({v:,.0f})" for label, v in values.items() if not math.isnan(v) and v != common]
        if odd:
            notes.append(f"{what} differs from the usual {common:,.0f}: {', '.join(odd)}")
    data = {row.label: data_name(row.run) for row in rows if row.model is not None}
    if len(set(data.values())) > 1:
        notes.append("trained and scored on different data: " + ", ".join(f"{label} ({name})" for label, name in data.items()))
    return notes


def data_name(run: ChapterRun) -> str:
    """The data a run trained and was scored on: "scenes", or a folder's layout and path (``data_root``)."""
    data = run.metrics.get("data") or run.config.get("data") or {"name": "scenes"}
    return data["name"] if data["name"] == "scenes" else f"{data['name']} {data.get('root', '')}".strip()


def is_classical(row: ModelRow) -> bool:
    """A method that does not train (its numbers do not depend on a budget)."""
    return row.model in CLASSICAL_METHODS


def split_by_budget(rows: Sequence[ModelRow], images_seen: int) -> tuple[list[ModelRow], list[ModelRow]]:
    """``(equal, other)``: the classical methods and every model trained on exactly ``images_seen`` images,
    and the rest (longer or shorter runs, and models whose run did not record a budget). The main
    table of the comparison shows only ``equal``; chapters without results go with ``equal`` (as missing)."""
    equal, other = [], []
    for row in rows:
        seen = _numbers(row)["images_seen"]
        (equal if row.model is None or is_classical(row) or seen == images_seen else other).append(row)
    return equal, other


def seed_scores(row: ModelRow, metric: str = "psnr_hole") -> np.ndarray | None:
    """The row's per-seed, per-image scores ``(seeds, images)`` as its chapter recorded them, or None."""
    scores = row.result.get("scores", {}).get(metric)
    return None if scores is None else np.asarray(scores, dtype=np.float64)


def paired_versus(rows: Sequence[ModelRow], reference: np.ndarray, metric: str = "psnr_hole") -> dict[str, dict]:
    """``{label: paired_comparison(row - reference)}`` for every row with per-image scores on as many
    images as ``reference`` (``(images,)`` for a method that does not train, or ``(seeds, images)``)."""
    out = {}
    for row in rows:
        scores = seed_scores(row, metric)
        if scores is not None and scores.shape[-1] == np.shape(reference)[-1] and len(scores) > 1:
            same_seeds = np.ndim(reference) == 1 or np.shape(reference) == scores.shape
            if same_seeds:
                out[row.label] = paired_comparison(scores, reference)
    return out


def _experiments(run: ChapterRun) -> list[dict]:
    """The ``Experiment.to_json()`` records of a chapter's run (``"experiment"``, or each of ``"experiments"``)."""
    if isinstance(run.metrics.get("experiment"), dict):
        return [run.metrics["experiment"]]
    return [e for e in (run.metrics.get("experiments") or {}).values() if isinstance(e, dict)]


def seed_curves(row: ModelRow, metric: str = "psnr_hole") -> tuple[dict[int, list[tuple[int, float]]], int | None]:
    """``({seed: [(images_seen, value), ...]}, curve_per_bucket)``: the periodic evaluations of the row's
    model during training, from the experiment whose arm has the row's name and budget."""
    images = row.result.get("budget", {}).get("images_seen")
    for record in _experiments(row.run):
        curves = {int(r["seed"]): [(int(p["images_seen"]), float(p[metric])) for p in r.get("curve", [])]
                  for r in record.get("runs", [])
                  if r.get("arm") == row.model and r.get("budget", {}).get("images_seen") == images}
        if curves:
            return curves, record.get("experiment", {}).get("curve_per_bucket")
    return {}, None


def curve_slope(row: ModelRow, last_points: int = 3, metric: str = "psnr_hole") -> dict | None:
    """How fast the row's model was still improving when training stopped: the least-squares slope of
    ``metric`` against log2(images seen) over each seed's last ``last_points`` evaluations (dB per doubling
    of the budget), its mean over seeds with a 95 % t-interval, and the final value (mean over seeds).
    ``"trend"`` is read off the interval: "rising", "falling" or "flat". None with fewer than two seeds."""
    curves, per_bucket = seed_curves(row, metric)
    slopes, finals = [], []
    for points in curves.values():
        tail = points[-last_points:]
        if len(tail) < 2:
            continue
        x = np.log2([p[0] for p in tail])
        y = np.array([p[1] for p in tail])
        slopes.append(float(np.polyfit(x, y, 1)[0]))
        finals.append(float(y[-1]))
    if len(slopes) < 2:
        return None
    interval = seed_interval(slopes)
    trend = {HELPS: "rising", HURTS: "falling", NO_EFFECT: "flat"}[verdict(interval["ci95"])]
    return {"slope": interval["mean"], "ci95": interval["ci95"], "per_seed": slopes, "final": float(np.mean(finals)),
            "images_seen": int(next(iter(curves.values()))[-1][0]), "points": last_points, "trend": trend,
            "curve_per_bucket": per_bucket}


def limits_table(rows: Sequence[ModelRow], floor_value: float, floor: str, last_points: int = 3):
    """Per learned row with learning curves: its final value on the curve benchmark, the gap to the floor
    (``floor_value``, the classical method scored on the same benchmark), the slope per doubling with its
    interval, and, for a model still rising below the floor, the budget at which the straight line in
    log2(images) would reach it (an extrapolation, labelled as such)."""
    import pandas as pd

    table = {}
    for row in rows:
        slope = curve_slope(row, last_points)
        if slope is None:
            continue
        gap = floor_value - slope["final"]
        reach = "already above" if gap <= 0 else "n/a (not rising)"
        if gap > 0 and slope["trend"] == "rising":
            reach = f"{slope['images_seen'] * 2 ** (gap / slope['slope']):,.0f}"
        table[row.label] = {"final psnr_hole": slope["final"], f"gap to {floor}": gap,
                            "dB per doubling": slope["slope"], "95 % CI": f"[{slope['ci95'][0]:+.2f}, {slope['ci95'][1]:+.2f}]",
                            "trend": slope["trend"], "images to reach the floor (extrapolated)": reach,
                            "seeds": len(slope["per_seed"])}
    return pd.DataFrame(table).T


def inpainter_spec(factory: Callable[..., nn.Module], kwargs: dict, weights: str | Path, run_dir: str | Path) -> dict:
    """What a chapter stores beside a model's results so the comparison can rebuild it for the grid.

    ``factory(**kwargs)`` must return a module whose ``forward(masked_image (B,3,H,W), mask (B,1,H,W))``
    returns the ``(B,3,H,W)`` prediction in [0,1], with its weights saved at ``weights``
    (``save_weights``) inside ``run_dir``. Use: ``results["unet"]["inpainter"] = inpainter_spec(
    UNetInpainter, {"channels": cfg.channels}, cfg.checkpoint_dir / "unet_generator.safetensors", cfg.run_dir)``.
    """
    if not factory.__module__.startswith("inpaintlib."):
        raise ValueError(f"factory must live in inpaintlib (got {factory.__module__}.{factory.__qualname__})")
    weights, run_dir = Path(weights).resolve(), Path(run_dir).resolve()
    if not weights.is_relative_to(run_dir):
        raise ValueError(f"weights {weights} are not inside the run folder {run_dir}")
    try:
        json.dumps(kwargs)
    except TypeError as err:
        raise ValueError(f"factory kwargs must be JSON values: {err}") from err
    return {"factory": f"{factory.__module__}:{factory.__qualname__}", "kwargs": kwargs, "weights": weights.relative_to(run_dir).as_posix()}


def seed_weights(row: ModelRow) -> dict[int, str]:
    """``{seed: weights file}`` (relative to the run folder) of a learned row: the recorded file and, when it
    follows the experiments' ``seed<k>.safetensors`` naming (``Experiment.run_dir``), the files of the
    row's other seeds that exist beside it. Empty for a row without an inpainter spec."""
    spec = row.result.get("inpainter")
    if row.model is None or spec is None:
        return {}
    recorded = PurePosixPath(spec["weights"])
    match = re.fullmatch(r"seed(-?\d+)\.safetensors", recorded.name)
    if match is None:
        return {int(row.result.get("seed_spread", {}).get("seeds", [0])[0]): spec["weights"]}
    found = {int(match.group(1)): spec["weights"]}
    for seed in row.result.get("seed_spread", {}).get("seeds", []):
        sibling = (recorded.parent / f"seed{int(seed)}.safetensors").as_posix()
        if (row.run.path / sibling).is_file():
            found[int(seed)] = sibling
    return dict(sorted(found.items()))


def load_inpainter(row: ModelRow, device: torch.device | str = "cpu",
                   weights: str | None = None) -> tuple[InpaintFn | None, str]:
    """Rebuild a row's model as ``inpaint(masked_image, mask) -> image``; ``(None, reason)`` when it cannot be.

    ``weights``: another weights file of the same model in its run folder (another seed, ``seed_weights``)."""
    if row.model in CLASSICAL_METHODS:
        return CLASSICAL_METHODS[row.model], "classical"
    spec = row.result.get("inpainter")
    if row.model is None or spec is None:
        return None, "no inpainter spec recorded by its chapter"
    spec = spec | ({"weights": weights} if weights is not None else {})
    module_name, qualname = spec["factory"].split(":")
    try:
        factory = importlib.import_module(module_name)
        for part in qualname.split("."):
            factory = getattr(factory, part)
        module = factory(**spec["kwargs"])
        load_weights(module, row.run.path / spec["weights"])
    except (ImportError, AttributeError, TypeError, CheckpointError) as err:
        return None, f"cannot rebuild it from its spec: {type(err).__name__}: {err}"
    module = module.eval().to(device)

    @torch.no_grad()
    def inpaint(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return module(image.to(device), mask.to(device)).cpu()

    return inpaint, "rebuilt from " + spec["weights"]


def seed_evaluations(rows: Sequence[ModelRow], bench: Benchmark, device: torch.device | str = "cpu"
                     ) -> tuple[dict[str, list[EvalResult]], dict[str, str]]:
    """Every row that can be rebuilt, scored on ``bench``: ``{label: [EvalResult per seed]}`` (a classical
    method: one), and ``{label: why it was not scored}``."""
    results, skipped = {}, {}
    for row in rows:
        files = seed_weights(row) if not is_classical(row) else {0: None}
        if not files:
            skipped[row.label] = row.status if row.model is None else "no inpainter spec recorded by its chapter"
            continue
        runs = []
        for file in files.values():
            inpaint, why = load_inpainter(row, device, weights=file)
            if inpaint is None:
                skipped[row.label] = why
                break
            runs.append(evaluate(inpaint, bench, progress=False))
        else:
            results[row.label] = runs
    return results, skipped


def seed_matrix(runs: Sequence[EvalResult], metric: str = "psnr_hole") -> np.ndarray:
    """Per-seed, per-image scores ``(seeds, images)`` of one model's evaluations."""
    return np.stack([r.per_image[metric].numpy().astype(np.float64) for r in runs])


def versus_reference(results: dict[str, list[EvalResult]], reference: str, metric: str = "psnr_hole") -> dict[str, dict]:
    """``{label: paired_comparison(label - reference)}`` on one benchmark for every other model scored with
    at least two seeds (``reference`` is a classical method: one evaluation)."""
    base = seed_matrix(results[reference], metric)[0]
    return {label: paired_comparison(seed_matrix(runs, metric), base)
            for label, runs in results.items() if label != reference and len(runs) > 1}


def transfer_table(rows: Sequence[ModelRow], photo_results: dict[str, list[EvalResult]],
                   photo_versus: dict[str, dict], scenes_versus: dict[str, dict]):
    """One row per model scored on photographs: its Scenes in-hole PSNR (as its chapter recorded it), its
    photo scores (mean over seeds), and its paired difference to the classical floor on each data set."""
    import pandas as pd

    by_label = {row.label: row for row in rows}

    def interval(result: dict | None) -> str:
        return "n/a" if result is None else f"{result['delta_mean']:+.2f} [{result['ci95'][0]:+.2f}, {result['ci95'][1]:+.2f}]"

    table = {}
    for label, runs in photo_results.items():
        means = {m: float(seed_matrix(runs, m).mean()) for m in ("psnr_hole", "ssim_hole", "l1_hole")}
        scenes = _numbers(by_label[label])["psnr_hole"] if label in by_label else math.nan
        table[label] = {"Scenes psnr_hole": scenes, "photos psnr_hole": means["psnr_hole"],
                        "photos ssim_hole": means["ssim_hole"], "photos l1_hole": means["l1_hole"], "seeds": len(runs),
                        "Scenes: minus floor [95 % CI]": interval(scenes_versus.get(label)),
                        "photos: minus floor [95 % CI]": interval(photo_versus.get(label))}
    return pd.DataFrame(table).T


def transfer_summary(photo_versus: dict[str, dict], scenes_versus: dict[str, dict], floor: str) -> str:
    """How many learned models are better than, worse than, or not told apart from the floor on each data set."""
    def counts(versus: dict[str, dict]) -> str:
        tally = {v: sum(r["verdict"] == v for r in versus.values()) for v in (HELPS, HURTS, NO_EFFECT)}
        return (f"{tally[HELPS]} better than {floor}, {tally[HURTS]} worse, {tally[NO_EFFECT]} not "
                f"told apart (of {len(versus)})")

    shifts = [photo_versus[k]["delta_mean"] - scenes_versus[k]["delta_mean"] for k in photo_versus if k in scenes_versus]
    moved = (f" Against {floor}, the learned models moved by {np.mean(shifts):+.2f} dB on average from Scenes to photographs "
             f"(from {min(shifts):+.2f} to {max(shifts):+.2f} dB)." if shifts else "")
    return f"On Scenes: {counts(scenes_versus)}. On photographs: {counts(photo_versus)}.{moved}"


def composed_outputs(rows: Sequence[ModelRow], images: torch.Tensor, masks: torch.Tensor,
                     device: torch.device | str = "cpu", batch_size: int = 64) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every model that can be rebuilt, run on ``(N,3,H,W)`` images with ``(N,1,H,W)`` holes (in batches).

    Returns ``{label: output composed with the known pixels}`` and ``{label: why it is absent}``. A
    model trained at another image size is left out.
    """
    outputs, skipped = {}, {}
    size = images.shape[-1]
    for row in rows:
        if row.model is None:
            skipped[row.label] = row.status
            continue
        trained = row.run.config.get("parameters", {}).get("image_size", size)
        if row.model not in CLASSICAL_METHODS and trained != size:
            skipped[row.label] = f"trained at {trained} px, the images are {size} px"
            continue
        inpaint, why = load_inpainter(row, device)
        if inpaint is None:
            skipped[row.label] = why
            continue
        chunks = []
        for start in range(0, len(images), batch_size):
            image, mask = images[start:start + batch_size], masks[start:start + batch_size]
            chunks.append(mask * inpaint(image * (1 - mask), mask).clamp(0, 1) + (1 - mask) * image)
        outputs[row.label] = torch.cat(chunks)
    return outputs, skipped


def example_grid(rows: Sequence[ModelRow], images: torch.Tensor, masks: torch.Tensor,
                 device: torch.device | str = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The same images through every model that can be rebuilt, as columns for ``viz.show_grid``
    (masked input, each model's composed output, ground truth), and ``{label: why it is not in the grid}``."""
    from inpaintlib.viz import masked_for_display

    outputs, skipped = composed_outputs(rows, images, masks, device)
    return {"input": masked_for_display(images, masks)} | outputs | {"ground truth": images}, skipped


def perceptual_scores(outputs: dict[str, torch.Tensor], images: torch.Tensor, lpips: Callable | None = None,
                      extractor: Callable | None = None, device: torch.device | str = "cpu",
                      batch_size: int = 32) -> dict[str, dict[str, float]]:
    """``{label: {"lpips": mean LPIPS to the ground truth, "frechet": Fréchet distance to the ground
    truth's features}}`` for the metrics whose network is given (``inpaintlib.lpips``, ``inpaintlib.fid``)."""
    from inpaintlib.fid import frechet_distance, image_statistics

    lpips = lpips.to(device) if lpips is not None else None
    reference = image_statistics(extractor, images, batch_size, device) if extractor is not None else None
    scores: dict[str, dict[str, float]] = {}
    for label, output in outputs.items():
        scores[label] = {}
        if lpips is not None:
            distances = [lpips(output[i:i + batch_size].to(device), images[i:i + batch_size].to(device)).cpu()
                         for i in range(0, len(images), batch_size)]
            scores[label]["lpips"] = float(torch.cat(distances).mean())
        if reference is not None:
            scores[label]["frechet"] = frechet_distance(*reference, *image_statistics(extractor, output, batch_size, device))
    return scores
