"""Coherent Semantic Attention (CSA), Liu et al., ICCV 2019, vectorised over the batch.

CSA fills each hole position of a feature map with the known 1x1 feature patch that matches it best,
then, walking over the hole positions in raster order, mixes every generated patch with the previous
generated one, so that neighbouring hole patches stay coherent.

Notation (``N = H*W``, ``q`` / ``p`` raster positions, ``K`` the known positions):

- search   [official code ``NonparametricShift``, ``MaxCoord``]:
  ``s[j, q] = <F_q, F_j / (||F_j|| + 1e-8)>`` for known ``j``; ``idx[q] = argmax_j s[j, q]``,
  ``vmax[q] = max_j s[j, q]``, ``match[q] = F_{idx[q]}`` (raw, unnormalised);
- generate [official code ``CSAFunction.forward``], hole positions ``h_0 < h_1 < ...`` in raster order:
  ``g_0 = match[h_0]``; for ``t >= 1``: ``D_ad = <g_{t-1}, u_t / (||u_t|| + 1e-8)>`` with ``u_t = F_{h_t}``,
  ``D_max = vmax[h_t]``, ``a = D_ad / (D_ad + D_max)``, ``c = D_max / (D_ad + D_max)``,
  ``g_t = a g_{t-1} + c match[h_t]``;
- output: ``g_t`` at hole position ``h_t`` and ``match[q]`` at known positions (no residual).

Gradients (``gradient=`` option):

- ``"autograd"`` (default, the paper's intent) [our reconstruction]: the true gradient of the vectorised
  computation above. The argmax is piecewise constant; everything else (scores, ``vmax``, the
  normalisations, the recurrence coefficients) is differentiated.
- ``"official"`` [official code ``CSAFunction.backward``]: the forward output has no autograd link to
  the input; the backward returns ``grad_in = g + W^T g`` where ``W[q, p]`` is the attention weight of
  source ``p`` in output ``q``, **truncated towards zero** (the official code stores ``W`` in a
  LongTensor), so fractional coherent weights vanish and only integer parts survive: the one-hot rows
  of known positions and of the first hole pixel, hole rows whose sources all coincide (their weights
  add up to 1, or to 0.99999... which truncates to 0), and ``|w| >= 1`` weights when ``a``/``c`` leave
  [0,1] on signed features. Our rows use the raster index ``i*W + j``; the official ``i*h + j`` is only
  right for square maps [our reconstruction].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

NORM_EPS = 1e-8  # added to the L2 norm of keys and of u_t [official code]
CLAMP_EPS = 1e-8  # denominator guard of the optional clamped weights [our reconstruction]
_SEARCH_CHUNK_ELEMENTS = 1 << 24  # at most this many scores (B * queries * N) in memory at once

GradientMode = Literal["autograd", "official"]


@dataclass
class CSATrace:
    """What CSA did at every position, as maps for pictures; all tensors are detached.

    Attributes:
        hole: (B,1,H,W) bool, the feature-level hole.
        step_index: (B,1,H,W) long, the raster rank t of each hole position (-1 at known positions).
        best_match_index: (B,1,H,W) long, raster index p of the known position whose patch best
            matches q (row ``p // W``, column ``p % W``).
        d_max: (B,1,H,W), D_max = max_j <F_q, k_j / (||k_j|| + 1e-8)> at every position.
        d_ad: (B,1,H,W), D_ad = <g_{t-1}, u_t / (||u_t|| + 1e-8)> at hole positions t >= 1; 0 elsewhere.
        weight_previous: (B,1,H,W), a, the weight of g_{t-1}; 0 at known positions and at h_0.
        weight_match: (B,1,H,W), c, the weight of match[q]; 1 at known positions and at h_0.
        attention: (B,N,N), row q = weights of the source positions p in the output at q.
    """

    hole: Tensor
    step_index: Tensor
    best_match_index: Tensor
    d_max: Tensor
    d_ad: Tensor
    weight_previous: Tensor
    weight_match: Tensor
    attention: Tensor


class _Recurrence(NamedTuple):
    """Result of the coherent recurrence; per-step tensors are (B,T), padded past each sample's T_b."""

    out: Tensor  # (B,C,N)
    hole_positions: Tensor  # (B,T) long, ascending raster positions, N where padded
    d_ad: Tensor  # (B,T), 0 at t = 0
    weight_previous: Tensor  # (B,T) a_t, 0 at t = 0
    weight_match: Tensor  # (B,T) c_t, 1 at t = 0


def _check_binary_mask(mask: Tensor, name: str) -> None:
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"{name} must have shape (B,1,H,W), got {tuple(mask.shape)}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name} values must be in {{0, 1}} (1 = hole)")


