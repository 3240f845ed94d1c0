"""The class-texture probe (coherence priors / SWAP, SACA): two textures in the hole, a third one close by.

SWAP (Liao et al., CVPR 2021) and our SACA reconstruction claim that attention gated by semantics
borrows texture only from regions of the query's own class. Ungated attention (and plain convolution)
borrows from whatever looks alike or lies near. The claim decides the result where the hole covers two
textured classes and a *third* texture lies closer to the hole than most of the right sources. Each
image here: sky above two ground bands (two different Scenes ground textures) whose straight, level
boundary runs through the middle of a square hole of 3 x 3 layout units, and a tree (its own dark,
blotchy texture) standing in one band a few pixels beside the hole. Both bands continue on the other
side of the hole and past the tree, so the right sources are always visible. The hole and the band
boundary lie on the attention-cell grid, so every hole cell holds one class.

Metrics: :func:`class_texture_distance`, the distance between the HED-VGG16 feature statistics (per-channel
mean and standard deviation) of output and ground truth, computed separately inside each true class
region of the hole, and, for models that expose their
attention, :func:`same_class_attention`, the share of attention mass that hole cells put on known
cells of their own class.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from inpaintlib.data.scenes import GROUND_CLASSES, NUM_CLASSES, SKY, TREE, paint_labels
from inpaintlib.features import HEDVGG16Features
from inpaintlib.probes.attention import attention_mass, cell_classes, hole_cells, known_cells, square_grid
from inpaintlib.probes.probe_set import ProbeSet, box_mask, check_count, layout_unit, probe_rng, stack_probe

CLASS_TEXTURE_PROBE_ID = 3
HOLE_UNITS = 3  # hole side: 3 units, 24 px at 64 px
TEXTURE_LAYERS = ("relu1_2", "relu2_2")  # receptive fields of 5 and 16 px: local texture, not layout
MIN_REGION_PIXELS = 16  # a class region of the hole smaller than this is not scored
STAT_EPS = 1e-8
# Pixels of context kept around the hole when cropping before the HED trunk: at least the receptive-field
# radius of relu2_2 (7 px), so the features inside the hole are those of the whole image (tested).
CROP_MARGIN = 8


def _layout(rng: np.random.Generator, size: int, unit: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``(size, size)`` and hole ``(size, size)`` of one class-texture image (see the module text)."""
    cell = size // 16
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    side = HOLE_UNITS * unit
    top = int(rng.integers(6, 9)) * cell  # 1.5 to 2 units down; the sky ends above 1.1 units
    left = int(rng.integers(1, 5)) * unit
    upper, lower = (int(c) for c in rng.choice(GROUND_CLASSES, size=2, replace=False))
    labels = np.full((size, size), SKY, dtype=np.int64)
    labels[yy >= rng.uniform(0.08, 0.12) * size + rng.uniform(-0.03, 0.03) * (xx - size / 2)] = upper
    labels[top + side // 2 :] = lower  # the band boundary halves the hole, on a cell border
    # the tree: in the upper or the lower half of the hole's height, on the side with more room
    radius_y = rng.uniform(0.09, 0.12) * size
    radius_x = radius_y * rng.uniform(0.7, 1.0)
    centre_y = top + side * (0.25 if rng.uniform() < 0.5 else 0.75)
    gap = rng.uniform(0.25, 0.5) * unit
    right_room = size - (left + side)
    centre_x = left + side + gap + radius_x if right_room >= left else left - gap - radius_x
    labels[((xx - centre_x) / radius_x) ** 2 + ((yy - centre_y) / radius_y) ** 2 <= 1.0] = TREE
    return labels, box_mask(size, top, left, side, side)


def make_class_texture_probe(size: int = 64, count: int = 200, seed: int = 0) -> ProbeSet:
    """``count`` images whose square hole (3 x 3 units) is half one ground texture, half another, with a
    tree a few pixels beside it."""
    check_count(count)
    unit = layout_unit(size)
    items = []
    for index in range(count):
        rng = probe_rng(CLASS_TEXTURE_PROBE_ID, seed, index)
        labels, hole = _layout(rng, size, unit)
        items.append((paint_labels(rng, labels), labels, hole))
    return stack_probe("class_texture", items)


@functools.lru_cache(maxsize=1)
def hed_features() -> HEDVGG16Features:
    """The HED-VGG16 trunk with the layers of :data:`TEXTURE_LAYERS`, loaded once."""
    return HEDVGG16Features(layers=TEXTURE_LAYERS)


def region_moments(features: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation of ``features`` (B, C, P) within each of the soft regions
    ``weight`` (B, K, P): ``mu = sum_p w_p f_p / sum_p w_p``, ``sigma^2 = sum_p w_p f_p^2 / sum_p w_p - mu^2``.
    Returns two ``(B, K, C)`` float64 tensors."""
    features, weight = features.double(), weight.double()  # float64: the variance is a difference of squares
    total = weight.sum(2, keepdim=True).clamp_min(STAT_EPS)  # (B, K, 1)
    mean = weight @ features.transpose(1, 2) / total  # (B, K, C)
    square = weight @ (features**2).transpose(1, 2) / total
    return mean, (square - mean**2).clamp_min(0).sqrt()


def crop_around_holes(images: Tensor, mask: Tensor, margin: int = CROP_MARGIN) -> Tensor:
    """Crop each image of ``images`` (B, C, H, W) to a window holding its hole and ``margin`` px around it.

    All windows have the size of the largest one (each moved inside the image where it would stick
    out) and start on even pixels, so the 2 x 2 pools of the HED trunk keep their grid. Returns
    ``(B, C, h, w)``. mask: (B, 1, H, W).
    """
    hole = mask[:, 0] > 0  # (B, H, W)
    windows = []
    for occupied in (hole.any(2), hole.any(1)):  # rows, then columns, holding hole pixels: (B, H), (B, W)
        length = occupied.shape[1]
        first = occupied.float().argmax(1)  # (B,) first and last occupied index
        last = length - 1 - occupied.flip(1).float().argmax(1)
        start = (first - margin).clamp_min(0) // 2 * 2  # even
        size = int((last + 1 + margin - start).max())
        size = min(length, size + size % 2)  # even, at most the image
        windows.append(start.clamp(max=length - size)[:, None] + torch.arange(size, device=mask.device))  # (B, size)
    rows, cols = windows
    batch = torch.arange(len(images), device=images.device)[:, None, None]
    return images[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, C, h, w)


@torch.no_grad()
def class_texture_distance(output: Tensor, target: Tensor, labels: Tensor, mask: Tensor,
                           features: HEDVGG16Features | None = None, layers: Sequence[str] = TEXTURE_LAYERS,
                           num_classes: int = NUM_CLASSES, crop_margin: int | None = CROP_MARGIN) -> Tensor:
    """HED-VGG16 texture distance inside each true class region of the hole, averaged. ``(B,)`` [our construction]

    For every layer l and every class k that covers at least :data:`MIN_REGION_PIXELS` hole pixels,
    with R_k = hole & (labels == k) (area-averaged to layer l's grid) and (mu, sigma) the per-channel
    feature mean and standard deviation inside R_k (:func:`region_moments`, the statistics of
    Huang & Belongie's AdaIN):

        d_lk = (||mu_out - mu_true|| + ||sigma_out - sigma_true||) / (||mu_true|| + ||sigma_true||);

    the image's score is the mean over layers and scored classes (NaN if none); 0 = the ground truth's
    feature statistics, class by class. On this probe it ranks a re-rendered texture of the right
    class below a blur and below the tree's texture (measured: ``tests/unit/test_probes_texture.py``).
    output, target: (B, 3, H, W) in [0, 1] (output composed); labels: (B, H, W); mask: (B, 1, H, W).
    ``crop_margin``: the images are first cropped around their holes (:func:`crop_around_holes`); the
    default suits the default layers, deeper layers need a wider margin or ``None`` (no crop).
    """
    features = hed_features() if features is None else features
    batch = len(output)
    if crop_margin is not None:  # the hole and its context only: the same scores, a third of the work at 64 px
        stacked = torch.cat([output, target, labels[:, None].to(output.dtype), mask], 1)  # (B, 8, H, W)
        stacked = crop_around_holes(stacked, mask, crop_margin)
        output, target, labels, mask = stacked[:, :3], stacked[:, 3:6], stacked[:, 6].long(), stacked[:, 7:]
    feats = features.extract(torch.cat([output, target]), layers)  # {l: (2B, C, h, w)}
    regions = F.one_hot(labels.long(), num_classes).permute(0, 3, 1, 2).float() * mask  # (B, K, H, W)
    scored = regions.flatten(2).sum(2) >= MIN_REGION_PIXELS  # (B, K)
    total = torch.zeros(batch, num_classes, dtype=torch.float64, device=output.device)
    for layer in layers:
        flat = feats[layer].flatten(2)  # (2B, C, P)
        weight = F.adaptive_avg_pool2d(regions, feats[layer].shape[-2:]).flatten(2)  # (B, K, P)
        mean_out, std_out = region_moments(flat[:batch], weight)  # (B, K, C) each
        mean_true, std_true = region_moments(flat[batch:], weight)
        gap = (mean_out - mean_true).norm(dim=2) + (std_out - std_true).norm(dim=2)  # (B, K)
        total += gap / (mean_true.norm(dim=2) + std_true.norm(dim=2)).clamp_min(STAT_EPS)
    return ((total * scored).sum(1) / (len(layers) * scored.sum(1))).float()  # 0 / 0 = NaN when nothing scored


def same_class_attention(attention: Tensor, mask: Tensor, labels: Tensor, num_classes: int = NUM_CLASSES) -> Tensor:
    """Share of attention mass that hole cells put on known cells of their own class. ``(B,)``

    Over the query cells wholly inside the hole and of one class: mean of sum_k a[q, k] [class(k) =
    class(q), k known]; key cells holding two classes count as wrong. attention: (B, Lq, Lk) on square
    grids tiling the image; mask: (B, 1, H, W); labels: (B, H, W) true classes.
    """
    query_grid, key_grid = square_grid(attention.shape[1]), square_grid(attention.shape[2])
    query_class = cell_classes(labels, query_grid, num_classes)  # (B, Lq), -1 = two classes
    key_class = cell_classes(labels, key_grid, num_classes)  # (B, Lk)
    valid_key = known_cells(mask, key_grid) & (key_class >= 0)  # (B, Lk)
    correct = (query_class[:, :, None] == key_class[:, None, :]) & valid_key[:, None, :]  # (B, Lq, Lk)
    queries = hole_cells(mask, query_grid) & (query_class >= 0)
    return attention_mass(attention, correct.to(attention.device), queries.to(attention.device))
