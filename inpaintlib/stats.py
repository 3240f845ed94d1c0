"""Paired comparisons over seeds and images: how the book decides whether a component helps.

An ablation trains two arms (with and without a component) for each of several seeds; within a seed
both arms see the same batches and start from the same weights wherever they share parts. Each arm
is scored per image on the same benchmark, so every (seed, image) cell holds one paired difference
``d[s, i] = metric_with[s, i] - metric_without[s, i]``.

The interval is a t-interval over the seeds (``n_seeds - 1`` degrees of freedom) whose standard error
adds the two sources of chance a reader cares about:

- seed to seed: ``var_s(mean_i d[s, i]) / n_seeds``, how much the mean difference moves when training
  is repeated with other initial weights, batches and masks;
- image sampling: ``var_i(mean_s d[s, i]) / n_images``, how much it would move on other test images.

The first term already contains part of the second (each seed's mean is over the same finite set of
images), so the sum is conservative: the interval is, if anything, too wide.

The verdict is read off the interval and nothing else: ``"helps"`` when it lies above zero,
``"hurts"`` below, else ``"no detectable effect"`` (for metrics where lower is better the signs swap).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats

HELPS, HURTS, NO_EFFECT = "helps", "hurts", "no detectable effect"


def paired_differences(with_component: Sequence[Sequence[float]], without: Sequence[Sequence[float]]) -> np.ndarray:
    """``(n_seeds, n_images)`` per-image scores of each arm -> their differences ``with - without``."""
    a, b = np.asarray(with_component, dtype=np.float64), np.asarray(without, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"both arms need (seeds, images) scores of one shape, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired scores contain NaN or infinite values")
    return a - b


def paired_interval(differences: np.ndarray, confidence: float = 0.95) -> dict:
    """Mean paired difference and its interval from ``(n_seeds, n_images)`` differences.

    Returns ``{"delta_mean", "ci95": [lo, hi], "half_width", "per_seed": [...], "seed_std",
    "image_std", "n_seeds", "images"}`` (``ci95`` holds the ``confidence`` interval, 0.95 by default).
    Needs at least two seeds: one seed says nothing about seed-to-seed variation.
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"differences must be (seeds, images), got shape {d.shape}")
    n_seeds, n_images = d.shape
    if n_seeds < 2:
        raise ValueError(f"an interval over seeds needs at least two seeds, got {n_seeds}")
    if n_images < 2:
        raise ValueError(f"an interval needs at least two images, got {n_images}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    per_seed = d.mean(axis=1)                       # (n_seeds,)  mean over images, one per seed
    per_image = d.mean(axis=0)                      # (n_images,) mean over seeds, one per image
    seed_std, image_std = float(per_seed.std(ddof=1)), float(per_image.std(ddof=1))
    standard_error = math.sqrt(seed_std**2 / n_seeds + image_std**2 / n_images)
    t = float(scipy_stats.t.ppf(0.5 + confidence / 2, df=n_seeds - 1))
    mean = float(d.mean())
    half = t * standard_error
    return {"delta_mean": mean, "ci95": [mean - half, mean + half], "half_width": half,
            "per_seed": per_seed.tolist(), "seed_std": seed_std, "image_std": image_std,
            "n_seeds": n_seeds, "images": n_images}


def seed_interval(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean of one number measured once per seed, with its t-interval over the seeds:
    ``{"mean", "ci95": [lo, hi], "half_width", "n_seeds"}`` (at least two seeds)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) < 2:
        raise ValueError(f"an interval over seeds needs at least two values, got shape {x.shape}")
    mean = float(x.mean())
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df=len(x) - 1)) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return {"mean": mean, "ci95": [mean - half, mean + half], "half_width": half, "n_seeds": len(x)}


def verdict(ci: Sequence[float], higher_is_better: bool = True) -> str:
    """``"helps"``, ``"hurts"`` or ``"no detectable effect"`` from an interval ``[lo, hi]`` of ``with - without``."""
    lo, hi = float(ci[0]), float(ci[1])
    if lo > hi:
        raise ValueError(f"interval [{lo}, {hi}] has its ends swapped")
    if lo > 0:
        return HELPS if higher_is_better else HURTS
    if hi < 0:
        return HURTS if higher_is_better else HELPS
    return NO_EFFECT


def verdict_sentence(component: str, result: dict, unit: str = "dB", metric: str = "in-hole PSNR") -> str:
    """One sentence for the book, computed from a ``paired_interval`` result with its ``"verdict"``."""
    lo, hi = result["ci95"]
    interval = f"{result['delta_mean']:+.2f} {unit}, 95 % CI [{lo:+.2f}, {hi:+.2f}] over {result['n_seeds']} seeds x {result['images']} images"
    if result["verdict"] == NO_EFFECT:
        return f"{component}: no effect on {metric} detectable at this budget ({interval})."
    return f"{component} {result['verdict']} {metric} ({interval})."


def paired_comparison(a: Sequence, b: Sequence, higher_is_better: bool = True, confidence: float = 0.95) -> dict:
    """``paired_interval`` of ``a - b`` with its ``"verdict"``.

    ``a`` is ``(n_seeds, n_images)``; ``b`` the same shape, or ``(n_images,)`` for a method that does
    not train (a classical baseline scores the same whatever the seed).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape) if np.ndim(b) == 1 else b
    interval = paired_interval(paired_differences(a, b), confidence)
    return interval | {"verdict": verdict(interval["ci95"], higher_is_better)}


def comparison_sentence(subject: str, reference: str, result: dict, metric: str = "in-hole PSNR", unit: str = "dB") -> str:
    """One sentence comparing ``subject`` with ``reference`` from a ``paired_comparison`` of ``subject - reference``."""
    lo, hi = result["ci95"]
    interval = (f"{result['delta_mean']:+.2f} {unit}, 95 % CI [{lo:+.2f}, {hi:+.2f}] over {result['n_seeds']} seeds x "
                f"{result['images']} images")
    if result["verdict"] == NO_EFFECT:
        return f"No difference in {metric} between {subject} and {reference} is detectable at this budget ({interval})."
    better = result["verdict"] == HELPS
    return f"{subject} is {'better' if better else 'worse'} than {reference} on {metric} ({interval})."