def _check_features(features: Tensor) -> None:
    if features.ndim != 4:
        raise ValueError(f"features must have shape (B,C,H,W), got {tuple(features.shape)}")
    if not features.is_floating_point():
        raise ValueError(f"features must be a floating tensor, got {features.dtype}")


def _check_hole(hole: Tensor, batch: int, positions: int) -> None:
    if hole.dtype != torch.bool or hole.shape != (batch, positions):
        raise ValueError(
            f"hole must be a bool tensor of shape (B, H*W) = ({batch}, {positions}), "
            f"got {hole.dtype} {tuple(hole.shape)}"
        )


def feature_mask(mask: Tensor, levels: int = 3, threshold: float = 5 / 16) -> Tensor:
    """Image mask -> feature-level mask, as the official ``cal_feat_mask`` [official code util.py].

    ``levels`` times a 4x4 stride-2 pad-1 convolution with all weights 1/16 (a zero-padded box average,
    no thresholding in between), then ``hole = value > threshold``.

    Args:
        mask: (B,1,H,W) in {0,1}, 1 = hole; H and W at least 2**levels.
    Returns:
        (B,1,H',W') float in {0,1}, each side halved (floored) ``levels`` times.
    """
    _check_binary_mask(mask, "mask")
    if levels < 0:
        raise ValueError(f"levels must be >= 0, got {levels}")
    if min(mask.shape[-2:]) < 2**levels:
        raise ValueError(f"mask of size {tuple(mask.shape[-2:])} is too small for {levels} halvings")
    dtype = mask.dtype if mask.is_floating_point() else torch.float32
    averaged = mask.to(dtype)
    box = torch.full((1, 1, 4, 4), 1 / 16, dtype=dtype, device=mask.device)  # weights 1/16
    for _ in range(levels):
        averaged = nnf.conv2d(averaged, box, stride=2, padding=1)  # (B,1,H/2,W/2)
    return (averaged > threshold).to(dtype)


