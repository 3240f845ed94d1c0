"""Spatial attention of the LBP-guided inpainting network (Wu et al., TMM 2021), batched and any size.

Official code: HighwayWu/ImageInpainting ``attention.py::MyAttentionFunction``, applied in
``networks.py::ImageGenerator`` to ``u = ReLU(cat(up4, dn3))`` at 32x32 with ``generated = u[:, :256]``
(decoder features) and ``known = u[:, 256:]`` (encoder skip features). With 1x1 patches, for every hole
position i (mask nearest-downsampled to the feature size) [official code]:

- hole -> known: ``s0(i, j) = cos(g_i, k_j)`` over known positions j; top-T sources ``a_1..a_T``.
- hole -> hole: ``s1(i, i') = cos(g_i, g_i')`` over hole positions i' *including i itself* (so the top-1 is
  i with cosine 1); top-T sources ``b_1..b_T``.
- fusion weights are 2T *global* scalars, not per pixel:
  ``w = softmax([mean_i s0_top1, ..., mean_i s0_topT, mean_i s1_top1, ..., mean_i s1_topT])``.
- ``shifted(i) = sum_t w_t known(a_t) + sum_t w_{T+t} generated(b_t)`` at hole positions, 0 at known positions.
- output ``cat(generated, known, shifted)``, (B, 3C, H, W).

The official code hard-codes batch 1, T = k = 2 and a 32x32 grid. Here the layer is batched and works at any
size; the fusion scalars are computed per sample (means over that sample's hole positions) [our reconstruction],
which equals the official layer for batch 1. Cosines divide by ``(||g|| + eps)(||k|| + eps)``: the official
code divides by the bare norms and gives NaN when a ReLU feature vector is all zero [our reconstruction].

Backward. ``backward="autograd"`` differentiates everything (the gathered values, the cosines, top-T values and
the fusion weights) [our reconstruction]. ``backward="official"`` reproduces the Shift-Net-style custom backward
[official code]: the fusion weights are Python floats, no gradient flows through cosines, top-T or weights,
``grad generated = grad of the first C channels`` and
``grad known = grad of the middle C channels + sum_{s=1..2T} Ind_s^T grad(shifted)``, unweighted, where
``Ind_s`` is the (N x N) 0/1 matrix with a 1 at (hole query i, its s-th source). Reading the official code
(``ctx.ind[i]`` for i >= k holds (hole query, selected *hole* position) pairs, and the loop in ``backward`` adds
all 2k of them to the gradient of its second input), the hole -> hole selections send their gradient into the
``known`` (encoder) tensor at the selected *hole* positions, never into ``generated``, whose values were copied.
So the hole -> hole selections do route their gradient into the ``known`` tensor, but the positions receiving
that gradient are hole positions.
"""

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SpatialAttentionBackward = Literal["autograd", "official"]


@dataclass(frozen=True)
class _Selection:
    """Top-T sources of the hole positions of each sample, padded to the largest hole count Q of the batch."""

    query_positions: Tensor  # (B,Q) flat positions of the hole queries (padding slots hold known positions)
    query_valid: Tensor  # (B,Q) bool, False for padding slots
    known_cosines: Tensor  # (B,Q,T) s0 of the T best known sources, best first
    known_sources: Tensor  # (B,Q,T) flat positions of those sources
    hole_cosines: Tensor | None  # (B,Q,T) s1 of the T best hole sources (None when within_hole=False)
    hole_sources: Tensor | None  # (B,Q,T)
    fusion_weights: Tensor  # (B,2T) [known rank 1..T, hole rank 1..T], or (B,T) when within_hole=False


@dataclass(frozen=True)
class AttentionSources:
    """Where chosen hole positions copy their features from (for pictures of the attention).

    Positions are (row, col) on the feature grid; ranks are best first.
    """

    known_sources: Tensor  # (B,Q,T,2) long (row, col) of the top-T known sources
    known_cosines: Tensor  # (B,Q,T) their cosines s0
    hole_sources: Tensor | None  # (B,Q,T,2) long top-T hole sources (rank 1 is the query itself); None if disabled
    hole_cosines: Tensor | None  # (B,Q,T) their cosines s1
    fusion_weights: Tensor  # (B,2T) or (B,T): the global weights of [known rank 1..T, hole rank 1..T]


