"""The copy probe (contextual attention, DeepFill v1): the hole's content appears exactly elsewhere.

DeepFill v1 claims that contextual attention *copies* known patches into the hole. That can only be
tested where copying is the right answer and the right source is known. Each image is a Scenes scene
(drawn from its own random stream) in which a block of half the image side (4 x 4 layout units) is duplicated: its
pixels are pasted, exactly, to another non-overlapping place on the unit grid. The hole is the centre
(2 x 2 units) of the pasted copy, so a one-unit ring of the copy stays visible around the hole and
matches the ring around the original: a model that matches that context and copies reproduces the
hole exactly, while a model that continues the ring locally can only guess the inside. Of a few random
source/target pairs, the one whose hole content has the most detail (grey-level spread) is kept, so
the inside is not predictable from the ring.

Ground truth: ``truth["offset"]`` (N, 2) long, the shift ``(dy, dx)`` in pixels from a hole pixel to
the known pixel holding its content: ``image[:, y + dy, x + dx] == image[:, y, x]`` in the hole. The
shift is a multiple of the layout unit, so it is a whole number of cells on the 16 x 16 attention grid.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from inpaintlib.data.scenes import render_scene
from inpaintlib.probes.attention import attention_hits, hole_cells, known_cells, square_grid
from inpaintlib.probes.probe_set import ProbeSet, box_mask, check_count, layout_unit, probe_rng, stack_probe

COPY_PROBE_ID = 0
BLOCK_UNITS = 4  # the duplicated block: 4 x 4 units, half the image side
CANDIDATE_PAIRS = 8  # source/target pairs drawn per image; the one with the most detailed hole is kept


def _block_pairs(rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` (source, target) top-left corners, in units, of two non-overlapping 4 x 4 blocks."""
    slots = 8 - BLOCK_UNITS + 1  # corners 0..4 units on each axis
    pairs = []
    while len(pairs) < count:
        source, target = rng.integers(0, slots, size=2), rng.integers(0, slots, size=2)
        if np.abs(source - target).max() >= BLOCK_UNITS:  # the blocks do not overlap
            pairs.append((source, target))
    return pairs


def _hole_detail(grey: np.ndarray, source: np.ndarray, unit: int) -> float:
    """Grey-level spread of the centre 2 x 2 units of the block at ``source`` (units): what the hole will hide."""
    top, left = source * unit
    return float(grey[top + unit : top + 3 * unit, left + unit : left + 3 * unit].std())


def make_copy_probe(size: int = 64, count: int = 200, seed: int = 0) -> ProbeSet:
    """``count`` scenes with a duplicated block whose centre is the hole (hole = 1/16 of the image).

    ``truth["offset"]``: (N, 2) long ``(dy, dx)`` from each hole pixel to its exact copy in the known region.
    """
    check_count(count)
    unit = layout_unit(size)
    block = BLOCK_UNITS * unit
    items, offsets = [], []
    for index in range(count):
        rng = probe_rng(COPY_PROBE_ID, seed, index)
        image, labels = render_scene(rng, size)
        grey = image.mean(axis=2)
        source, target = max(_block_pairs(rng, CANDIDATE_PAIRS), key=lambda pair: _hole_detail(grey, pair[0], unit))
        (sy, sx), (ty, tx) = source * unit, target * unit
        image[ty : ty + block, tx : tx + block] = image[sy : sy + block, sx : sx + block]
        labels[ty : ty + block, tx : tx + block] = labels[sy : sy + block, sx : sx + block]
        hole = box_mask(size, ty + unit, tx + unit, block - 2 * unit, block - 2 * unit)
        items.append((image, labels, hole))
        offsets.append(np.array([sy - ty, sx - tx], dtype=np.int64))
    return stack_probe("copy", items, {"offset": offsets})


def copy_source_cells(offset: Tensor, image_hw: tuple[int, int], query_grid: tuple[int, int],
                      key_grid: tuple[int, int], tolerance: int = 1) -> Tensor:
    """Correct sources of every query cell: ``(B, Lq, Lk)`` bool.

    The content of query cell q (centre pixel c_q) sits at c_q + offset; the key cell k* holding that
    pixel, and its neighbours within ``tolerance`` cells (Chebyshev), are correct.
    offset: (B, 2) ``(dy, dx)`` in pixels; grids ``(h, w)`` tile the ``image_hw`` image.
    """
    per_axis = []
    for axis in range(2):
        cells, keys = query_grid[axis], key_grid[axis]
        centres = (torch.arange(cells, dtype=torch.float64) + 0.5) * image_hw[axis] / cells  # (q,) px
        source = centres[None, :] + offset[:, axis : axis + 1].double()  # (B, q) px
        best = torch.floor(source * keys / image_hw[axis])  # (B, q) key index of the source pixel
        per_axis.append((torch.arange(keys)[None, None, :] - best[:, :, None]).abs() <= tolerance)  # (B, q, k)
    rows, cols = per_axis  # (B, qh, kh), (B, qw, kw)
    correct = rows[:, :, None, :, None] & cols[:, None, :, None, :]  # (B, qh, qw, kh, kw)
    return correct.reshape(len(offset), query_grid[0] * query_grid[1], key_grid[0] * key_grid[1])


def copy_attention_hits(attention: Tensor, mask: Tensor, offset: Tensor, tolerance: int = 1) -> Tensor:
    """Share of hole cells whose strongest attention points at the true copy source. ``(B,)``

    attention: (B, Lq, Lk) on square grids tiling the image; mask: (B, 1, H, W); offset: (B, 2) from the
    probe's ``truth["offset"]``; ``tolerance`` in cells (1: the source cell or one of its 8 neighbours).
    """
    query_grid, key_grid = square_grid(attention.shape[1]), square_grid(attention.shape[2])
    correct = copy_source_cells(offset, tuple(mask.shape[-2:]), query_grid, key_grid, tolerance)
    return attention_hits(attention, correct.to(attention.device), hole_cells(mask, query_grid))


def copy_hit_chance(attention: Tensor, mask: Tensor, offset: Tensor, tolerance: int = 1) -> Tensor:
    """Hit rate of a source drawn uniformly from the known cells: the floor for :func:`copy_attention_hits`.

    chance = mean over hole cells q of |correct(q) & known| / |known|. ``(B,)``; same arguments (only
    ``attention``'s shape is used).
    """
    query_grid, key_grid = square_grid(attention.shape[1]), square_grid(attention.shape[2])
    correct = copy_source_cells(offset, tuple(mask.shape[-2:]), query_grid, key_grid, tolerance)  # (B, Lq, Lk)
    known = known_cells(mask, key_grid)  # (B, Lk)
    share = (correct & known[:, None, :]).sum(-1) / known.sum(-1, keepdim=True).clamp_min(1)  # (B, Lq)
    queries = hole_cells(mask, query_grid)
    return (share * queries).sum(1) / queries.sum(1)
