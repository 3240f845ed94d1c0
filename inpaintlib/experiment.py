"""Paired-seed experiments: several models ("arms"), each trained with several seeds at one budget.

An ``Experiment`` is data: which arms (a builder and its keyword arguments), which seeds, how many
steps of which batch size, on which training data, scored on which benchmark, under which recipe.
``run_experiment`` trains every (arm, seed) pair and scores it per image, so that any two arms can
be compared image by image and seed by seed (``inpaintlib.stats``).

What makes two arms comparable within a seed:

- the same batches: training scenes, masks and their order are a function of the seed only;
- the same starting weights wherever the arms share a part: an arm with ``share_init_with`` is built
  with the same seed as the arm it names, then takes that arm's initial tensor for every parameter
  or buffer whose name and shape it also has;
- the same number of images seen and the same recipe (``inpaintlib.recipe``).

Jobs run as independent processes with one torch thread each (``workers`` at a time): on a small CPU
that is faster than one process with several threads, and a job's result does not depend on how
many cores the machine has or on which worker ran it (bit for bit on one machine).
"""

from __future__ import annotations

import importlib
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from inpaintlib.data.batches import InpaintingBatches
from inpaintlib.data.sources import FolderData, folder_batches, folder_benchmark, open_data_root
from inpaintlib.evaluate import Benchmark, evaluate, seed_spread
from inpaintlib.masks import BUCKET_NAMES
from inpaintlib.recipe import Recipe, get_recipe
from inpaintlib.segmentation import segmenter_for, semantic_per_image
from inpaintlib.stats import paired_comparison
from inpaintlib.train import (
    Method, Trainer, count_parameters, load_weights, resolve_device, save_weights, seed_everything,
)

# Metrics where a larger value is better; the rest (l1, l1_hole) are better when smaller.
HIGHER_IS_BETTER = {"psnr", "psnr_hole", "ssim", "ssim_hole", "miou", "miou_hole", "hole_accuracy"}


class ExperimentError(RuntimeError):
    """A job failed; the message names the arm and the seed."""


def import_object(path: str) -> Any:
    """``"package.module:Name"`` -> the object (a class or function that builds a ``Method``)."""
    module, _, name = path.partition(":")
    if not module or not name:
        raise ValueError(f"builder {path!r} must look like 'package.module:Name'")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import builder {path!r}: {err}") from err


@dataclass(frozen=True)
class Arm:
    """One model of an experiment: ``build(**kwargs)`` returns its ``Method``.

    A string argument containing ``{seed}`` is formatted with the seed, e.g. the weights of a first stage
    pretrained per seed (``"checkpoints/rough/seed{seed}.safetensors"``). Such an arm trains ``steps``
    (default: the experiment's) and counts ``pretrained_images`` (the first stage's budget) in its
    images seen, so that its total budget can equal the other arms'.
    """

    name: str
    build: str
    kwargs: dict = field(default_factory=dict)
    share_init_with: str | None = None   # same-seed initial weights of this arm wherever names and shapes match
    channels_last: bool = False          # NHWC memory order (faster convolutions for some models on CPU)
    steps: int | None = None             # training steps of this arm (None: the experiment's)
    pretrained_images: int = 0           # images a pretrained part of it has already seen

    def arguments(self, seed: int) -> dict:
        """``kwargs`` with ``{seed}`` in string values replaced by ``seed``."""
        return {k: v.format(seed=seed) if isinstance(v, str) and "{seed}" in v else v for k, v in self.kwargs.items()}


