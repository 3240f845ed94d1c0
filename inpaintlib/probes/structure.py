"""The edge probe (LBP-guided inpainting): straight edges and mortar lines crossing the hole.

The LBP paper (Wu et al., TMM 2021) claims that predicting the hole's local binary patterns first,
and painting with them as guidance, keeps structure: edges continue through the hole instead of
fading. That decides the result where straight edges run through the hole. Each image is a brick
building (the Scenes brick texture, whose mortar lines are straight) standing on the ground under the
sky; the square hole (3 x 3 layout units) lies, in turn, on the building's wall edge (a vertical
edge crossing the hole top to bottom), on its roof line (a horizontal edge crossing it left to right)
or on a roof corner (both), and always over some of the brick and its mortar lines.

Metrics: :func:`edge_f_score`, the F-score of scikit-image's Canny edges of output and ground truth
inside the hole, and :func:`lbp_histogram_distance`, the chi-square distance between the histograms
of the book's LBP codes (:mod:`inpaintlib.lbp`, the paper's operator) of output and ground truth in
the hole. ``truth["edges"]`` holds the ground truth's Canny edges, for pictures.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.color import rgb2gray
from skimage.feature import canny
from torch import Tensor

from inpaintlib.data.scenes import BRICK, GROUND_CLASSES, SKY, paint_labels
from inpaintlib.lbp import local_binary_pattern, rgb_to_gray_uint8_like
from inpaintlib.probes.probe_set import (ProbeSet, box_mask, check_count, layout_unit, probe_rng, stack_probe,
                                        tolerant_f_score)

EDGE_PROBE_ID = 4
HOLE_UNITS = 3  # hole side: 3 units, 24 px at 64 px
HOLE_PLACES = ("wall", "roof", "corner")  # image i puts its hole on HOLE_PLACES[i % 3]
# Canny on grey levels in [0, 1]: Gaussian sigma in pixels and hysteresis thresholds on skimage's
# Sobel gradient magnitude; chosen so the building's outline and the mortar lines are found at 64 px
# and the sky's soft clouds are not (0.3 % of sky pixels become edges, against 3 % at the defaults 0.1, 0.2).
CANNY_SIGMA, CANNY_LOW, CANNY_HIGH = 1.0, 0.25, 0.5
LBP_BINS = 256
CHI2_EPS = 1e-12


def _layout(rng: np.random.Generator, size: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Labels ``(size, size)`` of sky, one ground class and a brick building; and the building's
    ``(top, base, left, right)`` in pixels."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    horizon = rng.uniform(0.62, 0.72) * size + rng.uniform(-0.05, 0.05) * (xx - size / 2)
    labels = np.full((size, size), SKY, dtype=np.int64)
    labels[yy >= horizon] = int(rng.choice(GROUND_CLASSES))
    width = rng.uniform(0.45, 0.6) * size
    left = rng.uniform(0.1 * size, 0.9 * size - width)
    top = rng.uniform(0.15, 0.25) * size  # the wall is over 0.4 * size (3.2 units) high
    base = float(horizon[0, int(left + width / 2)]) + 0.05 * size
    labels[(xx >= left) & (xx < left + width) & (yy >= top) & (yy < base)] = BRICK
    return labels, (top, base, left, left + width)


def _hole_centre(rng: np.random.Generator, place: str, building: tuple[float, float, float, float],
                 unit: int) -> tuple[float, float]:
    """Centre ``(y, x)`` of the hole on the building's wall edge, roof line or roof corner."""
    top, base, left, right = building
    side_x = left if rng.uniform() < 0.5 else right
    if place == "wall":
        return rng.uniform(top + 1.5 * unit, base - 1.5 * unit), side_x
    if place == "roof":
        return top, rng.uniform(left + 1.5 * unit, right - 1.5 * unit)
    return top + rng.uniform(-0.5, 0.5) * unit, side_x + rng.uniform(-0.5, 0.5) * unit


def make_edge_probe(size: int = 64, count: int = 200, seed: int = 0) -> ProbeSet:
    """``count`` brick buildings whose square hole (3 x 3 units) lies on the wall edge, the roof line or
    a roof corner. ``truth["edges"]``: (N, H, W) bool Canny edges of the ground truth."""
    check_count(count)
    unit = layout_unit(size)
    side = HOLE_UNITS * unit
    items, edges = [], []
    for index in range(count):
        rng = probe_rng(EDGE_PROBE_ID, seed, index)
        labels, building = _layout(rng, size)
        centre_y, centre_x = _hole_centre(rng, HOLE_PLACES[index % 3], building, unit)
        top = int(np.clip(round(centre_y - side / 2), 0, size - side))
        left = int(np.clip(round(centre_x - side / 2), 0, size - side))
        image = paint_labels(rng, labels)
        items.append((image, labels, box_mask(size, top, left, side, side)))
        edges.append(canny(rgb2gray(image), CANNY_SIGMA, CANNY_LOW, CANNY_HIGH))
    return stack_probe("edges", items, {"edges": edges})


def canny_edges(images: Tensor) -> Tensor:
    """scikit-image Canny edges of the grey levels of ``images`` (B, 3, H, W) in [0, 1]. ``(B, H, W)`` bool."""
    grey = rgb2gray(images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy())  # (B, H, W)
    return torch.from_numpy(np.stack([canny(g, CANNY_SIGMA, CANNY_LOW, CANNY_HIGH) for g in grey])).to(images.device)


def edge_f_score(output: Tensor, target: Tensor, mask: Tensor, tolerance: int = 1) -> Tensor:
    """F-score of the output's Canny edges against the ground truth's, inside the hole. ``(B,)``

    Edges of the whole (composed) images, compared on the hole's pixels with a ``tolerance`` in pixels
    (see :func:`inpaintlib.probes.probe_set.tolerant_f_score`). output, target: (B, 3, H, W) in [0, 1];
    mask: (B, 1, H, W). [our construction on scikit-image's Canny]
    """
    return tolerant_f_score(canny_edges(output), canny_edges(target), mask[:, 0] > 0, tolerance)


def lbp_histograms(image: Tensor, mask: Tensor) -> Tensor:
    """Normalised histogram of the LBP codes (:func:`inpaintlib.lbp.local_binary_pattern`, zero border)
    of ``image`` (B, 3, H, W) over the hole of ``mask`` (B, 1, H, W). ``(B, 256)``, rows sum to 1."""
    codes = local_binary_pattern(rgb_to_gray_uint8_like(image.float().clamp(0, 1)), border="zero")  # (B, 1, H, W)
    counts = torch.zeros(len(image), LBP_BINS, dtype=torch.float64, device=image.device)
    counts.scatter_add_(1, codes.flatten(1), mask.flatten(1).double())  # hole pixels per code
    return counts / counts.sum(1, keepdim=True).clamp_min(1)


def lbp_histogram_distance(output: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Chi-square distance between the in-hole LBP-code histograms of output and ground truth. ``(B,)``

    chi2(h, g) = 1/2 sum_c (h_c - g_c)^2 / (h_c + g_c), in [0, 1]: 0 = the same local patterns in the
    same proportions, 1 = no code in common. [our construction on the paper's LBP operator]
    """
    h, g = lbp_histograms(output, mask), lbp_histograms(target, mask)  # (B, 256) each
    return (0.5 * (h - g) ** 2 / (h + g).clamp_min(CHI2_EPS)).sum(1).float()
