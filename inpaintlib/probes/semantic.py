"""The boundary probe (SGE-Net, SPL): class boundaries that cross the hole, scored by a segmenter.

SGE-Net (Liao et al., ECCV 2020) and SPL (Zhang et al., IJCAI 2021) claim that predicting (or
distilling) the semantic layout inside the hole makes the filled region have the right classes in
the right places. That decides the result only where the hole hides *where one class ends and the
next begins*. Each image is a Scenes-like layout with straight boundaries: sky above a tilted horizon,
two ground bands, and a brick building standing on the ground. The hole (3 x 3 layout units) is
centred on a point of one boundary, in turn the horizon (sky | ground), the band boundary
(ground | ground) or the building's wall (brick | sky or ground), and is kept only if it covers two
or more classes and every class inside it is also visible around it (no hidden object): the right
answer is to continue the visible boundary through the hole with the visible classes on either side.

Metrics (the segmenter yardstick of :mod:`inpaintlib.segmentation` run on the composed output):
:func:`hole_miou`, the per-image mIoU over the hole's pixels, and :func:`boundary_f_score`, how well the
predicted class boundaries inside the hole match the true ones.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from inpaintlib.data.scenes import BRICK, GROUND_CLASSES, NUM_CLASSES, SKY, paint_labels
from inpaintlib.probes.probe_set import (ProbeSet, box_mask, check_count, layout_unit, probe_rng, ring, stack_probe,
                                        tolerant_f_score)

BOUNDARY_PROBE_ID = 2
HOLE_UNITS = 3  # hole side: 3 units, 24 px at 64 px
CENTRE_TRIES = 50  # hole centres tried per layout before a new layout is drawn


def _layout(rng: np.random.Generator, size: int) -> tuple[np.ndarray, tuple[tuple[int, int], ...]]:
    """Sky, two ground bands with straight tilted boundaries, a brick building: labels ``(size, size)``
    and the class pairs of its three boundaries: horizon, band boundary, building wall."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    centred = xx - size / 2
    horizon = rng.uniform(0.3, 0.42) * size + rng.uniform(-0.15, 0.15) * centred  # (size, size) y of the horizon
    band = rng.uniform(0.62, 0.75) * size + rng.uniform(-0.2, 0.2) * centred
    upper, lower = (int(c) for c in rng.choice(GROUND_CLASSES, size=2, replace=False))
    labels = np.full((size, size), SKY, dtype=np.int64)
    labels[yy >= horizon] = upper
    labels[yy >= band] = lower
    width = rng.uniform(0.25, 0.4) * size
    left = rng.uniform(0.0, size - width)
    top = rng.uniform(0.08, 0.2) * size
    base = float(horizon[0, int(left + width / 2)]) + 0.05 * size  # stands on the ground
    labels[(xx >= left) & (xx < left + width) & (yy >= top) & (yy < base)] = BRICK
    return labels, ((SKY, upper), (upper, lower), (BRICK, SKY))


def _pair_boundary(labels: np.ndarray, a: int, b: int) -> np.ndarray:
    """``(H, W)`` bool: pixels of class ``a`` or ``b`` with a 4-neighbour of the other class."""
    pad = np.pad(labels, 1, mode="edge")
    neighbours = (pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:])
    return ((labels == a) & np.any([n == b for n in neighbours], axis=0)) | (
        (labels == b) & np.any([n == a for n in neighbours], axis=0))


def _hole_on_boundary(rng: np.random.Generator, labels: np.ndarray, pair: tuple[int, int], side: int,
                      unit: int) -> np.ndarray | None:
    """A ``side`` px square hole centred on the ``pair`` boundary, covering two or more classes all
    visible around it (within one unit); None when no tried centre qualifies."""
    size = labels.shape[0]
    ys, xs = np.nonzero(_pair_boundary(labels, *pair))
    fits = (ys >= side // 2) & (ys <= size - side + side // 2) & (xs >= side // 2) & (xs <= size - side + side // 2)
    ys, xs = ys[fits], xs[fits]
    for _ in range(min(CENTRE_TRIES, len(ys))):
        k = int(rng.integers(len(ys)))
        hole = box_mask(size, ys[k] - side // 2, xs[k] - side // 2, side, side)
        inside = set(np.unique(labels[hole > 0]).tolist())
        visible = set(np.unique(labels[ring(hole, unit)]).tolist())
        if len(inside) >= 2 and inside <= visible:
            return hole
    return None


def make_boundary_probe(size: int = 64, count: int = 200, seed: int = 0) -> ProbeSet:
    """``count`` layouts whose square hole (3 x 3 units) straddles a class boundary, cycling through
    horizon, ground-band boundary and building wall."""
    check_count(count)
    unit = layout_unit(size)
    items = []
    for index in range(count):
        rng = probe_rng(BOUNDARY_PROBE_ID, seed, index)
        hole = None
        while hole is None:
            labels, pairs = _layout(rng, size)
            hole = _hole_on_boundary(rng, labels, pairs[index % 3], HOLE_UNITS * unit, unit)
        items.append((paint_labels(rng, labels), labels, hole))
    return stack_probe("boundary", items)


def label_boundaries(labels: Tensor) -> Tensor:
    """``(B, H, W)`` bool: pixels whose right or lower neighbour has another label (labels ``(B, H, W)``)."""
    edge = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    edge[..., :, :-1] |= labels[..., :, 1:] != labels[..., :, :-1]
    edge[..., :-1, :] |= labels[..., 1:, :] != labels[..., :-1, :]
    return edge


def boundary_f_score(pred_labels: Tensor, true_labels: Tensor, mask: Tensor, tolerance: int = 1) -> Tensor:
    """F-score of the predicted class boundaries against the true ones inside the hole. ``(B,)``

    pred_labels, true_labels: (B, H, W) long; mask: (B, 1, H, W); ``tolerance`` in pixels
    (see :func:`inpaintlib.probes.probe_set.tolerant_f_score`). [our construction]
    """
    return tolerant_f_score(label_boundaries(pred_labels), label_boundaries(true_labels), mask[:, 0] > 0, tolerance)


def hole_miou(pred_labels: Tensor, true_labels: Tensor, mask: Tensor, num_classes: int = NUM_CLASSES) -> Tensor:
    """Per-image mIoU over the hole's pixels. ``(B,)``, NaN for an image without a hole.

    IoU_k = TP_k / (TP_k + FP_k + FN_k) counted over hole pixels, averaged over the classes that occur
    in the hole in the truth or the prediction (as :func:`inpaintlib.metrics.mean_iou`, per image).
    pred_labels, true_labels: (B, H, W) long; mask: (B, 1, H, W).
    """
    batch = len(true_labels)
    hole = (mask[:, 0] > 0).flatten(1)  # (B, HW)
    image = torch.arange(batch, device=hole.device)[:, None].expand_as(hole)  # (B, HW) image index
    cell = (image * num_classes + true_labels.flatten(1)) * num_classes + pred_labels.flatten(1)
    confusion = torch.bincount(cell[hole], minlength=batch * num_classes**2).reshape(batch, num_classes, num_classes)
    tp = confusion.diagonal(dim1=1, dim2=2).double()  # (B, K)
    union = confusion.sum(1).double() + confusion.sum(2).double() - tp  # predicted + true - both
    present = union > 0
    iou = torch.where(present, tp / union.clamp_min(1), 0.0)
    return iou.sum(1) / present.sum(1)  # 0 / 0 = NaN without hole pixels