@dataclass(frozen=True)
class Experiment:
    """Arms x seeds at one budget (``steps`` x ``batch_size`` images), one recipe and one benchmark."""

    arms: tuple[Arm, ...]
    seeds: tuple[int, ...]
    steps: int
    batch_size: int
    image_size: int
    train_images: int
    eval_per_bucket: int
    checkpoint_root: str
    recipe: str | Recipe = "book"       # a name in inpaintlib.recipe.RECIPES, or a Recipe
    boundary_fraction: float = 0.0      # share of each batch with the scene's own boundary-crossing hole
    benchmark_masks: str = "fixed"      # the main benchmark: "fixed" (committed bucketed masks) or "boundary"
    extra_benchmarks: tuple[str, ...] = ()   # further benchmarks every arm is scored on (e.g. ("boundary",))
    segmenter_steps: int = 0            # > 0: semantic scores with inpaintlib.segmentation.segmenter_for(steps=...)
    curve_points: int = 4               # evaluations during training (learning curves)
    curve_per_bucket: int = 10          # benchmark size of those evaluations, per bucket
    threads: int = 1                    # torch threads of each job
    device: str = "cpu"
    amp: bool = False                   # mixed precision (the Trainer's autocast; for GPUs)
    data_root: str | None = None        # a folder of photos instead of Scenes (inpaintlib.data.sources)

    def __post_init__(self) -> None:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        for arm in self.arms:
            if arm.share_init_with is not None and arm.share_init_with not in names:
                raise ValueError(f"arm {arm.name!r} shares initial weights with unknown arm {arm.share_init_with!r}")
        if len(set(self.seeds)) != len(self.seeds) or not self.seeds:
            raise ValueError(f"seeds must be distinct and at least one, got {self.seeds}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}")
        get_recipe(self.recipe)
        if self.data_root is not None:
            labelled = [name for name, on in (("boundary_fraction", self.boundary_fraction > 0),
                                               ("benchmark_masks='boundary'", self.benchmark_masks == "boundary"),
                                               ("extra_benchmarks", bool(self.extra_benchmarks)),
                                               ("segmenter_steps", self.segmenter_steps > 0)) if on]
            if labelled:
                raise ValueError(f"{', '.join(labelled)} need(s) Scenes labels; a data_root folder has none")

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(f"no arm {name!r}; arms: {', '.join(a.name for a in self.arms)}")

    def batches(self, seed: int) -> InpaintingBatches:
        """Training batches of ``seed``: the same for every arm."""
        if self.data_root is not None:
            return folder_batches(self.folder_data, self.image_size, self.train_images, self.batch_size, seed)
        return InpaintingBatches.scenes(self.image_size, self.train_images, self.batch_size, seed=seed,
                                        boundary_fraction=self.boundary_fraction)

    @cached_property
    def folder_data(self) -> FolderData:
        """``data_root`` resolved to its training and held-out files, once per process (a large folder
        takes a while to list, and a job asks for its batches and two benchmarks)."""
        return open_data_root(self.data_root)

    def benchmark(self, per_bucket: int | None = None, masks: str | None = None) -> Benchmark:
        """The main benchmark (or the one with ``masks``), ``per_bucket`` images per bucket: Scenes, or the
        held-out images of ``data_root``."""
        if self.data_root is not None:
            return folder_benchmark(self.folder_data, self.image_size, per_bucket or self.eval_per_bucket)
        return Benchmark.scenes(self.image_size, per_bucket or self.eval_per_bucket, masks=masks or self.benchmark_masks)

    def run_dir(self, arm: str, seed: int) -> Path:
        return Path(self.checkpoint_root) / arm / f"seed{seed}"


@dataclass
class ArmRun:
    """One trained (arm, seed): per-image scores on the benchmark, its budget and learning curve."""

    arm: str
    seed: int
    per_image: dict[str, list[float]]   # on the main benchmark (with "hole_accuracy" when semantic)
    summary: dict                       # EvalResult.summary() (with "semantic": {"miou", "miou_hole"})
    extra: dict[str, dict]              # {benchmark: {"per_image", "summary"}} of the extra benchmarks
    budget: dict                      # images_seen, train_seconds, steps, batch_size
    curve: list[dict]                 # [{"images_seen", metric: value, ...}] from the periodic evaluations
    losses: list[dict]                # the Trainer's logged loss rows [{"step", "losses": {term: value}}]
    params: int
    shared_init: float                # fraction of the initial tensors taken from ``share_init_with``
    weights: str                      # the evaluated (EMA) generator weights