def csa_search(features: Tensor, hole: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Best known 1x1 patch for every position (normalised keys, raw queries) [official code].

    Args:
        features: (B,C,H,W) feature map F.
        hole: (B,N) bool, N = H*W in raster order, True = hole; every sample needs a known position.
    Returns:
        idx (B,N) long: raster index of the best known position for each query q;
        vmax (B,N): its score <F_q, F_idx / (||F_idx|| + 1e-8)>;
        match (B,C,N): the raw best patch F_idx.
    """
    _check_features(features)
    batch, channels, height, width = features.shape
    positions = height * width
    _check_hole(hole, batch, positions)
    no_known = (~hole).sum(1) == 0  # (B,)
    if bool(no_known.any()):
        samples = no_known.nonzero().flatten().tolist()
        raise ValueError(f"samples {samples} are all hole: CSA needs at least one known position")

    flat = features.flatten(2)  # (B,C,N)
    keys = flat / (flat.norm(dim=1, keepdim=True) + NORM_EPS)  # k_j / (||k_j|| + 1e-8)  (B,C,N)
    chunk = max(1, _SEARCH_CHUNK_ELEMENTS // (batch * positions))
    hole_columns = hole[:, None, :]  # (B,1,N)
    with torch.no_grad():
        idx_chunks = []
        for start in range(0, positions, chunk):
            queries = flat[:, :, start : start + chunk].transpose(1, 2)  # (B,n,C), not normalised
            scores = torch.bmm(queries, keys)  # s[q, j] = <F_q, k_j>  (B,n,N)
            scores = scores.masked_fill(hole_columns, float("-inf"))  # only known keys compete
            idx_chunks.append(scores.argmax(dim=2))  # first maximum on ties  (B,n)
        idx = torch.cat(idx_chunks, dim=1)  # (B,N)
    gather_index = idx[:, None, :].expand(batch, channels, positions)  # (B,C,N)
    vmax = (flat * keys.gather(2, gather_index)).sum(1)  # the max score, differentiable  (B,N)
    match = flat.gather(2, gather_index)  # (B,C,N)
    return idx, vmax, match


def _coherent_recurrence(
    features: Tensor, hole: Tensor, vmax: Tensor, match: Tensor, clamp_weights: bool
) -> _Recurrence:
    """Run the coherent recurrence over all samples at once; one host sync (the max hole count)."""
    batch, channels, height, width = features.shape
    positions = height * width
    flat = features.flatten(2)  # (B,C,N)
    steps = int(hole.sum(1).max())  # T = max_b T_b
    raster = torch.arange(positions, device=features.device)  # (N,)
    holes_first = torch.where(hole, raster, raster + positions)  # holes sort before known positions
    hole_positions = holes_first.sort(dim=1).values[:, :steps]  # (B,T), >= N where padded
    active = hole_positions < positions  # (B,T)
    hole_positions = torch.where(active, hole_positions, positions)  # padding -> dummy column N
    safe_positions = hole_positions.clamp(max=positions - 1)  # any valid column for the padding
    if steps == 0:
        empty = vmax.new_zeros(batch, 0)
        return _Recurrence(match, hole_positions, empty, empty, empty)

    gather_index = safe_positions[:, None, :].expand(batch, channels, steps)  # (B,C,T)
    u = flat.gather(2, gather_index)  # u_t = F_{h_t}  (B,C,T)
    u_unit = u / (u.norm(dim=1, keepdim=True) + NORM_EPS)  # u_t / (||u_t|| + 1e-8)
    match_steps = match.gather(2, gather_index).unbind(2)  # T x (B,C)
    u_unit_steps = u_unit.unbind(2)  # T x (B,C)
    d_max_steps = vmax.gather(1, safe_positions).unbind(1)  # D_max = vmax[h_t], T x (B,)
    active_steps = active.unbind(1)  # T x (B,)

    previous = match_steps[0]  # g_0 = match[h_0]  (B,C)
    generated = [previous]
    d_ads = [torch.zeros_like(d_max_steps[0])]
    weights_previous = [torch.zeros_like(d_max_steps[0])]  # a_0 = 0
    weights_match = [torch.ones_like(d_max_steps[0])]  # c_0 = 1
    for t in range(1, steps):
        d_ad = (previous * u_unit_steps[t]).sum(1)  # D_ad = <g_{t-1}, u_t/(||u_t||+1e-8)>  (B,)
        d_max = d_max_steps[t]  # (B,)
        if clamp_weights:  # [our reconstruction] convex weights: a in [0,1), c = 1 - a
            d_ad_pos, d_max_pos = d_ad.clamp(min=0), d_max.clamp(min=0)
            weight_previous = d_ad_pos / (d_ad_pos + d_max_pos + CLAMP_EPS)
            weight_match = 1 - weight_previous
        else:  # [official code] no eps, no clamp; padded steps divide by 1 to keep gradients finite
            denominator = torch.where(active_steps[t], d_ad + d_max, 1.0)  # (B,)
            weight_previous = d_ad / denominator  # a = D_ad / (D_ad + D_max)
            weight_match = d_max / denominator  # c = D_max / (D_ad + D_max)
        mixed = weight_previous[:, None] * previous + weight_match[:, None] * match_steps[t]  # g_t
        previous = torch.where(active_steps[t][:, None], mixed, previous)  # (B,C)
        generated.append(previous)
        d_ads.append(d_ad)
        weights_previous.append(weight_previous)
        weights_match.append(weight_match)

    with_dummy = torch.cat([match, match.new_zeros(batch, channels, 1)], dim=2)  # (B,C,N+1)
    scatter_index = hole_positions[:, None, :].expand(batch, channels, steps)  # (B,C,T)
    out = with_dummy.scatter(2, scatter_index, torch.stack(generated, 2))[:, :, :positions]  # (B,C,N)
    return _Recurrence(
        out=out,
        hole_positions=hole_positions,
        d_ad=torch.stack(d_ads, 1),
        weight_previous=torch.stack(weights_previous, 1),
        weight_match=torch.stack(weights_match, 1),
    )


def _attention_matrix(idx: Tensor, recurrence: _Recurrence, dtype: torch.dtype) -> Tensor:
    """Attention rows W[q, p]: one-hot at idx[q] for known q, A_t = a_t A_{t-1} + c_t onehot(idx[h_t]).

    Unrolled, A_t = sum_{s<=t} L[t, s] onehot(idx[h_s]) with L[t, s] = c_s prod_{s<r<=t} a_r, the weight
    of match[h_s] in g_t, computed with one cumulative product over t. Returns (B,N,N).
    """
    batch, positions = idx.shape
    hole_positions = recurrence.hole_positions  # (B,T), N where padded
    steps = hole_positions.shape[1]
    attention = torch.zeros(batch, positions + 1, positions, dtype=dtype, device=idx.device)  # row N: dummy
    attention[:, :positions].scatter_(2, idx[:, :, None], 1.0)  # known rows: one-hot at idx[q]  (B,N,N)
    if steps == 0:
        return attention[:, :positions]
    step = torch.arange(steps, device=idx.device)
    after_source = step[:, None] > step[None, :]  # [t, s]: t > s  (T,T)
    factors = torch.where(after_source, recurrence.weight_previous[:, :, None], 1.0)  # a_t where t > s  (B,T,T)
    step_coefficients = torch.where(
        step[:, None] >= step[None, :], factors.cumprod(dim=1) * recurrence.weight_match[:, None, :], 0.0
    )  # L[t, s] = c_s prod_{s<r<=t} a_r  (B,T,T)
    match_index = idx.gather(1, hole_positions.clamp(max=positions - 1))  # idx[h_s]  (B,T)
    hole_rows = torch.zeros(batch, steps, positions, dtype=dtype, device=idx.device)
    hole_rows = hole_rows.scatter_add(2, match_index[:, None, :].expand(batch, steps, steps), step_coefficients)
    row_index = hole_positions[:, :, None].expand(batch, steps, positions)  # (B,T,N), padding -> row N
    attention.scatter_(1, row_index, hole_rows)  # hole rows replace their one-hot rows
    return attention[:, :positions]  # (B,N,N)


def csa_generate(
    features: Tensor,
    hole: Tensor,
    idx: Tensor,
    vmax: Tensor,
    match: Tensor,
    *,
    clamp_weights: bool = False,
    return_attention: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Coherent generation over the hole positions in raster order, all samples at once (see the module docstring).

    Args:
        features: (B,C,H,W) F (u_t = F at the t-th hole position).
        hole: (B,N) bool, True = hole.
        idx, vmax, match: (B,N), (B,N), (B,C,N) from :func:`csa_search`.
        clamp_weights: False (official): a = D_ad/(D_ad+D_max), c = D_max/(D_ad+D_max), which blow up
            when D_ad + D_max ~ 0 (official issue #26). True [our reconstruction]: clamp D_ad and D_max
            at 0 and use a = D_ad+/(D_ad+ + D_max+ + 1e-8), c = 1 - a.
        return_attention: also return the attention matrix.
    Returns:
        out (B,C,H,W) [, attention (B,N,N), row q = weights of the sources p in out[:, q]].
    """
    _check_features(features)
    batch, channels, height, width = features.shape
    positions = height * width
    _check_hole(hole, batch, positions)
    if idx.shape != (batch, positions) or vmax.shape != (batch, positions):
        raise ValueError(f"idx and vmax must have shape ({batch}, {positions})")
    if match.shape != (batch, channels, positions):
        raise ValueError(f"match must have shape ({batch}, {channels}, {positions}), got {tuple(match.shape)}")
    recurrence = _coherent_recurrence(features, hole, vmax, match, clamp_weights)
    out = recurrence.out.reshape(batch, channels, height, width)
    if return_attention:
        return out, _attention_matrix(idx, recurrence, features.dtype)
    return out


class _OfficialGradient(torch.autograd.Function):
    """Passes a precomputed CSA output through; backward = the official rule grad + W_trunc^T grad."""

    @staticmethod
    def forward(ctx, features: Tensor, output: Tensor, truncated_attention: Tensor) -> Tensor:
        """features, output (B,C,H,W); truncated_attention (B,N,N) -> output."""
        ctx.save_for_backward(truncated_attention)
        return output.clone()

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None]:
        (truncated_attention,) = ctx.saved_tensors  # W (B,N,N), W[q, p]
        grad = grad_output.flatten(2)  # (B,C,H,W) -> (B,C,N)
        # grad_in[:, p] = g[:, p] + sum_q W[q, p] g[:, q]  (triple_weight = 1) [official code]
        grad_in = grad + torch.bmm(grad, truncated_attention)
        return grad_in.view_as(grad_output), None, None


