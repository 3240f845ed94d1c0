"""Semantic-gated contextual attention and attention transfer, shared by SWAP and our SACA reconstruction.

Contextual attention (DeepFill v1) lets a hole pixel copy features from any known patch that looks
alike. Holes that cross a class boundary then mix textures: a sky pixel may copy a similar-looking
patch of water. The semantic gate keeps only sources of the query's own class, the idea of SWAP
(coherence priors, Liao et al. CVPR 2021: it borrows texture only from regions of the same semantic class)
**[paper]**; the formulas below are **[our reconstruction]**, built on the verified
pieces of :mod:`inpaintlib.attention.contextual` and on PEN-Net's attention transfer
(researchmm/PEN-Net-for-Inpainting, ``AtnConv``) **[official code]**.

Notation on a feature grid of ``h x w`` positions, ``L = h * w`` flattened row-major:

- ``p_i``: the L2-normalised 3x3 patch of the features at position i ('SAME' zero padding);
- ``s_ij = <p_i, p_j>``: cosine similarity of query i and source j;
- ``v_j = 1`` if the 3x3 mask window at j holds no hole pixel (padding counts as known);
- ``g_ij``: the gate, ``1[y_i = y_j]`` (hard, ``y = argmax_k P_k``) or ``sum_k P_k(i) P_k(j)`` (soft);
- ``a_ij = softmax_j(scale * s_ij + log(g_ij v_j + 1e-8))``; a row i with no valid source of its own
  class (no j with ``v_j = 1`` and ``y_j = y_i``) falls back to ``log(v_j + 1e-8)``.

:func:`attention_transfer` then pastes ``sum_j a_ij q_j`` into the hole, where ``q_j`` is the 4x4 patch
(stride 2) of a feature map twice as large, as PEN-Net's attention transfer, or the 3x3 patch of a
map of the same size.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlib.attention.contextual import extract_patches, known_patch_mask, normalize_kernels, paste_back

__all__ = [
    "GATE_FLOOR",
    "GATE_MODES",
    "DilatedFusion",
    "SemanticAttention",
    "attention_transfer",
    "class_vectors",
    "downsample_labels",
    "downsample_mask",
    "semantic_contextual_attention",
    "semantic_gate",
]

GATE_MODES = ("hard", "soft", "none")
GATE_FLOOR = 1e-8  # [our reconstruction] log(g v + 1e-8): a zero gate becomes a large negative logit
FUSION_RATES = (1, 2, 4, 8)  # [official code] PEN-Net AtnConv: four 3x3 branches with these dilations


class SemanticAttention(NamedTuple):
    """What :func:`semantic_contextual_attention` returns.

    attention: (B, L, L), rows = queries, columns = sources; fallback: (B, L) bool, hole queries that
    had no valid same-class source; fallback_count: (B,) long, ``fallback.sum(1)``.
    """

    attention: Tensor
    fallback: Tensor
    fallback_count: Tensor


def _check_probs_or_labels(labels_or_probs: Tensor) -> None:
    if labels_or_probs.is_floating_point():
        if labels_or_probs.ndim != 4:
            raise ValueError(f"class probabilities must have shape (B, K, h, w); got {tuple(labels_or_probs.shape)}")
        if bool((labels_or_probs < 0).any()):
            raise ValueError("class probabilities must be non-negative (pass a softmax, not logits)")
    elif labels_or_probs.ndim != 3:
        raise ValueError(f"label maps must be long tensors of shape (B, h, w); got {tuple(labels_or_probs.shape)}")


def class_vectors(labels_or_probs: Tensor, mode: str) -> Tensor:
    """Per-position class vectors whose inner products are the gate: -> (B, L, K).

    labels_or_probs: long labels (B, h, w) or probabilities (B, K, h, w). ``hard``: one-hot of the
    label (argmax of the probabilities), so <e_i, e_j> = 1[y_i = y_j]; ``soft``: the probabilities,
    so <P(i), P(j)> = sum_k P_k(i) P_k(j). Soft needs probabilities.
    """
    if mode not in ("hard", "soft"):
        raise ValueError(f"gate mode must be 'hard' or 'soft'; got {mode!r}")
    _check_probs_or_labels(labels_or_probs)
    if not labels_or_probs.is_floating_point():
        if mode == "soft":
            raise ValueError("the soft gate needs class probabilities (B, K, h, w), not a label map")
        labels = labels_or_probs.flatten(1)  # (B, L)
        return F.one_hot(labels, int(labels.max()) + 1).to(torch.float32)  # (B, L, K)
    probs = labels_or_probs.flatten(2).transpose(1, 2)  # (B, L, K)
    if mode == "soft":
        return probs
    return F.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype)  # (B, L, K)


def semantic_gate(labels_or_probs: Tensor, mode: str = "hard") -> Tensor:
    """The gate g_ij between every pair of positions: (B, h, w) labels or (B, K, h, w) probs -> (B, L, L).

    hard: g_ij = 1[y_i = y_j] with y = the label (argmax of the probabilities); soft: g_ij = sum_k
    P_k(i) P_k(j) [our reconstruction]. Memory is (B, L, L): for a chunk of rows see
    :func:`semantic_contextual_attention`.
    """
    vectors = class_vectors(labels_or_probs, mode)  # (B, L, K)
    return torch.bmm(vectors, vectors.transpose(1, 2))


def downsample_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Hole mask to a coarser grid: (B, 1, H, W) -> (B, 1, h, w), a cell is a hole if any pixel is.

    [our reconstruction] max pooling keeps thin free-form strokes, which the official nearest resize
    (written for boxes) can drop. H, W must be multiples of h, w.
    """
    if mask.shape[-2] % size[0] or mask.shape[-1] % size[1]:
        raise ValueError(f"mask size {tuple(mask.shape[-2:])} is not a multiple of {size}")
    return F.max_pool2d(mask, kernel_size=(mask.shape[-2] // size[0], mask.shape[-1] // size[1]))


def downsample_labels(labels: Tensor, size: tuple[int, int], num_classes: int) -> Tensor:
    """Label map to a coarser grid by majority vote: (B, H, W) long -> (B, h, w) long.

    [our reconstruction] each cell takes its most frequent class (ties: the lowest class index), so
    the segmentation target at a coarse decoder scale matches what the cell mostly shows.
    """
    if labels.ndim != 3 or labels.is_floating_point():
        raise ValueError(f"labels must be a long tensor (B, H, W); got {labels.dtype} {tuple(labels.shape)}")
    if labels.shape[-2] % size[0] or labels.shape[-1] % size[1]:
        raise ValueError(f"label size {tuple(labels.shape[-2:])} is not a multiple of {size}")
    kernel = (labels.shape[-2] // size[0], labels.shape[-1] // size[1])
    votes = F.avg_pool2d(F.one_hot(labels, num_classes).permute(0, 3, 1, 2).float(), kernel)  # (B, K, h, w)
    return votes.argmax(1)


def _check_mask(mask: Tensor, features: Tensor, name: str = "mask") -> None:
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] != features.shape[0] or mask.shape[-2:] != features.shape[-2:]:
        raise ValueError(
            f"{name} must have shape (B, 1, H, W) = ({features.shape[0]}, 1, {features.shape[-2]}, "
            f"{features.shape[-1]}) to match the features; got {tuple(mask.shape)}"
        )
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name} values must be in {{0, 1}} (1 = hole)")


def semantic_contextual_attention(
    features: Tensor,
    mask: Tensor,
    seg_probs: Tensor | None = None,
    gate: str = "hard",
    softmax_scale: float = 10.0,
    chunk_size: int | None = 256,
) -> SemanticAttention:
    """Contextual attention restricted to same-class sources [our reconstruction].

    features: (B, C, h, w); mask: (B, 1, h, w) in {0, 1}, 1 = hole; seg_probs: class probabilities
    (B, K, h, w) or labels (B, h, w) (hard gate only), or None with ``gate="none"``.
    Returns :class:`SemanticAttention` with attention (B, L, L), L = h * w.

    a_ij = softmax_j(scale * s_ij + log(g_ij v_j + 1e-8)), s_ij the cosine of 3x3 patches. Rows of
    hole queries with no valid source j of the query's class (argmax class, also for the soft gate)
    use log(v_j + 1e-8) instead and are counted in ``fallback``. ``gate="none"`` is the ungated
    attention (g = 1), with no fallback. Queries are processed ``chunk_size`` rows at a time, so the
    score, gate and logit matrices held at once are (B, chunk_size, L) besides the (B, L, L) result.
    """
    if gate not in GATE_MODES:
        raise ValueError(f"gate must be one of {GATE_MODES}; got {gate!r}")
    if features.ndim != 4:
        raise ValueError(f"features must be 4-D (B, C, h, w); got {tuple(features.shape)}")
    _check_mask(mask, features)
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be None or a positive int; got {chunk_size!r}")
    batch, _, height, width = features.shape
    num = height * width
    if gate == "none":
        vectors = same_class = None
    else:
        if seg_probs is None:
            raise ValueError(f"gate {gate!r} needs seg_probs (B, K, h, w); use gate='none' for ungated attention")
        if seg_probs.shape[0] != batch or seg_probs.shape[-2:] != features.shape[-2:]:
            raise ValueError(
                f"seg_probs must cover the same batch and grid as the features {(batch, height, width)}; "
                f"got {tuple(seg_probs.shape)}"
            )
        vectors = class_vectors(seg_probs, gate).to(features.dtype)  # (B, L, K)
        same_class = vectors if gate == "hard" else class_vectors(seg_probs, "hard").to(features.dtype)

    patches = normalize_kernels(extract_patches(features, 3, 1))  # (B, C*9, L): p_j, unit norm
    queries = patches.transpose(1, 2)  # (B, L, C*9): p_i
    valid = known_patch_mask(mask.to(features.dtype), 3, 1)  # (B, L): v_j
    is_hole = mask.flatten(1) > 0  # (B, L)

    attention = features.new_empty(batch, num, num)
    fallback = torch.zeros(batch, num, dtype=torch.bool, device=features.device)
    chunk = num if chunk_size is None else chunk_size
    for start in range(0, num, chunk):  # chunks of query rows bound the (B, n, L) intermediates
        rows = slice(start, min(start + chunk, num))
        scores = torch.bmm(queries[:, rows], patches)  # (B, n, L): s_ij
        prior = valid[:, None, :].expand_as(scores)  # (B, n, L): v_j
        if vectors is not None:
            gate_rows = torch.bmm(vectors[:, rows], vectors.transpose(1, 2))  # (B, n, L): g_ij
            same_rows = torch.bmm(same_class[:, rows], same_class.transpose(1, 2))  # 1[y_i = y_j]
            no_source = (same_rows * prior).amax(-1) == 0  # (B, n): no valid same-class j
            fallback[:, rows] = no_source & is_hole[:, rows]
            prior = torch.where(no_source[..., None], prior, gate_rows * prior)  # g_ij v_j, or v_j
        logits = softmax_scale * scores + torch.log(prior + GATE_FLOOR)
        attention[:, rows] = torch.softmax(logits, dim=-1)
    return SemanticAttention(attention, fallback, fallback.sum(1))


def attention_transfer(attention: Tensor, values: Tensor, mask: Tensor) -> Tensor:
    """Paste attention-weighted patches of ``values`` into the hole; known pixels pass through.

    attention: (B, L, L) on an h x w grid; values: (B, C', 2h, 2w) or (B, C', h, w); mask: (B, 1) + the
    values' grid, 1 = hole. Returns M * paste + (1 - M) * values, same shape as values.

    - values twice as large: paste = conv_transpose(attention, 4x4 patches of values with stride 2) / 4,
      the attention transfer of PEN-Net [official code] (``AtnConv``: ``extract_patches(x1, 2*rate,
      rate*stride)``, ``conv_transpose2d(..., stride=rate) / 4``), i.e. :func:`paste_back` with rate 2;
    - same size: 3x3 patches with stride 1, overlap-added and divided by the number of patches that
      cover each pixel (9 inside, fewer at the border) [our reconstruction].
    The composition with the mask (only the hole changes) is [our reconstruction] (SWAP step 6).
    """
    if attention.ndim != 3 or attention.shape[1] != attention.shape[2]:
        raise ValueError(f"attention must have shape (B, L, L); got {tuple(attention.shape)}")
    if values.ndim != 4 or values.shape[0] != attention.shape[0]:
        raise ValueError(f"values must be (B, C, H, W) with B = {attention.shape[0]}; got {tuple(values.shape)}")
    _check_mask(mask, values)
    batch, num = attention.shape[:2]
    height, width = values.shape[-2:]
    if height * width == num:
        patches = extract_patches(values, 3, 1)  # (B, C'*9, L)
        columns = torch.bmm(attention, patches.transpose(1, 2)).transpose(1, 2)  # (B, C'*9, L)
        overlap = F.fold(torch.ones_like(columns[:1, :9]), (height, width), 3, padding=1)  # (1, 1, H, W)
        paste = F.fold(columns, (height, width), 3, padding=1) / overlap
    elif height * width == 4 * num and height % 2 == 0 and width % 2 == 0:
        paste = paste_back(attention, extract_patches(values, 4, 2), (height, width), rate=2)  # (B, C', 2h, 2w)
    else:
        raise ValueError(
            f"values grid {height}x{width} must hold L = {num} positions (same grid) or 4 L (twice as large)"
        )
    return mask * paste + (1 - mask) * values


class DilatedFusion(nn.Module):
    """Four parallel 3x3 convs with dilations 1, 2, 4, 8, C_out / 4 channels each, ReLU, concatenated.

    (B, C_in, H, W) -> (B, C_out, H, W). [official code] PEN-Net ``AtnConv`` refines the transferred
    features this way (``conv00``..``conv03``); C_out must be divisible by 4.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        if out_channels % len(FUSION_RATES):
            raise ValueError(f"out_channels must be divisible by {len(FUSION_RATES)}; got {out_channels}")
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels // len(FUSION_RATES), 3, padding=rate, dilation=rate)
            for rate in FUSION_RATES
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([F.relu(branch(x)) for branch in self.branches], dim=1)