def _build(arm: Arm, seed: int) -> Method:
    method = import_object(arm.build)(**arm.arguments(seed))
    if not isinstance(method, Method):
        raise TypeError(f"builder {arm.build} returned {type(method).__name__}, not an inpaintlib Method")
    return method


def build_arm(experiment: Experiment, name: str, seed: int) -> tuple[Method, float]:
    """The arm's method with its seed's initial weights, and the fraction of tensors shared with its partner."""
    arm = experiment.arm(name)
    seed_everything(seed)
    method = _build(arm, seed)
    if arm.share_init_with is None:
        return method, 0.0
    seed_everything(seed)
    partner = _build(experiment.arm(arm.share_init_with), seed).state_dict()
    own = method.state_dict()
    shared = {k: v for k, v in partner.items() if k in own and own[k].shape == v.shape}
    method.load_state_dict(shared, strict=False)
    return method, len(shared) / max(len(own), 1)


def _inference_network(method: Method) -> torch.nn.Module:
    return getattr(method, "generator", method)


def _score(method: Method, bench: Benchmark, segmenter: torch.nn.Module | None, device: torch.device) -> dict:
    """``{"per_image": {metric: [...]}, "summary": EvalResult.summary()}``, semantic scores included when
    a segmenter is given (per-image ``hole_accuracy``; ``summary["semantic"]`` = mIoU overall and in the hole)."""
    result = evaluate(method.inpaint, bench, device=device, progress=False)
    per_image, summary = {k: v.double().tolist() for k, v in result.per_image.items()}, result.summary()
    if segmenter is not None:
        accuracy, semantic = semantic_per_image(segmenter, lambda x, m: method.inpaint(x.to(device), m.to(device)), bench)
        per_image["hole_accuracy"], summary["semantic"] = accuracy.tolist(), semantic
    return {"per_image": per_image, "summary": summary}