def _validate_and_find_holes(
    generated: Tensor,
    known: Tensor,
    mask: Tensor,
    top_t: int,
    within_hole: bool,
    eps: float,
    query_chunk_size: int,
) -> Tensor:
    """Check the inputs and return the hole positions at the feature size, (B, H*W) bool."""
    if generated.ndim != 4:
        raise ValueError(f"generated must have shape (B, C, H, W), got {tuple(generated.shape)}")
    if known.shape != generated.shape:
        raise ValueError(f"known must have the shape of generated {tuple(generated.shape)}, got {tuple(known.shape)}")
    if not generated.is_floating_point() or known.dtype != generated.dtype:
        raise ValueError(f"generated and known must share one float dtype, got {generated.dtype} and {known.dtype}")
    if known.device != generated.device or mask.device != generated.device:
        raise ValueError("generated, known and mask must be on the same device")
    batch, _, height, width = generated.shape
    if mask.ndim != 4 or mask.shape[0] != batch or mask.shape[1] != 1:
        raise ValueError(f"mask must have shape ({batch}, 1, H', W'), got {tuple(mask.shape)}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("mask values must be 0 (known) or 1 (hole)")
    if isinstance(top_t, bool) or not isinstance(top_t, int) or top_t < 1:
        raise ValueError(f"top_t must be a positive int, got {top_t!r}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    if isinstance(query_chunk_size, bool) or not isinstance(query_chunk_size, int) or query_chunk_size < 1:
        raise ValueError(f"query_chunk_size must be a positive int, got {query_chunk_size!r}")
    # flag = F.interpolate(mask, (32, 32)) (nearest) [official code]; here the feature size
    flag = F.interpolate(mask.float(), size=(height, width), mode="nearest")  # (B,1,H,W)
    hole = flag.flatten(1) == 1  # (B,N)
    hole_counts = hole.sum(1).tolist()
    for sample, hole_count in enumerate(hole_counts):
        known_count = height * width - hole_count
        if hole_count == 0:
            continue  # nothing to fill: shifted is 0 for this sample
        if known_count < top_t:
            raise ValueError(
                f"sample {sample} has {known_count} known positions at {height}x{width} after downsampling the "
                f"mask, fewer than top_t={top_t}"
            )
        if within_hole and hole_count < top_t:
            raise ValueError(
                f"sample {sample} has {hole_count} hole positions at {height}x{width} after downsampling the "
                f"mask, fewer than top_t={top_t} (hole->hole attention); lower top_t or use within_hole=False"
            )
    return hole


def _compact_positions(flags: Tensor) -> tuple[Tensor, Tensor]:
    """Flagged positions of each sample first, padded to the largest count M of the batch.

    Args:
        flags: (B, N) bool.
    Returns:
        positions (B, M) long (a flagged position's index order is kept; padding slots hold unflagged positions)
        and valid (B, M) bool.
    """
    counts = flags.sum(1, keepdim=True)  # (B,1)
    width = int(counts.max())
    order = torch.argsort((~flags).to(torch.uint8), dim=1, stable=True)  # (B,N) flagged first
    valid = torch.arange(width, device=flags.device)[None, :] < counts  # (B,M)
    return order[:, :width], valid


def _gather_rows(flat: Tensor, indices: Tensor) -> Tensor:
    """flat (B, N, C), indices (B, ...) -> (B, ..., C) with out[b, ...] = flat[b, indices[b, ...]]."""
    batch, channels = flat.shape[0], flat.shape[2]
    expanded = indices.reshape(batch, -1, 1).expand(-1, -1, channels)
    return torch.gather(flat, 1, expanded).view(*indices.shape, channels)


def _unit_vectors(features: Tensor, eps: float) -> Tensor:
    """(B, C, H, W) -> (B, N, C) feature vectors divided by (their norm + eps)."""
    flat = features.flatten(2).transpose(1, 2)  # (B,N,C)
    return flat / (torch.linalg.vector_norm(flat, dim=2, keepdim=True) + eps)


def _top_cosines(
    query_units: Tensor,
    source_units: Tensor,
    source_positions: Tensor,
    source_valid: Tensor,
    top_t: int,
    query_chunk_size: int,
) -> tuple[Tensor, Tensor]:
    """Top-T cosines of every query over the valid sources, in query chunks (memory B x chunk x S).

    Args:
        query_units: (B, Q, C) unit vectors; source_units: (B, S, C) unit vectors.
        source_positions: (B, S) flat positions of the sources; source_valid: (B, S) bool.
    Returns:
        values (B, Q, T) and flat source positions (B, Q, T), best first.
    """
    values, slots = [], []
    for start in range(0, query_units.shape[1], query_chunk_size):
        cosines = torch.einsum("bqc,bsc->bqs", query_units[:, start : start + query_chunk_size], source_units)
        cosines.masked_fill_(~source_valid[:, None, :], float("-inf"))  # (B,chunk,S)
        chunk_values, chunk_slots = torch.topk(cosines, top_t, dim=2)  # torch.topk(cosine, k, dim=2) [official]
        values.append(chunk_values)
        slots.append(chunk_slots)
    slots = torch.cat(slots, 1)  # (B,Q,T) indices into the source list
    positions = torch.gather(source_positions, 1, slots.flatten(1)).view(slots.shape)  # (B,Q,T)
    return torch.cat(values, 1), positions


def _select(
    generated: Tensor, known: Tensor, hole: Tensor, top_t: int, within_hole: bool, eps: float, query_chunk_size: int
) -> _Selection:
    """Top-T hole->known (and hole->hole) sources of every hole position and the fusion weights."""
    query_positions, query_valid = _compact_positions(hole)  # (B,Q): only hole positions are queries
    known_positions, known_valid = _compact_positions(~hole)  # (B,K)
    generated_units = _unit_vectors(generated, eps)  # (B,N,C)
    query_units = _gather_rows(generated_units, query_positions)  # (B,Q,C) g_i, i hole
    known_units = _gather_rows(_unit_vectors(known, eps), known_positions)  # (B,K,C) k_j, j known
    # s0(i, j) = <g_i, k_j> / (|g_i| |k_j|), j known [official code]
    known_cosines, known_sources = _top_cosines(
        query_units, known_units, known_positions, known_valid, top_t, query_chunk_size
    )
    rank_cosines = [known_cosines]
    hole_cosines = hole_sources = None
    if within_hole:
        # s1(i, i') = cos(g_i, g_i'), i' hole, i itself included [official code]
        hole_cosines, hole_sources = _top_cosines(
            query_units, query_units, query_positions, query_valid, top_t, query_chunk_size
        )
        rank_cosines.append(hole_cosines)
    stacked = torch.cat(rank_cosines, dim=2)  # (B,Q,R), R = 2T or T
    hole_count = query_valid.sum(1, keepdim=True).clamp(min=1)  # (B,1)
    rank_means = torch.where(query_valid[:, :, None], stacked, 0).sum(1) / hole_count  # (B,R) mean over holes
    # w = exp(m) / sum(exp(m)) [official code], per sample; written out (max-shifted) since torch.softmax's
    # parallel kernel costs ~20 ms per call on a loaded 2-core CPU, even for this (B, 2T) tensor
    exps = torch.exp(rank_means - rank_means.amax(dim=1, keepdim=True))  # (B,R)
    fusion_weights = exps / exps.sum(dim=1, keepdim=True)  # (B,R)
    return _Selection(
        query_positions, query_valid, known_cosines, known_sources, hole_cosines, hole_sources, fusion_weights
    )


def _fuse(generated: Tensor, known: Tensor, selection: _Selection) -> Tensor:
    """shifted (B, C, H, W): weighted copies of the selected sources at hole positions, 0 elsewhere."""
    batch, channels, height, width = generated.shape
    top_t = selection.known_sources.shape[2]
    weights = selection.fusion_weights.to(generated.dtype)  # (B,R)
    known_flat = known.flatten(2).transpose(1, 2)  # (B,N,C)
    # sum_t w_t known(a_t) [official code]
    fused = torch.einsum("bqtc,bt->bqc", _gather_rows(known_flat, selection.known_sources), weights[:, :top_t])
    if selection.hole_sources is not None:
        generated_flat = generated.flatten(2).transpose(1, 2)  # (B,N,C)
        # + sum_t w_{T+t} generated(b_t) [official code]
        fused = fused + torch.einsum(
            "bqtc,bt->bqc", _gather_rows(generated_flat, selection.hole_sources), weights[:, top_t:]
        )
    fused = torch.where(selection.query_valid[:, :, None], fused, 0)  # (B,Q,C); padding slots write 0
    destinations = selection.query_positions[:, :, None].expand(-1, -1, channels)  # (B,Q,C), distinct positions
    shifted = torch.zeros(batch, height * width, channels, dtype=generated.dtype, device=generated.device)
    shifted = shifted.scatter(1, destinations, fused)  # (B,N,C), 0 at known positions
    return shifted.transpose(1, 2).reshape(batch, channels, height, width)


class _OfficialShiftGradient(torch.autograd.Function):
    """cat(generated, known, shifted) with the official Shift-Net-style backward [official code]."""

    @staticmethod
    def forward(ctx, generated: Tensor, known: Tensor, shifted: Tensor, selection: _Selection):
        sources = [selection.known_sources]
        if selection.hole_sources is not None:
            sources.append(selection.hole_sources)
        # (B,Q,S): the S = 2T (or T) selected flat positions of each hole query
        ctx.save_for_backward(selection.query_positions, selection.query_valid, torch.cat(sources, 2))
        return torch.cat([generated, known, shifted], 1)  # (B,3C,H,W)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        query_positions, query_valid, source_positions = ctx.saved_tensors
        batch, three_channels, height, width = grad_output.shape
        channels = three_channels // 3
        num_sources = source_positions.shape[2]
        grad_generated = grad_output[:, :channels]  # grad of the first C channels only
        grad_known = grad_output[:, channels : 2 * channels].flatten(2).clone()  # (B,C,N) middle C channels
        grad_shifted = grad_output[:, 2 * channels :].flatten(2)  # (B,C,N)
        # Ind_s has rows only at hole queries: take grad(shifted) there, (B,C,Q), 0 in padding slots
        query_grad = torch.gather(grad_shifted, 2, query_positions[:, None, :].expand(-1, channels, -1))
        query_grad = query_grad * query_valid[:, None, :].to(grad_output.dtype)
        # grad known += sum_s Ind_s^T grad(shifted): position j receives grad(shifted)(i) for every s with src_s(i)=j
        destinations = source_positions.permute(0, 2, 1).reshape(batch, 1, -1)  # (B,1,S*Q), s-major
        grad_known.scatter_add_(2, destinations.expand(-1, channels, -1), query_grad.repeat(1, 1, num_sources))
        return grad_generated, grad_known.view(batch, channels, height, width), None, None


def lbp_spatial_attention(
    generated: Tensor,
    known: Tensor,
    mask: Tensor,
    top_t: int = 2,
    within_hole: bool = True,
    backward: SpatialAttentionBackward = "autograd",
    eps: float = 1e-8,
    query_chunk_size: int = 1024,
) -> Tensor:
    """The LBP paper's spatial attention: hole positions copy top-T known and top-T hole features.

    Only hole positions are queries (padded to the batch's largest hole count), so the cost is about
    B x holes x (H*W) x C.

    Args:
        generated: (B, C, H, W) decoder features (queries, and values of hole -> hole attention).
        known: (B, C, H, W) encoder skip features (values of hole -> known attention).
        mask: (B, 1, H', W') in {0, 1}, 1 = hole; nearest-downsampled to (H, W) as in the official code.
        top_t: T, sources per attention kind (official k = 2).
        within_hole: keep the hole -> hole half (False = ablation with T known sources only).
        backward: "autograd" (everything differentiable) or "official" (custom Shift-Net-style backward).
        eps: added to every feature norm in the cosines (the official code has none and can give NaN).
        query_chunk_size: hole queries per similarity block; peak memory is about B x chunk x H*W values.
    Returns:
        (B, 3C, H, W) ``cat(generated, known, shifted)``.
    Raises:
        ValueError: bad shapes/dtypes, a mask not in {0, 1}, or a sample with holes that has fewer than
            ``top_t`` known positions (or, with ``within_hole``, fewer than ``top_t`` hole positions) at (H, W).
            A sample without holes is allowed: its ``shifted`` is 0.
    """
    if backward not in ("autograd", "official"):
        raise ValueError(f"backward must be 'autograd' or 'official', got {backward!r}")
    hole = _validate_and_find_holes(generated, known, mask, top_t, within_hole, eps, query_chunk_size)
    if not bool(hole.any()):
        return torch.cat([generated, known, torch.zeros_like(generated)], 1)  # nothing to fill
    if backward == "autograd":
        selection = _select(generated, known, hole, top_t, within_hole, eps, query_chunk_size)
        return torch.cat([generated, known, _fuse(generated, known, selection)], 1)
    with torch.no_grad():  # weights are Python floats and selections are constants [official code]
        selection = _select(generated, known, hole, top_t, within_hole, eps, query_chunk_size)
        shifted = _fuse(generated, known, selection)
    return _OfficialShiftGradient.apply(generated, known, shifted, selection)


def lbp_attention_sources(
    generated: Tensor,
    known: Tensor,
    mask: Tensor,
    queries: Tensor,
    top_t: int = 2,
    within_hole: bool = True,
    eps: float = 1e-8,
    query_chunk_size: int = 1024,
) -> AttentionSources:
    """The top-T sources, cosines and fusion weights of chosen hole positions, without gradients.

    Args:
        generated, known, mask, top_t, within_hole, eps, query_chunk_size: as in :func:`lbp_spatial_attention`.
        queries: (Q, 2) long (row, col) positions on the (H, W) feature grid; each must be a hole in every sample.
    Returns:
        :class:`AttentionSources` with (B, Q, T, ...) fields.
    """
    hole = _validate_and_find_holes(generated, known, mask, top_t, within_hole, eps, query_chunk_size)
    height, width = generated.shape[-2:]
    if queries.ndim != 2 or queries.shape[1] != 2 or queries.is_floating_point():
        raise ValueError(f"queries must be an integer tensor of shape (Q, 2) = (row, col), got {tuple(queries.shape)}")
    rows, cols = queries[:, 0].long().to(hole.device), queries[:, 1].long().to(hole.device)
    if bool(((rows < 0) | (rows >= height) | (cols < 0) | (cols >= width)).any()):
        raise ValueError(f"queries must lie on the {height}x{width} feature grid")
    flat_queries = rows * width + cols  # (Q,)
    if not bool(hole[:, flat_queries].all()):
        raise ValueError("every query must be a hole position (after downsampling the mask) in every sample")
    with torch.no_grad():
        selection = _select(generated, known, hole, top_t, within_hole, eps, query_chunk_size)
    slot_of_position = torch.full_like(hole, -1, dtype=torch.long)  # (B,N): slot of each hole query position
    slots = torch.arange(selection.query_positions.shape[1], device=hole.device).expand_as(selection.query_positions)
    slot_of_position.scatter_(1, selection.query_positions, slots)
    query_slots = slot_of_position[:, flat_queries]  # (B,Q)

    def at_queries(per_slot: Tensor) -> Tensor:  # (B,slots,T) -> (B,Q,T)
        return torch.gather(per_slot, 1, query_slots[:, :, None].expand(-1, -1, per_slot.shape[2]))

    def as_row_col(flat_positions: Tensor) -> Tensor:  # (B,Q,T) -> (B,Q,T,2)
        return torch.stack([flat_positions // width, flat_positions % width], dim=3)

    hole_sources = hole_cosines = None
    if selection.hole_sources is not None:
        hole_sources = as_row_col(at_queries(selection.hole_sources))
        hole_cosines = at_queries(selection.hole_cosines)
    return AttentionSources(
        known_sources=as_row_col(at_queries(selection.known_sources)),
        known_cosines=at_queries(selection.known_cosines),
        hole_sources=hole_sources,
        hole_cosines=hole_cosines,
        fusion_weights=selection.fusion_weights,
    )


class LBPSpatialAttention(nn.Module):
    """Module form of :func:`lbp_spatial_attention` (no parameters): (B,C,H,W) x2 + mask -> (B,3C,H,W)."""

    def __init__(
        self,
        top_t: int = 2,
        within_hole: bool = True,
        backward: SpatialAttentionBackward = "autograd",
        eps: float = 1e-8,
        query_chunk_size: int = 1024,
    ) -> None:
        super().__init__()
        self.top_t = top_t
        self.within_hole = within_hole
        self.backward_rule = backward
        self.eps = eps
        self.query_chunk_size = query_chunk_size

    def forward(self, generated: Tensor, known: Tensor, mask: Tensor) -> Tensor:
        return lbp_spatial_attention(
            generated,
            known,
            mask,
            top_t=self.top_t,
            within_hole=self.within_hole,
            backward=self.backward_rule,
            eps=self.eps,
            query_chunk_size=self.query_chunk_size,
        )

    def extra_repr(self) -> str:
        return (
            f"top_t={self.top_t}, within_hole={self.within_hole}, backward={self.backward_rule!r}, "
            f"eps={self.eps}, query_chunk_size={self.query_chunk_size}"
        )