def _map(values: Tensor, shape: torch.Size) -> Tensor:
    """(B,N) -> (B,1,H,W), detached."""
    return values.detach().reshape(shape[0], 1, shape[2], shape[3])


def _per_position(values: Tensor, hole_positions: Tensor, fill: Tensor) -> Tensor:
    """Scatter per-step values (B,T) to their hole positions over a (B,N) background ``fill``."""
    with_dummy = torch.cat([fill, fill.new_zeros(fill.shape[0], 1)], dim=1)  # (B,N+1)
    return with_dummy.scatter(1, hole_positions, values.to(fill.dtype))[:, :-1]


def coherent_semantic_attention(
    features: Tensor,
    mask_feat: Tensor,
    *,
    gradient: GradientMode = "autograd",
    clamp_weights: bool = False,
    return_trace: bool = False,
) -> Tensor | tuple[Tensor, CSATrace]:
    """CSA layer: search + coherent generation (module docstring); output replaces the feature (no residual).

    Args:
        features: (B,C,H,W), the raw (pre-norm) feature, e.g. 512x32x32 for a 256 image [official code].
        mask_feat: (1 or B,1,H,W) in {0,1}, 1 = hole, e.g. from :func:`feature_mask`; per-sample masks
            are allowed (the official code uses one mask for the batch). Each sample needs a known position.
        gradient: "autograd" (true gradient) or "official" (identity + truncated W^T, [official code] ``CSAFunction.backward``).
        clamp_weights: see :func:`csa_generate`.
        return_trace: also return a :class:`CSATrace` of maps for pictures.
    Returns:
        out (B,C,H,W) [, trace].
    """
    _check_features(features)
    _check_binary_mask(mask_feat, "mask_feat")
    batch, channels, height, width = features.shape
    if mask_feat.shape[0] not in (1, batch) or mask_feat.shape[-2:] != features.shape[-2:]:
        raise ValueError(
            f"mask_feat shape {tuple(mask_feat.shape)} does not match features {tuple(features.shape)}: "
            f"expected ({batch} or 1, 1, {height}, {width})"
        )
    if gradient not in ("autograd", "official"):
        raise ValueError(f"gradient must be 'autograd' or 'official', got {gradient!r}")
    hole = (mask_feat > 0.5).flatten(1).expand(batch, height * width)  # (B,N) bool

    if gradient == "official":
        with torch.no_grad():
            idx, vmax, match = csa_search(features, hole)
            recurrence = _coherent_recurrence(features, hole, vmax, match, clamp_weights)
            attention = _attention_matrix(idx, recurrence, features.dtype)
        # the official ind_lst is a LongTensor: float -> long truncates towards zero
        out = recurrence.out.reshape(batch, channels, height, width)
        out = _OfficialGradient.apply(features, out, attention.trunc())
    else:
        idx, vmax, match = csa_search(features, hole)
        recurrence = _coherent_recurrence(features, hole, vmax, match, clamp_weights)
        out = recurrence.out.reshape(batch, channels, height, width)
    if not return_trace:
        return out

    if gradient == "autograd":
        with torch.no_grad():
            attention = _attention_matrix(idx, recurrence, features.dtype)
    positions = recurrence.hole_positions
    steps = torch.arange(positions.shape[1], device=features.device).expand_as(positions)
    shape = features.shape
    trace = CSATrace(
        hole=_map(hole, shape),
        step_index=_map(_per_position(steps, positions, torch.full_like(idx, -1)), shape),
        best_match_index=_map(idx, shape),
        d_max=_map(vmax, shape),
        d_ad=_map(_per_position(recurrence.d_ad.detach(), positions, torch.zeros_like(vmax)), shape),
        weight_previous=_map(
            _per_position(recurrence.weight_previous.detach(), positions, torch.zeros_like(vmax)), shape
        ),
        weight_match=_map(_per_position(recurrence.weight_match.detach(), positions, torch.ones_like(vmax)), shape),
        attention=attention.detach(),
    )
    return out, trace