def train_arm(experiment: Experiment, name: str, seed: int, progress: bool = False) -> ArmRun:
    """Train one arm with one seed (resuming its checkpoint if there is one) and score it per image."""
    device = resolve_device(experiment.device)
    arm = experiment.arm(name)
    method, shared = build_arm(experiment, name, seed)
    curve_bench = experiment.benchmark(experiment.curve_per_bucket)

    def curve_eval(step: int) -> dict:
        return evaluate(method.inpaint, curve_bench, device=device, progress=False).summary()["overall"]

    folder = experiment.run_dir(name, seed)
    steps = arm.steps or experiment.steps
    trainer = Trainer(method, experiment.batches(seed), steps, checkpoint_dir=folder,
                      checkpoint_every=max(1, steps // 4), eval_fn=curve_eval,
                      eval_every=max(1, math.ceil(steps / experiment.curve_points)), device=device,
                      progress=progress, recipe=get_recipe(experiment.recipe), channels_last=arm.channels_last,
                      amp=experiment.amp)
    trainer.fit()
    network = _inference_network(method)
    weights = folder.with_suffix(".safetensors")
    save_weights(network, weights)
    segmenter = segmenter_for(experiment.image_size, experiment.segmenter_steps, device=device, progress=False) \
        if experiment.segmenter_steps else None
    scored = {masks: _score(method, experiment.benchmark(masks=masks), segmenter, device)
              for masks in (experiment.benchmark_masks, *experiment.extra_benchmarks)}
    main = scored.pop(experiment.benchmark_masks)
    curve = [{"images_seen": row["images_seen"] + arm.pretrained_images, "step": row["step"]} | row["eval"]
             for row in trainer.history if "eval" in row]
    return ArmRun(
        arm=name, seed=seed, per_image=main["per_image"], summary=main["summary"], extra=scored,
        budget={"images_seen": trainer.images_seen + arm.pretrained_images, "pretrained_images": arm.pretrained_images,
                "train_seconds": trainer.train_seconds, "steps": trainer.step, "batch_size": experiment.batch_size},
        curve=curve, losses=[row for row in trainer.history if "losses" in row], params=count_parameters(network),
        shared_init=shared, weights=str(weights),
    )


def _job(experiment: Experiment, name: str, seed: int) -> ArmRun:
    """A worker's job: one torch thread count for every job, whichever process runs it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(experiment.threads)
    try:
        return train_arm(experiment, name, seed)
    finally:
        torch.set_num_threads(previous)


def default_workers() -> int:
    """One worker per CPU core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_experiment(experiment: Experiment, workers: int | None = None, progress: bool = True) -> "ExperimentResult":
    """Train and score every (arm, seed); ``workers`` processes at a time (1: in this process).

    Results do not depend on ``workers``: each job runs with ``experiment.threads`` torch threads.
    A CUDA experiment runs its jobs one after another in this process.
    """
    return run_experiments([experiment], workers, progress)[0]


def run_experiments(experiments: list[Experiment], workers: int | None = None, progress: bool = True) -> list["ExperimentResult"]:
    """Several experiments' jobs in one pool of ``workers`` processes, the largest budgets first."""
    jobs = [(i, arm.name, seed) for i, exp in enumerate(experiments) for seed in exp.seeds for arm in exp.arms]
    jobs.sort(key=lambda job: -(experiments[job[0]].arm(job[1]).steps or experiments[job[0]].steps))
    on_cuda = any(resolve_device(exp.device).type == "cuda" for exp in experiments)
    workers = 1 if on_cuda else min(workers or default_workers(), len(jobs))
    runs: list[dict[tuple[str, int], ArmRun]] = [{} for _ in experiments]
    bar = tqdm(total=len(jobs), desc="arms x seeds", disable=not progress)

    def failed(name: str, seed: int, err: Exception) -> ExperimentError:
        return ExperimentError(f"arm {name!r}, seed {seed}: {type(err).__name__}: {err}")

    if workers == 1:
        for i, name, seed in jobs:
            try:
                runs[i][name, seed] = _job(experiments[i], name, seed)
            except Exception as err:
                raise failed(name, seed, err) from err
            bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_job, experiments[i], name, seed): (i, name, seed) for i, name, seed in jobs}
            for future in as_completed(futures):
                i, name, seed = futures[future]
                try:
                    runs[i][name, seed] = future.result()
                except Exception as err:
                    raise failed(name, seed, err) from err
                bar.update(1)
    bar.close()
    return [ExperimentResult(exp, {(arm.name, s): found[arm.name, s] for s in exp.seeds for arm in exp.arms})
            for exp, found in zip(experiments, runs)]


def _mean_summary(summaries: list[dict]) -> dict:
    """The mean over seeds of ``EvalResult.summary()`` dicts (overall, per bucket, semantic scores)."""
    overall = {k: float(np.mean([s["overall"][k] for s in summaries])) for k in summaries[0]["overall"]}
    buckets = {}
    for b in BUCKET_NAMES:
        present = [s["buckets"][b] for s in summaries if b in s["buckets"]]
        if present:
            buckets[b] = {k: float(np.mean([p[k] for p in present])) for k in present[0]}
    mean = {"overall": overall, "buckets": buckets, "n": summaries[0]["n"],
            "images_per_s": float(np.mean([s["images_per_s"] for s in summaries]))}
    if "semantic" in summaries[0]:
        mean["semantic"] = {k: float(np.mean([s["semantic"][k] for s in summaries])) for k in summaries[0]["semantic"]}
    return mean


