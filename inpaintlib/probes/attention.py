"""Where attention points: hit rates and attention mass on correct sources, for any attention matrix.

Every attention module of the book returns a matrix ``a`` of shape (B, Lq, Lk): row q holds the
weights of the sources (keys) k used to fill query position q. Queries and keys lie on square grids
that tile the image: DeepFill v1's matching grid, CSA's feature grid and SWAP's / SACA's H/4 grid are
all 16 x 16 at 64 px (a stride-1 key grid; keys with a stride are not handled). A probe says, per
query, which keys are *correct* sources (a ``(B, Lq, Lk)`` bool matrix); these functions score the
attention against that answer, over the queries that lie wholly inside the hole.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def square_grid(positions: int) -> tuple[int, int]:
    """``(h, w)`` of a square grid of ``positions`` cells (attention rows are flattened row-major)."""
    side = math.isqrt(positions)
    if side * side != positions:
        raise ValueError(f"attention over {positions} positions is not a square grid")
    return side, side


def cell_fraction(mask: Tensor, grid: tuple[int, int]) -> Tensor:
    """Share of each grid cell's pixels that are missing: mask ``(B, 1, H, W)`` -> ``(B, h * w)``."""
    height, width = mask.shape[-2:]
    if height % grid[0] or width % grid[1]:
        raise ValueError(f"a {grid[0]}x{grid[1]} grid does not tile {height}x{width} px images")
    return F.avg_pool2d(mask.float(), (height // grid[0], width // grid[1])).flatten(1)


def hole_cells(mask: Tensor, grid: tuple[int, int]) -> Tensor:
    """``(B, h * w)`` bool: cells whose every pixel is missing (the positions a model must generate)."""
    return cell_fraction(mask, grid) == 1


def known_cells(mask: Tensor, grid: tuple[int, int]) -> Tensor:
    """``(B, h * w)`` bool: cells with no missing pixel."""
    return cell_fraction(mask, grid) == 0


def cell_classes(labels: Tensor, grid: tuple[int, int], num_classes: int) -> Tensor:
    """Class of each grid cell: labels ``(B, H, W)`` -> ``(B, h * w)`` long, -1 where a cell holds two classes."""
    height, width = labels.shape[-2:]
    one_hot = F.one_hot(labels.long(), num_classes).permute(0, 3, 1, 2).float()  # (B, K, H, W)
    share = F.avg_pool2d(one_hot, (height // grid[0], width // grid[1])).flatten(2)  # (B, K, h*w)
    top, cls = share.max(dim=1)  # (B, h*w)
    return torch.where(top == 1, cls, torch.full_like(cls, -1))


def _check(attention: Tensor, correct: Tensor, queries: Tensor) -> None:
    if attention.ndim != 3 or correct.shape != attention.shape:
        raise ValueError(f"attention (B, Lq, Lk) and correct must match, got {tuple(attention.shape)} and "
                         f"{tuple(correct.shape)}")
    if queries.shape != attention.shape[:2]:
        raise ValueError(f"queries must be (B, Lq) = {tuple(attention.shape[:2])}, got {tuple(queries.shape)}")


def _mean_over(values: Tensor, queries: Tensor) -> Tensor:
    """Mean of ``values`` (B, Lq) over the ``queries`` (B, Lq) bool of each row; NaN for a row without any."""
    count = queries.sum(1)
    mean = (values * queries).sum(1) / count.clamp_min(1)
    return torch.where(count > 0, mean, float("nan"))


def attention_hits(attention: Tensor, correct: Tensor, queries: Tensor) -> Tensor:
    """Share of the chosen queries whose strongest source is a correct one. ``(B,)``, NaN without queries.

    hits = mean over q in queries of correct[q, argmax_k a[q, k]].
    attention: (B, Lq, Lk); correct: (B, Lq, Lk) bool; queries: (B, Lq) bool.
    """
    _check(attention, correct, queries)
    best = attention.argmax(dim=-1, keepdim=True)  # (B, Lq, 1)
    return _mean_over(correct.gather(2, best)[..., 0].float(), queries)


def attention_mass(attention: Tensor, correct: Tensor, queries: Tensor) -> Tensor:
    """Mean attention mass on correct sources over the chosen queries. ``(B,)``, NaN without queries.

    mass = mean over q in queries of sum_k a[q, k] correct[q, k] (rows of ``a`` sum to 1).
    """
    _check(attention, correct, queries)
    return _mean_over((attention * correct).sum(-1), queries)  # (B, Lq) mass per query