class CoherentSemanticAttention(nn.Module):
    """The CSA layer as a module (no parameters); see :func:`coherent_semantic_attention`.

    Args:
        gradient: "autograd" (default, true gradient of the vectorised computation) or "official"
            (the official custom backward: identity + W^T with W truncated to integers).
        clamp_weights: clamp the mixing weights into a convex pair (off = official behaviour).
    """

    def __init__(self, gradient: GradientMode = "autograd", clamp_weights: bool = False) -> None:
        super().__init__()
        if gradient not in ("autograd", "official"):
            raise ValueError(f"gradient must be 'autograd' or 'official', got {gradient!r}")
        self.gradient: GradientMode = gradient
        self.clamp_weights = clamp_weights

    def forward(
        self, features: Tensor, mask_feat: Tensor, return_trace: bool = False
    ) -> Tensor | tuple[Tensor, CSATrace]:
        """features (B,C,H,W), mask_feat (1 or B,1,H,W) -> out (B,C,H,W) [, CSATrace]."""
        return coherent_semantic_attention(
            features, mask_feat, gradient=self.gradient, clamp_weights=self.clamp_weights, return_trace=return_trace
        )

    def extra_repr(self) -> str:
        return f"gradient={self.gradient!r}, clamp_weights={self.clamp_weights}"