@dataclass
class ExperimentResult:
    """Every (arm, seed) run of an experiment, with the summaries a chapter reports."""

    experiment: Experiment
    runs: dict[tuple[str, int], ArmRun]

    def scores(self, arm: str, metric: str = "psnr_hole", benchmark: str | None = None) -> np.ndarray:
        """``(n_seeds, n_images)`` per-image ``metric`` of ``arm`` on the main benchmark (or an extra one),
        seeds in the experiment's order."""
        def per_image(run: ArmRun) -> list[float]:
            if benchmark is None or benchmark == self.experiment.benchmark_masks:
                return run.per_image[metric]
            return run.extra[benchmark]["per_image"][metric]

        return np.array([per_image(self.runs[arm, s]) for s in self.experiment.seeds])

    def model_summary(self, arm: str) -> dict:
        """What a chapter's ``metrics.json`` keeps per model: the seed-mean ``summary`` plus its seed spread,
        budget, parameter count and per-seed, per-image in-hole PSNR (the layout of ``EvalResult.summary()``
        with extra keys)."""
        runs = [self.runs[arm, s] for s in self.experiment.seeds]
        summary = _mean_summary([r.summary for r in runs])
        if self.experiment.extra_benchmarks:
            summary["benchmarks"] = {b: _mean_summary([r.extra[b]["summary"] for r in runs]) for b in self.experiment.extra_benchmarks}
        values = {r.seed: r.summary["overall"]["psnr_hole"] for r in runs}
        spread = seed_spread(values) if len(values) > 1 else {"seeds": list(values), "values": list(values.values())}
        return summary | {
            "seed_spread": {"metric": "psnr_hole"} | spread,
            "scores": {"psnr_hole": self.scores(arm).tolist()},   # (seeds, images), for paired comparisons
            "budget": {"images_seen": runs[0].budget["images_seen"], "pretrained_images": runs[0].budget["pretrained_images"],
                       "steps": runs[0].budget["steps"],
                       "batch_size": runs[0].budget["batch_size"], "train_images": self.experiment.train_images,
                       "boundary_fraction": self.experiment.boundary_fraction,
                       "train_seconds": float(np.mean([r.budget["train_seconds"] for r in runs]))},
            "params": runs[0].params, "steps": runs[0].budget["steps"],
            "train_seconds": float(np.mean([r.budget["train_seconds"] for r in runs])),
            "recipe": get_recipe(self.experiment.recipe).name,
        }

    def ablation(self, component: str, with_arm: str, without_arm: str, metric: str = "psnr_hole",
                 benchmark: str | None = None) -> dict:
        """The paired comparison of two arms, in the schema of every chapter's ``metrics.json``."""
        comparison = paired_comparison(self.scores(with_arm, metric, benchmark), self.scores(without_arm, metric, benchmark),
                                       higher_is_better=metric in HIGHER_IS_BETTER)
        return {"component": component, "metric": metric, "benchmark": benchmark or self.experiment.benchmark_masks,
                "with": with_arm, "without": without_arm,
                "seeds": list(self.experiment.seeds),
                "images_seen": self.runs[with_arm, self.experiment.seeds[0]].budget["images_seen"]} | comparison

    def curves(self, metric: str = "psnr_hole") -> dict[str, list[dict]]:
        """``{arm: [{"images_seen", "mean", "std"}, ...]}`` over seeds, from the periodic evaluations."""
        out = {}
        for arm in self.experiment.arms:
            per_seed = [self.runs[arm.name, s].curve for s in self.experiment.seeds]
            points = []
            for rows in zip(*per_seed):
                values = np.array([row[metric] for row in rows])
                points.append({"images_seen": rows[0]["images_seen"], "mean": float(values.mean()),
                               "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0})
            out[arm.name] = points
        return out

    def to_json(self) -> dict:
        """Everything but the per-image scores (those stay in memory), for ``metrics.json``."""
        runs = [{k: v for k, v in asdict(r).items() if k not in ("per_image", "losses", "extra")} for r in self.runs.values()]
        return {"experiment": asdict(self.experiment), "runs": runs}


def load_arm(experiment: Experiment, name: str, seed: int) -> Method:
    """A trained arm rebuilt from its evaluated (EMA) weights, in eval mode: to draw examples or probe it."""
    method, _ = build_arm(experiment, name, seed)
    load_weights(_inference_network(method), experiment.run_dir(name, seed).with_suffix(".safetensors"))
    return method.eval()
