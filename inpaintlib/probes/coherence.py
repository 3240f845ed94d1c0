"""The regular-texture probe (CSA): large holes in a regular texture, scored by seams between patches.

CSA (Liu et al., ICCV 2019) claims that filling each hole feature patch with its best known match is
not enough: independently chosen patches need not fit together, so CSA makes every generated patch
depend on the previous one (coherence). That only matters where the hole is large (many generated
patches side by side) and the texture is regular, so that two patches copied from different phases
of the pattern visibly clash. Each image here is a brick wall or a water surface (the two regular
Scenes textures: brick courses and horizontal ripples) under a strip of sky, with a hole of 4 x 4
layout units (a quarter of the image) inside the texture and at least one unit of texture on every
side of it. The hole sits on the grid of the attention cells.

Metric: :func:`seam_score`, the mean colour jump across the attention-cell borders inside the hole
relative to the jump between neighbours inside a cell. It is 1 when cell borders are not special
(a continuous texture, or a smooth fill) and grows with patch seams; report it beside in-hole PSNR,
which rewards a smooth fill that has no seams and no texture.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from inpaintlib.data.scenes import BRICK, SKY, WATER, paint_labels
from inpaintlib.probes.probe_set import ProbeSet, box_mask, check_count, layout_unit, probe_rng, stack_probe

REGULAR_PROBE_ID = 1
REGULAR_CLASSES = (BRICK, WATER)  # alternate: even images brick, odd images water
HOLE_UNITS = 4  # hole side: 4 units = half the image side, a quarter of its area
SEAM_EPS = 1e-4  # colour-jump floor of the seam ratio, so a flat fill scores 1, not 0 / 0


def attention_cell(size: int) -> int:
    """Pixel side of one cell of the book's 16 x 16 attention grids at ``size`` px (4 px at 64 px)."""
    return size // 16


def make_regular_texture_probe(size: int = 64, count: int = 200, seed: int = 0) -> ProbeSet:
    """``count`` brick or water scenes with a square hole of a quarter of the image inside the texture."""
    check_count(count)
    unit = layout_unit(size)
    items = []
    for index in range(count):
        rng = probe_rng(REGULAR_PROBE_ID, seed, index)
        labels = np.full((size, size), REGULAR_CLASSES[index % 2], dtype=np.int64)
        labels[: int(rng.uniform(0.06, 0.12) * size)] = SKY  # a strip of sky, less than one unit high
        top, left = int(rng.integers(2, 4)) * unit, int(rng.integers(1, 4)) * unit  # texture all round
        hole = box_mask(size, top, left, HOLE_UNITS * unit, HOLE_UNITS * unit)
        items.append((paint_labels(rng, labels), labels, hole))
    return stack_probe("regular_texture", items)


def seam_score(image: Tensor, mask: Tensor, cell: int) -> Tensor:
    """Colour jump across cell borders over the jump inside cells, within the hole. ``(B,)`` [our construction]

    With ``d(p, p')`` the mean absolute RGB difference of two 4-neighbours that are both in the hole,
    ``seam = (mean d over pairs straddling a border of the cell x cell grid + eps)
    / (mean d over the other pairs + eps)``. About 1 for a seamless result; NaN when the hole holds
    no pair of one kind. image: (B, 3, H, W); mask: (B, 1, H, W); ``cell`` in pixels
    (:func:`attention_cell` for the book's models).
    """
    hole = mask[:, 0] > 0  # (B, H, W)
    border_sum = border_count = inner_sum = inner_count = 0.0
    for dim in (-1, -2):  # horizontal then vertical neighbours
        length = image.shape[dim]
        jump = image.diff(dim=dim).abs().mean(1)  # (B, H, W-1) or (B, H-1, W)
        pair = hole.narrow(dim, 1, length - 1) & hole.narrow(dim, 0, length - 1)  # both pixels in the hole
        crosses = (torch.arange(1, length) % cell == 0).to(image.device)  # pair (i-1, i) straddles a border
        crosses = crosses if dim == -1 else crosses[:, None]
        border, inner = pair & crosses, pair & ~crosses
        border_sum = border_sum + (jump * border).flatten(1).sum(1)
        border_count = border_count + border.flatten(1).sum(1)
        inner_sum = inner_sum + (jump * inner).flatten(1).sum(1)
        inner_count = inner_count + inner.flatten(1).sum(1)
    ratio = (border_sum / border_count.clamp_min(1) + SEAM_EPS) / (inner_sum / inner_count.clamp_min(1) + SEAM_EPS)
    return torch.where((border_count > 0) & (inner_count > 0), ratio, float("nan"))
