"""The two coherence losses of "Image Inpainting Guided by Coherence Priors of Semantics and Textures".

Liao et al. (CVPR 2021) tie semantics to the inpainted image with a global *structure* coherence loss
and a local *texture* coherence loss **[paper]** (two conditional discriminators D_t and D_s for
structure; affinities of generated patches to known patches of the same class for texture). The paper's method sections could not be read and no official code exists,
so the formulas here are **[our reconstruction]**:

- structure coherence (hinge): D_t sees cat(image, segmentation): real (I, S), fake (Î, S);
  D_s sees cat(segmentation, image): real (S, I), fake (Ŝ, Î). Generator: -E[D_t(Î, S)] - E[D_s(Ŝ, Î)].
- non-local patch coherence, for hole positions i and the known positions j of the same class:
  option ``"affinity"`` (default): A_ij(X) = softmax_j(10 cos(φ_i(X), φ_j(X))),
  L = mean_i sum_j |A_ij(Î) - A_ij(I)|; option ``"nearest"``: L = mean_i (1 - max_j cos(φ_i(Î), φ_j(I))).

Masks are (B, 1, h, w) with 1 = hole; label maps (B, h, w) long, at the grid of the features φ.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from inpaintlib.losses import hinge_d_loss, hinge_g_loss

__all__ = [
    "NONLOCAL_MODES",
    "coherence_pairs",
    "nonlocal_affinity",
    "nonlocal_coherence_loss",
    "structure_coherence_d_losses",
    "structure_coherence_g_losses",
]

NONLOCAL_MODES = ("affinity", "nearest")
Critic = Callable[[Tensor], Tensor]


def coherence_pairs(labels: Tensor, mask: Tensor) -> Tensor:
    """Which (hole i, source j) pairs the texture loss compares: (B, h, w), (B, 1, h, w) -> (B, L, L) bool.

    pairs_ij = (i in the hole) and (j known) and (y_i = y_j), positions flattened row-major.
    """
    if labels.ndim != 3 or labels.is_floating_point():
        raise ValueError(f"labels must be a long tensor (B, h, w); got {labels.dtype} {tuple(labels.shape)}")
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] != labels.shape[0] or mask.shape[-2:] != labels.shape[-2:]:
        raise ValueError(f"mask must have shape (B, 1, h, w) matching labels {tuple(labels.shape)}; got {tuple(mask.shape)}")
    flat = labels.flatten(1)  # (B, L)
    hole = mask.flatten(1) > 0  # (B, L)
    return hole[:, :, None] & ~hole[:, None, :] & (flat[:, :, None] == flat[:, None, :])


def _cosine(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity of every position of a with every position of b: (B, C, h, w) x2 -> (B, L, L)."""
    a = F.normalize(a.flatten(2), dim=1, eps=1e-8)  # (B, C, L)
    b = F.normalize(b.flatten(2), dim=1, eps=1e-8)
    return torch.bmm(a.transpose(1, 2), b)


def nonlocal_affinity(features: Tensor, pairs: Tensor, softmax_scale: float = 10.0) -> Tensor:
    """A_ij = softmax over allowed j of scale * cos(φ_i, φ_j): (B, C, h, w), (B, L, L) bool -> (B, L, L).

    Entries outside ``pairs`` are 0; rows with no allowed j are all 0.
    """
    logits = (softmax_scale * _cosine(features, features)).masked_fill(~pairs, float("-inf"))
    has_any = pairs.any(-1, keepdim=True)  # (B, L, 1)
    return torch.where(has_any, torch.softmax(logits.masked_fill(~has_any, 0.0), dim=-1), torch.zeros_like(logits))


def nonlocal_coherence_loss(
    phi_fake: Tensor, phi_real: Tensor, labels: Tensor, mask: Tensor, mode: str = "affinity",
    softmax_scale: float = 10.0,
) -> Tensor:
    """Non-local patch coherence [our reconstruction]; φ features (B, C, h, w) of Î and I -> scalar.

    Averaged over the hole positions that have at least one known same-class position; 0 when none has.
    """
    if mode not in NONLOCAL_MODES:
        raise ValueError(f"mode must be one of {NONLOCAL_MODES}; got {mode!r}")
    if phi_fake.shape != phi_real.shape or phi_fake.ndim != 4:
        raise ValueError(f"phi_fake and phi_real must have the same (B, C, h, w) shape; got {tuple(phi_fake.shape)} "
                         f"and {tuple(phi_real.shape)}")
    pairs = coherence_pairs(labels, mask)
    if pairs.shape[1] != phi_fake.shape[-2] * phi_fake.shape[-1]:
        raise ValueError(f"labels grid {tuple(labels.shape[-2:])} must match the features {tuple(phi_fake.shape[-2:])}")
    rows = pairs.any(-1)  # (B, L): hole positions with a known same-class source
    if not bool(rows.any()):
        return phi_fake.sum() * 0.0
    if mode == "affinity":
        difference = nonlocal_affinity(phi_fake, pairs, softmax_scale) - nonlocal_affinity(phi_real, pairs, softmax_scale)
        per_row = difference.abs().sum(-1)  # (B, L): sum_j |A_ij(Î) - A_ij(I)|
    else:
        cosine = _cosine(phi_fake, phi_real).masked_fill(~pairs, float("-inf"))  # cos(φ_i(Î), φ_j(I))
        per_row = 1.0 - cosine.amax(-1)  # (B, L), -inf + 1 rows dropped below
    return per_row[rows].mean()


def structure_coherence_d_losses(
    d_t: Critic, d_s: Critic, image: Tensor, fake_image: Tensor, seg: Tensor, fake_seg: Tensor
) -> dict[str, Tensor]:
    """Critic losses of the two conditional discriminators [our reconstruction], hinge.

    image, fake_image: (B, 3, H, W); seg (ground-truth one-hot), fake_seg (softmax): (B, K, H, W).
    D_t: real cat(I, S), fake cat(Î, S); D_s: real cat(S, I), fake cat(Ŝ, Î). Pass detached fakes.
    """
    return {
        "d_t": hinge_d_loss(d_t(torch.cat([image, seg], 1)), d_t(torch.cat([fake_image, seg], 1))),
        "d_s": hinge_d_loss(d_s(torch.cat([seg, image], 1)), d_s(torch.cat([fake_seg, fake_image], 1))),
    }


def structure_coherence_g_losses(
    d_t: Critic, d_s: Critic, fake_image: Tensor, seg: Tensor, fake_seg: Tensor
) -> dict[str, Tensor]:
    """Generator terms -E[D_t(Î, S)] and -E[D_s(Ŝ, Î)] [our reconstruction]."""
    return {
        "adv_t": hinge_g_loss(d_t(torch.cat([fake_image, seg], 1))),
        "adv_s": hinge_g_loss(d_s(torch.cat([fake_seg, fake_image], 1))),
    }
