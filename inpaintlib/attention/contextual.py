"""Contextual attention (DeepFill v1, Yu et al., CVPR 2018), vectorised over the batch.

Each hole pixel of the foreground ``f`` is rebuilt as a softmax-weighted sum of background patches of
``b``: 3x3 patches of the half-resolution features are compared with a softmax over all positions, and
the matching 4x4 patches of the full-resolution features are pasted back with a transposed convolution.
Matching is an inner product with L2-normalised background patches (the foreground is not normalised).

Line references ``l.N`` point to ``inpaint_ops.py`` of the official code, JiahuiYu/generative_inpainting
v1.0.0 (https://github.com/JiahuiYu/generative_inpainting, ``contextual_attention``, l.216-324);
"neuralgym" refers to ``neuralgym/ops/layers.py`` (``resize``) of JiahuiYu/neuralgym.

Grids and sizes used in the shapes below (for the model: H = W = 64, rate = 2, stride = 1):

- ``(H, W)``: the input feature grid; ``(h, w) = (H // rate, W // rate)``: the matching grid;
- queries: every position of the matching grid, ``Lq = h * w``, flattened row-major;
- keys: background positions ``(Hk, Wk) = (ceil(h / stride), ceil(w / stride))``, ``Lk = Hk * Wk``.

Padding follows TensorFlow's 'SAME' rule everywhere the official code uses it (:func:`same_padding`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ContextualAttention",
    "ContextualAttentionResult",
    "align_corners_nearest_indices",
    "attention_flow",
    "attention_heatmap",
    "contextual_attention",
    "downsample_nearest_align_corners",
    "extract_patches",
    "flow_to_color",
    "fuse_scores",
    "fuse_taps",
    "known_patch_mask",
    "masked_softmax",
    "normalize_kernels",
    "paste_back",
    "same_padding",
]

KERNEL_NORM_FLOOR = 1e-4  # [official code] l.282: w / max(||w||, 1e-4)
PASTE_OVERLAP = 4.0  # [official code] l.307: conv_transpose(...) / 4. (2x2 patches cover each pixel)


class ContextualAttentionResult(NamedTuple):
    """What :func:`contextual_attention` returns when attention or flow is asked for.

    output: (B, C, H, W); attention: (B, Lq, Lk) or None; flow: (B, 2, h, w) (dy, dx) offsets or None.
    """

    output: Tensor
    attention: Tensor | None
    flow: Tensor | None


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) of one axis.

    out = ceil(size / stride); total = max((out - 1) * stride + kernel - size, 0); the odd pixel goes
    after [TF conv semantics]. 64 px, kernel 4, stride 2 -> (1, 1); kernel 2, stride 1 -> (0, 1).
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def extract_patches(x: Tensor, kernel: int, stride: int) -> Tensor:
    """All ``kernel x kernel`` patches of x with TF 'SAME' zero padding, in raster order.

    x: (B, C, H, W) -> (B, C * kernel * kernel, L), L = ceil(H / stride) * ceil(W / stride);
    the patch vector is ordered (c, ky, kx) like ``torch.nn.functional.unfold``.
    [official code] l.242-246 (raw 4x4 patches, stride 2) and l.259-262 (3x3 matching kernels).
    """
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    padded = F.pad(x, (left, right, top, bottom))  # zero padding, as tf.extract_image_patches
    return F.unfold(padded, kernel_size=kernel, stride=stride)


def align_corners_nearest_indices(in_size: int, out_size: int) -> Tensor:
    """Source indices of TF ``resize_nearest_neighbor(align_corners=True)`` along one axis.

    [official code] neuralgym ``resize`` calls it with align_corners=True (layers.py l.141-156); the TF
    kernel takes ``min(roundf(float(i) * scale), in - 1)`` with ``scale = (in - 1) / float(out - 1)``
    in float32 and roundf rounding halves away from zero. 64 -> 32 gives 0, 2, ..., 30, 33, 35, ..., 63.
    Returns a long tensor of shape (out_size,).
    """
    if out_size > 1:
        scale = torch.tensor(in_size - 1, dtype=torch.float32) / torch.tensor(out_size - 1, dtype=torch.float32)
    else:
        scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    position = torch.arange(out_size, dtype=torch.float32) * scale  # float32 product, as the TF kernel
    floor = torch.floor(position)
    rounded = floor + (position - floor >= 0.5).to(torch.float32)  # roundf: halves away from zero
    return rounded.to(torch.long).clamp(max=in_size - 1)


def downsample_nearest_align_corners(x: Tensor, out_hw: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize with TF align_corners rounding: (B, C, H, W) -> (B, C, h, w).

    [official code] l.249-252: f, b and the mask are resized by 1/rate this way. ``F.interpolate``
    (mode 'nearest') would take rows 0, 2, 4, ... instead (see :func:`align_corners_nearest_indices`).
    """
    rows = align_corners_nearest_indices(x.shape[-2], out_hw[0]).to(x.device)
    cols = align_corners_nearest_indices(x.shape[-1], out_hw[1]).to(x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def normalize_kernels(patches: Tensor) -> Tensor:
    """Divide each patch vector by max(its L2 norm, 1e-4): (B, D, L) -> (B, D, L).

    [official code] l.282: ``w / max(sqrt(sum(w^2)), 1e-4)`` over C x k x k. Only the background
    kernels are normalised; the foreground is not (so scores are not cosine similarities).
    """
    return patches / patches.norm(dim=1, keepdim=True).clamp(min=KERNEL_NORM_FLOOR)


def known_patch_mask(mask_small: Tensor, ksize: int = 3, stride: int = 1) -> Tensor:
    """1 for keys whose ``ksize x ksize`` window holds no hole pixel, else 0: (B, 1, h, w) -> (B, Lk).

    [official code] l.264-271: mm = (mean of the mask patch == 0), with 'SAME' zero padding, so the
    padding counts as known. The mask is already at the matching resolution.
    """
    windows = extract_patches(mask_small, ksize, stride)  # (B, k*k, Lk)
    return (windows.sum(dim=1) == 0).to(mask_small.dtype)  # mean == 0 <=> sum == 0 for masks in {0, 1}


def fuse_taps(fuse_k: int) -> list[int]:
    """Offsets d of a ``fuse_k``-tap identity convolution with TF 'SAME' padding: 3 -> [-1, 0, 1].

    [official code] l.286: ``conv2d(S, eye(k), 'SAME')`` gives out[q, p] = sum_d S[q + d, p + d].
    """
    first = -((fuse_k - 1) // 2)
    return list(range(first, first + fuse_k))


def _shift_keys(rows: Tensor, shift: int) -> Tensor:
    """out[..., p] = rows[..., p + shift], zero where p + shift is outside: (B, n, Lk) -> (B, n, Lk)."""
    if shift > 0:
        return F.pad(rows[..., shift:], (0, shift))
    if shift < 0:
        return F.pad(rows[..., :shift], (-shift, 0))
    return rows


def _keys_to_column_major(rows: Tensor, key_hw: tuple[int, int]) -> Tensor:
    """Reorder the key axis from row-major to column-major flattening: (B, n, Hk*Wk) -> same shape."""
    return rows.reshape(*rows.shape[:2], *key_hw).transpose(-1, -2).reshape(rows.shape)


def _keys_to_row_major(rows: Tensor, key_hw: tuple[int, int]) -> Tensor:
    """Inverse of :func:`_keys_to_column_major`."""
    return rows.reshape(*rows.shape[:2], key_hw[1], key_hw[0]).transpose(-1, -2).reshape(rows.shape)


def _column_to_row_major(index: Tensor, grid_hw: tuple[int, int]) -> Tensor:
    """Row-major position of column-major position t on a (h, w) grid: (t % h) * w + t // h."""
    return (index % grid_hw[0]) * grid_hw[1] + torch.div(index, grid_hw[0], rounding_mode="floor")


def _fused_score_rows(
    score_rows: Callable[[Tensor], Tensor],
    start: int,
    stop: int,
    query_hw: tuple[int, int],
    key_hw: tuple[int, int],
    fuse_k: int,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """Fused scores of the queries at column-major positions [start, stop).

    ``score_rows(index)`` returns raw scores S[index, :] as (B, m, Lk). Returns (fused (B, n, Lk),
    their row-major query indices (n,)). Two passes of the diagonal sum [official code] l.286-294:
    S1[x, p] = sum_d S[x + d, p + d] over row-major indices (so ``x + d`` wraps across row ends),
    then S2[t, u] = sum_d S1[t + d, u + d] over column-major indices of both grids; terms that fall
    outside [0, L) of the flattened index are the zero padding. Rows are gathered, keys are shifted.
    """
    taps = fuse_taps(fuse_k)
    num_queries = query_hw[0] * query_hw[1]
    # (E,) column-major positions of the S1 rows the second pass reads, E = n + k - 1
    second_rows = torch.arange(start + taps[0], stop + taps[-1], device=device)
    second_inside = (second_rows >= 0) & (second_rows < num_queries)
    first_rows = _column_to_row_major(second_rows.clamp(0, num_queries - 1), query_hw)  # (E,) as row-major
    raw_index = first_rows[:, None] + torch.tensor(taps, device=device)[None, :]  # (E, k) raw rows of pass 1
    raw_inside = second_inside[:, None] & (raw_index >= 0) & (raw_index < num_queries)
    needed, position = torch.unique(raw_index.clamp(0, num_queries - 1), return_inverse=True)
    raw = score_rows(needed)  # (B, m, Lk)
    raw = F.pad(raw, (0, 0, 0, 1))  # row m is zero: the padding terms read it
    position = torch.where(raw_inside, position, needed.numel())
    first = sum(_shift_keys(raw.index_select(1, position[:, a]), d) for a, d in enumerate(taps))  # (B, E, Lk)
    first = _keys_to_column_major(first, key_hw)
    count = stop - start
    second = sum(_shift_keys(first[:, a : a + count], d) for a, d in enumerate(taps))  # (B, n, Lk)
    query_index = _column_to_row_major(torch.arange(start, stop, device=device), query_hw)
    return _keys_to_row_major(second, key_hw), query_index


def fuse_scores(
    scores: Tensor, query_hw: tuple[int, int], key_hw: tuple[int, int], fuse_k: int = 3
) -> Tensor:
    """Fuse raw matching scores so that coherent (shifted-together) matches reinforce each other.

    scores: (B, Lq, Lk) with Lq = prod(query_hw), Lk = prod(key_hw) -> (B, Lq, Lk).
    [official code] l.286-294: view S as an Lq x Lk image, convolve it with a ``fuse_k`` identity kernel
    (S1[q, p] = sum_d S[q + d, p + d], zero padding; in grid terms a horizontal neighbour sum that wraps
    across row ends), transpose both grids (column-major flattening), convolve again (a vertical
    neighbour sum wrapping across column ends) and transpose back.
    """
    if scores.ndim != 3 or scores.shape[1:] != (query_hw[0] * query_hw[1], key_hw[0] * key_hw[1]):
        raise ValueError(
            f"scores must have shape (B, {query_hw[0] * query_hw[1]}, {key_hw[0] * key_hw[1]}) for grids "
            f"{query_hw} and {key_hw}; got {tuple(scores.shape)}"
        )
    num_queries = scores.shape[1]
    fused, query_index = _fused_score_rows(
        lambda index: scores.index_select(1, index), 0, num_queries, query_hw, key_hw, fuse_k, scores.device
    )
    return torch.empty_like(fused).index_copy_(1, query_index, fused)  # back to row-major query order


def masked_softmax(scores: Tensor, known: Tensor, softmax_scale: float = 10.0) -> Tensor:
    """Attention over keys: softmax(scale * scores * mm) * mm, rows not renormalised.

    scores: (B, n, Lk); known (mm): (B, Lk) or (1, Lk) -> (B, n, Lk).
    [official code] l.298-300: masked keys get score 0 (not -inf) before the softmax and probability 0
    after it, so a row sums to less than 1 whenever some key is masked.
    """
    mm = known[:, None, :]  # (B or 1, 1, Lk)
    return torch.softmax(scores * mm * softmax_scale, dim=-1) * mm


def _overlap_add(columns: Tensor, out_hw: tuple[int, int], rate: int) -> Tensor:
    """Transposed convolution as fold: (B, C * 2rate * 2rate, Lq) -> (B, C, H, W), divided by 4.

    Equals TF ``conv2d_transpose(..., strides=rate, 'SAME')`` [official code] l.306-307: place each
    column at (i * rate, j * rate) of the padded canvas, crop the 'SAME' padding of the forward conv.
    """
    kernel = 2 * rate
    top, bottom = same_padding(out_hw[0], kernel, rate)
    left, right = same_padding(out_hw[1], kernel, rate)
    canvas = F.fold(
        columns, output_size=(out_hw[0] + top + bottom, out_hw[1] + left + right), kernel_size=kernel, stride=rate
    )
    return canvas[..., top : top + out_hw[0], left : left + out_hw[1]] / PASTE_OVERLAP


def paste_back(attention: Tensor, raw_patches: Tensor, out_hw: tuple[int, int], rate: int) -> Tensor:
    """Rebuild the features from attention-weighted raw background patches.

    attention: (B, Lq, Lk); raw_patches: (B, C * 2rate * 2rate, Lk) from :func:`extract_patches`
    -> (B, C, H, W). [official code] l.306-307: conv_transpose2d(attention as Lk channels on the h x w
    grid, raw patches as weights, stride rate, 'SAME') / 4.
    """
    columns = torch.bmm(attention, raw_patches.transpose(1, 2))  # (B, Lq, C*k*k)
    return _overlap_add(columns.transpose(1, 2), out_hw, rate)


def _check_inputs(
    f: Tensor, b: Tensor, mask: Tensor | None, ksize: int, stride: int, rate: int, fuse_k: int,
    chunk_size: int | None,
) -> None:
    if f.ndim != 4 or b.ndim != 4:
        raise ValueError(f"f and b must be 4-D (B, C, H, W); got f {tuple(f.shape)} and b {tuple(b.shape)}")
    if f.shape != b.shape:
        raise ValueError(f"f and b must have the same shape; got f {tuple(f.shape)} and b {tuple(b.shape)}")
    for name, value in (("ksize", ksize), ("stride", stride), ("rate", rate), ("fuse_k", fuse_k)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be None or a positive int; got {chunk_size!r}")
    height, width = f.shape[-2:]
    if height % rate or width % rate:
        raise ValueError(f"feature size {height}x{width} must be divisible by rate={rate}")
    if mask is None:
        return
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != f.shape[-2:] or mask.shape[0] not in (1, f.shape[0]):
        raise ValueError(
            f"mask must have shape (B, 1, H, W) or (1, 1, H, W) = ({f.shape[0]} or 1, 1, {height}, {width}); "
            f"got {tuple(mask.shape)}"
        )
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("mask values must be in {0, 1} (1 = hole)")


def contextual_attention(
    f: Tensor,
    b: Tensor,
    mask: Tensor | None = None,
    *,
    ksize: int = 3,
    stride: int = 1,
    rate: int = 2,
    fuse_k: int = 3,
    softmax_scale: float = 10.0,
    fuse: bool = True,
    chunk_size: int | None = None,
    return_flow: bool = False,
    return_attention: bool = False,
    official_mask_from_first_sample: bool = False,
) -> Tensor | ContextualAttentionResult:
    """Contextual attention of DeepFill v1 [official code] l.216-324, batched.

    f, b: (B, C, H, W) foreground / background features (the model uses self-attention, f is b);
    mask: (B, 1, H, W) or (1, 1, H, W) at feature resolution, 1 = hole, or None (every key usable).
    Returns y: (B, C, H, W); with ``return_attention`` / ``return_flow`` a
    :class:`ContextualAttentionResult` (y, attention (B, Lq, Lk), flow (B, 2, h, w) argmax offsets).

    Each sample uses its own mask by default. ``official_mask_from_first_sample=True`` reproduces the
    official layer, which takes one (1, H, W, 1) mask for the whole batch [official code] l.264-271.
    ``chunk_size`` processes that many query positions at a time; the result is the same and the
    score matrices held at once shrink from B * Lq * Lk to about 3 * B * chunk_size * Lk (the fuse
    step also reads the raw scores of each chunk's neighbours).
    """
    _check_inputs(f, b, mask, ksize, stride, rate, fuse_k, chunk_size)
    batch, _, height, width = f.shape
    query_hw = (height // rate, width // rate)  # (h, w)
    key_hw = (math.ceil(query_hw[0] / stride), math.ceil(query_hw[1] / stride))  # (Hk, Wk)
    num_queries, num_keys = query_hw[0] * query_hw[1], key_hw[0] * key_hw[1]

    raw_patches = extract_patches(b, 2 * rate, rate * stride)  # (B, C*2r*2r, Lk)  l.242-246
    f_small = downsample_nearest_align_corners(f, query_hw)  # (B, C, h, w)  l.249
    b_small = downsample_nearest_align_corners(b, query_hw)  # (B, C, h, w)  l.250
    kernels = normalize_kernels(extract_patches(b_small, ksize, stride))  # (B, C*k*k, Lk)  l.259-262, 282
    # conv2d(f_small, kernels, 'SAME') as a matrix product: query windows (B, Lq, C*k*k)  l.283
    query_windows = extract_patches(f_small, ksize, 1).transpose(1, 2).contiguous()

    def score_rows(index: Tensor) -> Tensor:
        """Raw scores S[index, :] = <query window, normalised kernel>: (m,) -> (B, m, Lk)."""
        return torch.bmm(query_windows.index_select(1, index), kernels)

    if mask is None:
        known = f.new_ones(1, num_keys)  # (1, Lk)  l.264-265: no mask -> mm = 1
    else:
        chosen = mask[:1] if official_mask_from_first_sample else mask
        known = known_patch_mask(downsample_nearest_align_corners(chosen.to(f.dtype), query_hw), ksize, stride)

    chunk = num_queries if chunk_size is None else chunk_size
    patch_rows = raw_patches.transpose(1, 2)  # (B, Lk, C*2r*2r)
    columns = f.new_empty(batch, num_queries, patch_rows.shape[2])  # (B, Lq, C*2r*2r)
    attention = f.new_empty(batch, num_queries, num_keys) if return_attention else None
    best_key = torch.empty(batch, num_queries, dtype=torch.long, device=f.device) if return_flow else None
    for start in range(0, num_queries, chunk):  # chunks of query positions
        stop = min(start + chunk, num_queries)
        if fuse:  # chunks run in column-major order, which the second fuse pass reads contiguously
            scores, query_index = _fused_score_rows(score_rows, start, stop, query_hw, key_hw, fuse_k, f.device)
        else:
            query_index = torch.arange(start, stop, device=f.device)  # (n,)
            scores = score_rows(query_index)  # (B, n, Lk)
        weights = masked_softmax(scores, known, softmax_scale)  # (B, n, Lk)  l.298-300
        columns[:, query_index] = torch.bmm(weights, patch_rows)  # (B, n, C*2r*2r)
        if attention is not None:
            attention[:, query_index] = weights
        if best_key is not None:
            best_key[:, query_index] = weights.argmax(dim=-1)  # l.302
    output = _overlap_add(columns.transpose(1, 2), (height, width), rate)  # (B, C, H, W)  l.306-307

    if not (return_flow or return_attention):
        return output
    flow = None
    if best_key is not None:
        flow = attention_flow(best_key, *query_hw, key_hw=key_hw, key_stride=stride)
    return ContextualAttentionResult(output, attention, flow)


class ContextualAttention(nn.Module):
    """Module wrapper of :func:`contextual_attention` holding its hyper-parameters (no weights)."""

    def __init__(
        self,
        ksize: int = 3,
        stride: int = 1,
        rate: int = 2,
        fuse_k: int = 3,
        softmax_scale: float = 10.0,
        fuse: bool = True,
        chunk_size: int | None = None,
        official_mask_from_first_sample: bool = False,
    ) -> None:
        super().__init__()
        self.ksize = ksize
        self.stride = stride
        self.rate = rate
        self.fuse_k = fuse_k
        self.softmax_scale = softmax_scale
        self.fuse = fuse
        self.chunk_size = chunk_size
        self.official_mask_from_first_sample = official_mask_from_first_sample

    def forward(
        self,
        f: Tensor,
        b: Tensor,
        mask: Tensor | None = None,
        return_flow: bool = False,
        return_attention: bool = False,
    ) -> Tensor | ContextualAttentionResult:
        """f, b: (B, C, H, W); mask: (B or 1, 1, H, W) -> (B, C, H, W) (see :func:`contextual_attention`)."""
        return contextual_attention(
            f, b, mask, ksize=self.ksize, stride=self.stride, rate=self.rate, fuse_k=self.fuse_k,
            softmax_scale=self.softmax_scale, fuse=self.fuse, chunk_size=self.chunk_size,
            return_flow=return_flow, return_attention=return_attention,
            official_mask_from_first_sample=self.official_mask_from_first_sample,
        )

    def extra_repr(self) -> str:
        return (
            f"ksize={self.ksize}, stride={self.stride}, rate={self.rate}, fuse_k={self.fuse_k}, "
            f"softmax_scale={self.softmax_scale}, fuse={self.fuse}, chunk_size={self.chunk_size}, "
            f"official_mask_from_first_sample={self.official_mask_from_first_sample}"
        )


def attention_flow(
    attn_or_argmax: Tensor, H: int, W: int, *, key_hw: tuple[int, int] | None = None, key_stride: int = 1
) -> Tensor:
    """Offset from each query to its best-matching key, as a (B, 2, H, W) float map of (dy, dx).

    attn_or_argmax: attention (B, Lq, Lk) (float; argmax taken over keys) or argmax key indices
    (B, Lq) / (B, H, W) (integer). (H, W) is the query (matching) grid; keys lie on ``key_hw``
    (default: the query grid subsampled by ``key_stride``) at positions (ky, kx) * key_stride.
    [official code] l.302-311: offset = (argmax // w, argmax % w) - (i, j); a query whose keys are all
    masked has an all-zero row and points at key 0, as in the official code.
    """
    if key_hw is None:
        key_hw = (math.ceil(H / key_stride), math.ceil(W / key_stride))
    if attn_or_argmax.is_floating_point():
        if attn_or_argmax.ndim != 3 or attn_or_argmax.shape[1:] != (H * W, key_hw[0] * key_hw[1]):
            raise ValueError(
                f"attention must have shape (B, {H * W}, {key_hw[0] * key_hw[1]}); got {tuple(attn_or_argmax.shape)}"
            )
        best_key = attn_or_argmax.argmax(dim=-1)  # (B, Lq)
    else:
        if attn_or_argmax.ndim not in (2, 3) or attn_or_argmax[0].numel() != H * W:
            raise ValueError(f"argmax must have shape (B, {H * W}) or (B, {H}, {W}); got {tuple(attn_or_argmax.shape)}")
        best_key = attn_or_argmax.reshape(attn_or_argmax.shape[0], H * W)
    key_row = torch.div(best_key, key_hw[1], rounding_mode="floor") * key_stride  # (B, Lq)
    key_col = (best_key % key_hw[1]) * key_stride
    query = torch.arange(H * W, device=best_key.device)
    dy = (key_row - torch.div(query, W, rounding_mode="floor")).reshape(-1, H, W)
    dx = (key_col - query % W).reshape(-1, H, W)
    return torch.stack([dy, dx], dim=1).to(torch.float32)  # (B, 2, H, W)


def _middlebury_color_wheel() -> Tensor:
    """The 55-colour wheel of the Middlebury flow benchmark (Baker et al. 2011): (55, 3) in [0, 1].

    Six ramps between the primaries/secondaries with 15, 6, 4, 11, 13, 6 steps (red -> yellow ->
    green -> cyan -> blue -> magenta -> red), each step quantised to floor(255 * i / n) / 255.
    """
    corners = [(1.0, 0.0, 0.0), (1.0, 1.0, 0.0), (0.0, 1.0, 0.0), (0.0, 1.0, 1.0), (0.0, 0.0, 1.0), (1.0, 0.0, 1.0)]
    steps = (15, 6, 4, 11, 13, 6)
    ramps = []
    for segment, count in enumerate(steps):  # six ramps of the wheel
        start = torch.tensor(corners[segment])
        end = torch.tensor(corners[(segment + 1) % len(corners)])
        fraction = torch.floor(255.0 * torch.arange(count, dtype=torch.float32) / count) / 255.0  # (count,)
        ramps.append(start + fraction[:, None] * (end - start))
    return torch.cat(ramps)  # (55, 3)


def flow_to_color(flow: Tensor, max_radius: float | None = None) -> Tensor:
    """Colour-code a (dy, dx) offset map: (B, 2, H, W) -> (B, 3, H, W) in [0, 1].

    Middlebury convention [our reconstruction, after Baker et al.]: hue = direction of (dx, dy) with
    y pointing down, saturation = length / max_radius (per sample maximum by default); lengths above
    the maximum are drawn darker (x 0.75). Zero offset is white. The official ``flow_to_image`` feeds
    (dy, dx) where Middlebury expects (dx, dy) and normalises each sample by the running maximum over
    the batch so far [official code]; our pictures therefore differ from the official flow images
    by a reflection of the hue circle.
    """
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must have shape (B, 2, H, W); got {tuple(flow.shape)}")
    flow = flow.to(torch.float32)
    v, u = flow[:, 0], flow[:, 1]  # v = dy (down), u = dx (right): (B, H, W)
    radius = torch.sqrt(u * u + v * v)
    tiny = torch.finfo(torch.float32).eps
    if max_radius is None:
        scale = radius.flatten(1).amax(dim=1).clamp(min=tiny)[:, None, None]  # per-sample maximum
    else:
        scale = torch.tensor(max(max_radius, tiny), dtype=torch.float32, device=flow.device)
    radius = radius / scale
    wheel = _middlebury_color_wheel().to(flow.device)  # (N, 3)
    count = wheel.shape[0]
    angle = torch.atan2(-v, -u) / math.pi  # in [-1, 1]
    position = (angle + 1.0) / 2.0 * (count - 1)  # in [0, N - 1]
    lower = torch.floor(position).to(torch.long).clamp(0, count - 1)
    upper = (lower + 1) % count
    blend = (position - lower.to(torch.float32))[..., None]  # (B, H, W, 1)
    color = (1.0 - blend) * wheel[lower] + blend * wheel[upper]  # (B, H, W, 3)
    inside = (radius <= 1.0)[..., None]
    saturated = 1.0 - radius[..., None] * (1.0 - color)  # fade to white towards zero motion
    color = torch.where(inside, saturated, color * 0.75)
    return color.permute(0, 3, 1, 2).clamp(0.0, 1.0)  # (B, 3, H, W)


def attention_heatmap(
    attn: Tensor, query_yx: tuple[int, int], query_hw: tuple[int, int], key_hw: tuple[int, int] | None = None
) -> Tensor:
    """Attention of one query position over the key grid: (B, Lq, Lk) -> (B, Hk, Wk).

    query_yx: (row, col) on the query (matching) grid ``query_hw`` (full-resolution pixel // rate);
    key_hw defaults to query_hw (stride 1). Masked keys show 0.
    """
    key_hw = query_hw if key_hw is None else key_hw
    if attn.ndim != 3 or attn.shape[1:] != (query_hw[0] * query_hw[1], key_hw[0] * key_hw[1]):
        raise ValueError(
            f"attn must have shape (B, {query_hw[0] * query_hw[1]}, {key_hw[0] * key_hw[1]}); got {tuple(attn.shape)}"
        )
    row, col = query_yx
    if not (0 <= row < query_hw[0] and 0 <= col < query_hw[1]):
        raise ValueError(f"query_yx {query_yx} is outside the query grid {query_hw}")
    return attn[:, row * query_hw[1] + col].reshape(attn.shape[0], *key_hw)
