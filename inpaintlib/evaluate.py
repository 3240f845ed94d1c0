"""The shared benchmark: the same Scenes test images, masks and metrics for every model in the book.

``Benchmark.scenes`` pairs test-split scenes with the committed evaluation masks (``data/``), a fixed
number per hole-ratio bucket; ``evaluate`` runs any ``inpaint(masked_image, mask) -> image``
function over it, composes the known pixels back, and scores the result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from inpaintlib.checks import check_image
from inpaintlib.data.folders import IGNORE_INDEX
from inpaintlib.data.photos import photo_crops
from inpaintlib.data.scenes import ScenesDataset
from inpaintlib.masks import BUCKET_NAMES, boundary_crossing_mask, bucket_of, hole_ratio, load_eval_masks
from inpaintlib.metrics import METRIC_NAMES, image_metrics

InpaintFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

EVAL_SEED = 7


@dataclass
class Benchmark:
    """Evaluation images ``(N,3,H,W)``, masks ``(N,1,H,W)``, bucket ids ``(N,)`` and labels ``(N,H,W)``."""

    images: torch.Tensor
    masks: torch.Tensor
    bucket: torch.Tensor
    labels: torch.Tensor
    name: str = "scenes"

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def scenes(cls, size: int = 64, per_bucket: int = 20, masks: str = "fixed", seed: int = EVAL_SEED) -> "Benchmark":
        """Test-split scenes with the fixed bucketed masks (``masks="fixed"``) or boundary-crossing holes.

        ``"boundary"`` draws one boundary-crossing hole per scene (seeded), for the semantic
        chapters; its buckets come from the measured hole ratio.
        """
        if masks == "fixed":
            chosen = load_eval_masks().take(per_bucket)
            hole, bucket = chosen.at_size(size), chosen.bucket
        elif masks != "boundary":
            raise ValueError(f"unknown benchmark masks {masks!r}; expected 'fixed' or 'boundary'")
        count = per_bucket * len(BUCKET_NAMES)
        data = ScenesDataset(count, size=size, seed=seed, split="test").materialize()
        if masks == "boundary":
            rng = np.random.default_rng([seed, 99])
            hole = torch.from_numpy(np.stack([boundary_crossing_mask(rng, lab.numpy()) for lab in data["labels"]]))[:, None]
            bucket = bucket_of(hole_ratio(hole))
        return cls(data["image"], hole, bucket, data["labels"], name=f"scenes-{size}-{masks}")

    @classmethod
    def from_images(cls, images: torch.Tensor, per_bucket: int, name: str) -> "Benchmark":
        """Any images ``(M, 3, S, S)`` with the committed bucketed masks: ``per_bucket`` x 6 items.

        Item ``i`` pairs mask ``i`` with image ``i mod M`` (a few images are reused under other
        masks). There are no labels: every pixel is ``IGNORE_INDEX``.
        """
        check_image(images, f"{name} images")
        chosen = load_eval_masks().take(per_bucket)
        size = images.shape[-1]
        index = torch.arange(len(chosen.bucket)) % len(images)
        labels = torch.full((len(index), size, size), IGNORE_INDEX, dtype=torch.long)
        return cls(images[index], chosen.at_size(size), chosen.bucket, labels, name=f"{name}-{size}")

    @classmethod
    def photos(cls, size: int = 64, per_bucket: int = 10) -> "Benchmark":
        """Crops of the photographs bundled with scikit-image and matplotlib (``inpaintlib.data.photos``)."""
        crops, _ = photo_crops(size, per_bucket * len(BUCKET_NAMES))
        return cls.from_images(crops, per_bucket, "photos")


@dataclass
class EvalResult:
    """Per-image metrics ``(N,)`` each, the bucket of every image, speed, and a few outputs to look at."""

    per_image: dict[str, torch.Tensor]
    bucket: torch.Tensor
    images_per_s: float
    examples: torch.Tensor = field(repr=False)

    def summary(self) -> dict:
        """Means overall and per bucket: ``{"overall": {...}, "buckets": {name: {..., "n": k}}, ...}``."""
        overall = {k: float(v.mean()) for k, v in self.per_image.items()}
        buckets = {}
        for b, name in enumerate(BUCKET_NAMES):
            sel = self.bucket == b
            if sel.any():
                buckets[name] = {k: float(v[sel].mean()) for k, v in self.per_image.items()} | {"n": int(sel.sum())}
        return {"overall": overall, "buckets": buckets, "images_per_s": self.images_per_s, "n": len(self.bucket)}


@torch.no_grad()
def evaluate(
    inpaint: InpaintFn,
    bench: Benchmark,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    keep_examples: int = 8,
    progress: bool = True,
    desc: str = "evaluate",
) -> EvalResult:
    """Score ``inpaint`` on ``bench``: it sees ``image * (1 - mask)`` and ``mask``, never the hole's pixels.

    The output is composed (``mask * pred + (1 - mask) * image``) before scoring, as in every paper.
    """
    check_image(bench.images, "benchmark images")
    metrics: dict[str, list[torch.Tensor]] = {k: [] for k in METRIC_NAMES}
    examples, seconds = [], 0.0
    for start in tqdm(range(0, len(bench), batch_size), desc=desc, disable=not progress, leave=False):
        image = bench.images[start : start + batch_size].to(device)
        mask = bench.masks[start : start + batch_size].to(device)
        tic = time.perf_counter()
        pred = inpaint(image * (1 - mask), mask)
        seconds += time.perf_counter() - tic
        if pred.shape != image.shape:
            raise ValueError(f"inpaint returned shape {tuple(pred.shape)}, expected {tuple(image.shape)}")
        if not bool(torch.isfinite(pred).all()):
            raise ValueError(f"inpaint returned NaN or infinite values for images {start}..{start + len(image) - 1}")
        composed = (mask * pred.clamp(0, 1) + (1 - mask) * image).float()
        for k, v in image_metrics(composed, image.float(), mask.float()).items():
            metrics[k].append(v.cpu())
        if sum(len(e) for e in examples) < keep_examples:
            examples.append(composed.cpu())
    per_image = {k: torch.cat(v) for k, v in metrics.items()}
    return EvalResult(per_image, bench.bucket, len(bench) / max(seconds, 1e-9), torch.cat(examples)[:keep_examples])


def results_table(results: dict[str, dict], metric_keys: tuple[str, ...] = ("psnr_hole", "ssim_hole", "l1_hole", "psnr", "ssim", "l1")):
    """A pandas table (rows = models) of overall means from ``{model: EvalResult.summary()}``."""
    import pandas as pd

    return pd.DataFrame({name: {k: s["overall"][k] for k in metric_keys} for name, s in results.items()}).T


def seed_results_table(results: dict[str, dict]):
    """Models trained with several seeds beside methods that do not train: a pandas table of in-hole
    PSNR (mean over seeds and its seed standard deviation), SSIM and L1 in the hole, seeds, images seen
    and training seconds (NaN where a row has none, e.g. a classical method)."""
    import pandas as pd

    rows = {}
    for name, s in results.items():
        spread, budget = s.get("seed_spread", {}), s.get("budget", {})
        rows[name] = {"psnr_hole": s["overall"]["psnr_hole"], "psnr_hole_seed_std": spread.get("std", float("nan")),
                      "ssim_hole": s["overall"]["ssim_hole"], "l1_hole": s["overall"]["l1_hole"],
                      "seeds": len(spread.get("seeds", [])) or float("nan"),
                      "images_seen": budget.get("images_seen", float("nan")),
                      "train_seconds": budget.get("train_seconds", float("nan"))}
    return pd.DataFrame(rows).T


def bucket_table(results: dict[str, dict], metric: str = "psnr_hole"):
    """A pandas table (rows = models, columns = hole-ratio buckets) of one metric."""
    import pandas as pd

    return pd.DataFrame(
        {name: {b: s["buckets"].get(b, {}).get(metric, float("nan")) for b in BUCKET_NAMES} for name, s in results.items()}
    ).T


def seed_spread(values: dict[int, float]) -> dict:
    """How much one number moves with the seed: ``{seed: value}`` (at least two seeds) ->
    ``{"seeds", "values", "mean", "std" (sample, n - 1), "min", "max"}``."""
    if len(values) < 2:
        raise ValueError(f"a spread needs at least two seeds, got {len(values)}")
    seeds = sorted(values)
    x = torch.tensor([float(values[s]) for s in seeds], dtype=torch.float64)
    return {"seeds": seeds, "values": x.tolist(), "mean": float(x.mean()), "std": float(x.std(unbiased=True)),
            "min": float(x.min()), "max": float(x.max())}
