"""Losses shared by the chapters: masked L1 terms and adversarial (GAN) objectives.

Masks are ``(B, 1, H, W)`` with 1 = missing. Each reconstruction loss is a per-pixel mean over its
region, so its scale does not depend on the hole size (the partial-convolution convention).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def masked_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum(|pred - target| * weight) / (C * sum(weight))``: the mean absolute error over a region."""
    weight = weight.expand_as(pred)
    return ((pred - target).abs() * weight).sum() / weight.sum().clamp_min(1.0)


def hole_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the missing pixels (mask = 1)."""
    return masked_l1(pred, target, mask)


def valid_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the known pixels (mask = 0)."""
    return masked_l1(pred, target, 1 - mask)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge critic loss: ``mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))``."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss: ``-mean(D(fake))``."""
    return -fake_logits.mean()


def mask_conditioned_hinge(
    discriminator: nn.Module,
    image: torch.Tensor,
    composed: torch.Tensor,
    mask: torch.Tensor,
    update: Callable[[str, dict[str, torch.Tensor]], torch.Tensor],
) -> torch.Tensor:
    """One hinge GAN round with a critic on ``cat(image, mask)`` (B,4,H,W).

    Steps the critic through ``update("d", {"hinge": ...})`` on the real image vs the detached composed
    output (B,3,H,W), then returns the generator's term ``hinge_g_loss(D(cat(composed, mask)))`` from
    the updated critic (not yet weighted).
    """
    real = discriminator(torch.cat([image, mask], 1))
    fake = discriminator(torch.cat([composed.detach(), mask], 1))
    update("d", {"hinge": hinge_d_loss(real, fake)})
    return hinge_g_loss(discriminator(torch.cat([composed, mask], 1)))
