"""Pictures of what each probe's metric looks at, for the book's figures."""

from __future__ import annotations

import torch
from torch import Tensor

from inpaintlib.data.scenes import TREE
from inpaintlib.probes.coherence import attention_cell
from inpaintlib.probes.probe_set import ProbeSet
from inpaintlib.probes.semantic import label_boundaries
from inpaintlib.viz import colorize_labels

HIGHLIGHT = (1.0, 0.85, 0.0)  # yellow


def _paint(image: Tensor, where: Tensor, colour: tuple[float, float, float] = HIGHLIGHT,
           opacity: float = 1.0) -> Tensor:
    """``image`` (3, H, W) with the pixels of ``where`` (H, W) bool blended towards ``colour``."""
    tint = (1 - opacity) * image + opacity * torch.tensor(colour)[:, None, None]
    return torch.where(where[None], tint, image)


def metric_view(probe: ProbeSet, index: int) -> Tensor:
    """``(3, H, W)`` in [0, 1]: what the metric of ``probe`` compares in image ``index``.

    copy: the known region holding the hole's content, tinted yellow; regular_texture: the ground truth with
    the attention-cell borders inside the hole (where seams are measured) in yellow; boundary: the true
    label map, the class boundaries inside the hole in white; class_texture: the true label map inside
    the hole (the regions scored separately), the tree in yellow, the rest dimmed; edges: the ground
    truth's Canny edges, yellow inside the hole, grey outside.
    """
    image, hole, labels = probe.images[index], probe.masks[index, 0] > 0, probe.labels[index]
    height, width = hole.shape
    if probe.name == "copy":
        dy, dx = probe.truth["offset"][index].tolist()
        return _paint(image, torch.roll(hole, shifts=(dy, dx), dims=(0, 1)), opacity=0.5)
    if probe.name == "regular_texture":
        cell = attention_cell(width)
        rows, cols = torch.arange(height) % cell == 0, torch.arange(width) % cell == 0
        return _paint(image, hole & (rows[:, None] | cols[None, :]))
    if probe.name == "boundary":
        return _paint(colorize_labels(labels), hole & label_boundaries(labels[None])[0], (1.0, 1.0, 1.0))
    if probe.name == "class_texture":
        view = torch.where(hole[None], colorize_labels(labels), 0.35 * image)
        return _paint(view, labels == TREE)
    if probe.name == "edges":
        edges = probe.truth["edges"][index]
        return _paint(_paint(0.35 * image, edges & ~hole, (0.6, 0.6, 0.6)), edges & hole)
    raise ValueError(f"no view for probe {probe.name!r}")
