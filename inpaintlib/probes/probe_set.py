"""Probe sets: small, deterministic benchmarks in which one paper's mechanism must decide the score.

A probe set is built like the Scenes benchmark (images in [0, 1], holes with 1 = missing, exact labels)
but its layout and holes are chosen so that the ground truth of the hole can only be reached through
the mechanism a paper claims (copying, coherence, semantics, structure). Each probe adds the ground
truth its metric needs (``truth``). Images are painted with the Scenes textures
(:func:`inpaintlib.data.scenes.paint_labels`), so models trained on Scenes are tested on the mechanism,
not on transfer to new textures.

Sizes: every probe is laid out on a grid of ``unit = size / 8`` pixels (8 px at 64 px) and holes
start on multiples of ``size / 16``, the cell of the book's 16 x 16 attention grids, so attention
cells are either wholly inside or wholly outside a hole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# Random streams: Scenes uses [seed, split (0..2), index]; probe p uses [seed, PROBE_STREAM + p, index].
PROBE_STREAM = 100


@dataclass(frozen=True)
class ProbeSet:
    """One probe: ``images`` (N,3,H,W) in [0,1], ``masks`` (N,1,H,W) float (1 = missing),
    ``labels`` (N,H,W) long Scenes classes, ``truth`` {name: (N,...)} the ground truth of its metric."""

    name: str
    images: Tensor
    masks: Tensor
    labels: Tensor
    truth: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def part(self, start: int, stop: int) -> "ProbeSet":
        """Images ``start`` to ``stop - 1`` with their masks, labels and ground truth."""
        return ProbeSet(self.name, self.images[start:stop], self.masks[start:stop], self.labels[start:stop],
                        {k: v[start:stop] for k, v in self.truth.items()})


def probe_rng(probe_id: int, seed: int, index: int) -> np.random.Generator:
    """The generator that draws image ``index`` of probe ``probe_id``; no two images share a stream."""
    return np.random.default_rng([seed, PROBE_STREAM + probe_id, index])


def layout_unit(size: int) -> int:
    """The layout unit ``size / 8`` in pixels; ``size`` must be a multiple of 16 and at least 32."""
    if size < 32 or size % 16:
        raise ValueError(f"probes need an image size that is a multiple of 16 and at least 32, got {size}")
    return size // 8


def check_count(count: int) -> None:
    if count < 1:
        raise ValueError(f"a probe needs count >= 1, got {count}")


def box_mask(size: int, top: int, left: int, height: int, width: int) -> np.ndarray:
    """``(size, size)`` float32, 1 inside the box ``[top, top + height) x [left, left + width)``."""
    mask = np.zeros((size, size), dtype=np.float32)
    mask[top : top + height, left : left + width] = 1.0
    return mask


def ring(hole: np.ndarray, width: int) -> np.ndarray:
    """``(H, W)`` bool: known pixels within Chebyshev distance ``width`` of the hole ``(H, W)``."""
    grown = F.max_pool2d(torch.from_numpy(hole.astype(np.float32))[None, None], 2 * width + 1, 1, width)[0, 0]
    return grown.numpy().astype(bool) & ~hole.astype(bool)


def stack_probe(name: str, items: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                truth: dict[str, list] | None = None) -> ProbeSet:
    """Build a :class:`ProbeSet` from ``(image (H,W,3), labels (H,W), mask (H,W))`` triples and
    per-image ground truth lists."""
    images = torch.from_numpy(np.stack([im for im, _, _ in items])).permute(0, 3, 1, 2).contiguous().float()
    labels = torch.from_numpy(np.stack([lab for _, lab, _ in items])).long()
    masks = torch.from_numpy(np.stack([m for _, _, m in items]))[:, None].float()
    stacked = {k: torch.as_tensor(np.stack(v)) for k, v in (truth or {}).items()}
    return ProbeSet(name, images, masks, labels, stacked)


def dilate(x: Tensor, tolerance: int) -> Tensor:
    """``(B, H, W)`` bool grown by ``tolerance`` pixels in every direction (a square, Chebyshev distance)."""
    if tolerance == 0:
        return x
    return F.max_pool2d(x[:, None].float(), 2 * tolerance + 1, 1, tolerance)[:, 0] > 0


def tolerant_f_score(pred: Tensor, true: Tensor, region: Tensor, tolerance: int = 1) -> Tensor:
    """F-score of thin curves (boundaries, edges) inside ``region``, with a matching tolerance. ``(B,)``.

    pred, true, region: ``(B, H, W)`` bool. A predicted pixel counts as correct when a true pixel lies
    within ``tolerance`` px (Chebyshev), and the other way round for recall:

        P = |pred & region & dilate(true)| / |pred & region|,  R = |true & region & dilate(pred)| / |true & region|,
        F = 2 P R / (P + R);

    F = 1 when neither has a pixel in the region, 0 when only one has. [our construction: the
    boundary F-measure of Martin et al. (BSDS) with a dilation instead of one-to-one matching]
    """
    pred_in, true_in = pred & region, true & region  # matches may lie just outside the region
    n_pred, n_true = pred_in.flatten(1).sum(1), true_in.flatten(1).sum(1)  # (B,)
    precision = (pred_in & dilate(true, tolerance)).flatten(1).sum(1) / n_pred.clamp_min(1)
    recall = (true_in & dilate(pred, tolerance)).flatten(1).sum(1) / n_true.clamp_min(1)
    f = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    return torch.where((n_pred == 0) & (n_true == 0), torch.ones_like(f), f)
