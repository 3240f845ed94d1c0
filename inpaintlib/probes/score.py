"""Running a model on a probe, and the probe entry of a chapter's ``metrics.json``.

``score_probe`` inpaints every probe image exactly as :func:`inpaintlib.evaluate.evaluate` does (the
model sees ``image * (1 - mask)`` and the mask, its output is composed with the known pixels) and
returns the probe's metrics per image, so that two arms can be compared image by image.
``probe_result`` turns per-image scores of both arms over several seeds into the paired interval and
verdict of :mod:`inpaintlib.stats`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from inpaintlib.features import HEDVGG16Features
from inpaintlib.metrics import psnr
from inpaintlib.probes.coherence import attention_cell, make_regular_texture_probe, seam_score
from inpaintlib.probes.copy import copy_attention_hits, make_copy_probe
from inpaintlib.probes.probe_set import ProbeSet
from inpaintlib.probes.semantic import boundary_f_score, hole_miou, make_boundary_probe
from inpaintlib.probes.structure import edge_f_score, lbp_histogram_distance, make_edge_probe
from inpaintlib.probes.texture import class_texture_distance, make_class_texture_probe, same_class_attention
from inpaintlib.stats import paired_differences, paired_interval, verdict

InpaintFn = Callable[[Tensor, Tensor], Tensor]
AttentionFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class ProbeSpec:
    """A probe: its generator, the chapters it tests, its headline metric and every metric it reports
    (name -> higher is better)."""

    make: Callable[..., ProbeSet]
    chapters: tuple[str, ...]
    headline: str
    metrics: dict[str, bool]


PROBES: dict[str, ProbeSpec] = {
    "copy": ProbeSpec(make_copy_probe, ("02_contextual_attention",), "psnr_hole",
                      {"psnr_hole": True, "attention_hits": True}),
    "regular_texture": ProbeSpec(make_regular_texture_probe, ("03_csa",), "seam",
                                 {"psnr_hole": True, "seam": False}),
    "boundary": ProbeSpec(make_boundary_probe, ("04_sge_net", "07_spl"), "miou_hole",
                          {"psnr_hole": True, "miou_hole": True, "boundary_f": True}),
    "class_texture": ProbeSpec(make_class_texture_probe, ("05_coherence_priors", "06_saca"), "texture_distance",
                               {"psnr_hole": True, "texture_distance": False, "same_class_attention": True}),
    "edges": ProbeSpec(make_edge_probe, ("08_lbp",), "edge_f",
                       {"psnr_hole": True, "edge_f": True, "lbp_distance": False}),
}


ATTENTION_METRICS = {"copy": "attention_hits", "class_texture": "same_class_attention"}


def make_probe(name: str, size: int = 64, count: int = 200, seed: int = 0) -> ProbeSet:
    """The probe set ``name`` (a key of :data:`PROBES`) of ``count`` images at ``size`` px."""
    return _spec(name).make(size=size, count=count, seed=seed)


def _spec(name: str) -> ProbeSpec:
    if name not in PROBES:
        raise ValueError(f"unknown probe {name!r}; expected one of {sorted(PROBES)}")
    return PROBES[name]


@torch.no_grad()
def score_probe(name: str, inpaint: InpaintFn, probe: ProbeSet, *, attention: AttentionFn | None = None,
                segmenter: nn.Module | None = None, features: HEDVGG16Features | None = None, batch_size: int = 32,
                device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """Per-image metrics ``{metric: (N,)}`` of ``inpaint`` on ``probe`` (CPU float tensors).

    inpaint(masked (B,3,H,W), mask (B,1,H,W)) -> (B,3,H,W), as for ``inpaintlib.evaluate.evaluate``.
    attention(masked, mask) -> (B, Lq, Lk), the model's attention (optional; "copy" and
    "class_texture" then add ``attention_hits`` / ``same_class_attention``). ``segmenter`` (image ->
    class logits) is required by "boundary"; ``features`` (HED-VGG16) is used by "class_texture"
    (default: the HED trunk, loaded once). Every probe reports ``psnr_hole``.
    """
    _spec(name)
    if probe.name != name:
        raise ValueError(f"probe set {probe.name!r} given to score_probe({name!r})")
    if name == "boundary" and segmenter is None:
        raise ValueError("the boundary probe is scored by a segmenter: "
                         "pass segmenter=inpaintlib.segmentation.segmenter_for(size)")
    if attention is not None and name not in ATTENTION_METRICS:
        raise ValueError(f"probe {name!r} has no attention metric; only {sorted(ATTENTION_METRICS)} have")
    scores: dict[str, list[Tensor]] = {}
    for start in range(0, len(probe), batch_size):
        part = probe.part(start, start + batch_size)
        image, mask, labels = part.images.to(device), part.masks.to(device), part.labels.to(device)
        pred = inpaint(image * (1 - mask), mask)
        if pred.shape != image.shape or not bool(torch.isfinite(pred).all()):
            raise ValueError(f"inpaint must return finite (B, 3, H, W) images, got {tuple(pred.shape)}")
        output = (mask * pred.clamp(0, 1) + (1 - mask) * image).float()  # composed, as evaluate()
        batch = {"psnr_hole": psnr(output, image, mask)}
        if name == "regular_texture":
            batch["seam"] = seam_score(output, mask, attention_cell(output.shape[-1]))
        elif name == "boundary":
            pred_labels = segmenter(output).argmax(1)  # (B, H, W)
            batch["miou_hole"] = hole_miou(pred_labels, labels, mask)
            batch["boundary_f"] = boundary_f_score(pred_labels, labels, mask)
        elif name == "class_texture":
            batch["texture_distance"] = class_texture_distance(output, image, labels, mask, features)
        elif name == "edges":
            batch["edge_f"] = edge_f_score(output, image, mask)
            batch["lbp_distance"] = lbp_histogram_distance(output, image, mask)
        if attention is not None:
            weights = attention(image * (1 - mask), mask)  # (B, Lq, Lk)
            batch[ATTENTION_METRICS[name]] = (
                copy_attention_hits(weights, mask, part.truth["offset"].to(device)) if name == "copy"
                else same_class_attention(weights, mask, labels))
        for key, value in batch.items():
            scores.setdefault(key, []).append(value.detach().float().cpu())
    return {key: torch.cat(values) for key, values in scores.items()}


def _seed_rows(scores: Sequence[Sequence[float]] | Tensor) -> np.ndarray:
    """(seeds, N) float64 array from a tensor, an array or a list of per-seed rows (tensors, arrays or lists)."""
    if isinstance(scores, Tensor):
        return scores.detach().cpu().double().numpy()
    return np.stack([torch.as_tensor(row).detach().cpu().double().numpy() for row in scores])


def probe_result(name: str, metric: str, with_scores: Sequence[Sequence[float]] | Tensor,
                 without_scores: Sequence[Sequence[float]] | Tensor, higher_is_better: bool | None = None) -> dict:
    """The ``"probe"`` entry of a chapter's ``metrics.json`` from per-image scores of both arms.

    with_scores, without_scores: (seeds, N) scores of the model with and without the paper's component
    (the same probe images in the same order). ``higher_is_better`` defaults to the metric's direction
    in :data:`PROBES`. Returns ``{"name", "metric", "with", "without", "delta_mean", "ci95", "verdict"}``:
    the arms' means, the mean paired difference with - without, its 95 % interval over seeds and images
    (:func:`inpaintlib.stats.paired_interval`), the verdict read off that interval, and the seeds and images
    it rests on (``"n_seeds"``, ``"images"``: what :func:`inpaintlib.stats.verdict_sentence` quotes).
    """
    spec = _spec(name)
    if higher_is_better is None:
        if metric not in spec.metrics:
            raise ValueError(f"probe {name!r} has no metric {metric!r}; its metrics are {sorted(spec.metrics)}")
        higher_is_better = spec.metrics[metric]
    arm_with, arm_without = _seed_rows(with_scores), _seed_rows(without_scores)
    interval = paired_interval(paired_differences(arm_with, arm_without))
    return {"name": name, "metric": metric, "with": float(arm_with.mean()), "without": float(arm_without.mean()),
            "delta_mean": interval["delta_mean"], "ci95": interval["ci95"],
            "verdict": verdict(interval["ci95"], higher_is_better), "n_seeds": interval["n_seeds"],
            "images": interval["images"]}
