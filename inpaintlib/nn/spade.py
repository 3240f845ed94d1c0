"""SPADE: spatially adaptive (de)normalisation, and the residual block SGE-Net's guidance is built from.

SPADE (Park et al., CVPR 2019) [paper]: normalise the features without a learned affine, then scale
and shift every pixel by maps predicted from a segmentation ``S``:

    out = norm(x) * (1 + gamma(S)) + beta(S)

with ``gamma, beta = conv3x3(ReLU(conv3x3(S)))`` (one shared hidden layer, then one conv each)
[official code: NVlabs/SPADE]. SGE-Net's Semantic Guidance Module modulates the inpainting features by the
previous scale's soft segmentation this way [our reconstruction: the SGE-Net paper names the module
and its role; the SPADE wiring, the instance norm and the hidden width are ours].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("instance", "batch")


class SPADE(nn.Module):
    """``norm(x) * (1 + gamma(S)) + beta(S)``: ``x`` ``(B,C,H,W)``, ``S`` ``(B,K,h,w)`` -> ``(B,C,H,W)``.

    ``S`` is resized to ``(H, W)`` by nearest neighbour. ``norm`` is parameter-free (``"instance"`` or
    ``"batch"``). ``zero_init=True`` zeroes the gamma/beta convolutions, so the block starts as the
    plain norm and learns how much the segmentation should move the features.
    """

    def __init__(self, channels: int, label_channels: int, hidden: int = 128, norm: str = "instance", zero_init: bool = False):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")
        self.channels, self.label_channels = channels, label_channels
        self.norm = (
            nn.InstanceNorm2d(channels, affine=False) if norm == "instance" else nn.BatchNorm2d(channels, affine=False)
        )
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)
        if zero_init:
            for conv in (self.gamma, self.beta):
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    def modulation(self, x: torch.Tensor, segmentation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gamma, beta)``, each ``(B,C,H,W)``, from the segmentation resized to ``x``'s size."""
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"SPADE expects features (B, {self.channels}, H, W), got {tuple(x.shape)}")
        if segmentation.ndim != 4 or segmentation.shape[1] != self.label_channels:
            raise ValueError(
                f"SPADE expects a segmentation (B, {self.label_channels}, h, w), got {tuple(segmentation.shape)}"
            )
        if segmentation.shape[0] != x.shape[0]:
            raise ValueError(f"batch mismatch: features {x.shape[0]}, segmentation {segmentation.shape[0]}")
        seg = F.interpolate(segmentation, size=x.shape[-2:], mode="nearest")  # (B, K, H, W)
        hidden = self.shared(seg)  # (B, hidden, H, W)
        return self.gamma(hidden), self.beta(hidden)

    def forward(self, x: torch.Tensor, segmentation: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.modulation(x, segmentation)
        return self.norm(x) * (1 + gamma) + beta  # [paper: SPADE eq. 1, with 1 + gamma as in its code]


class SGMBlock(nn.Module):
    """Semantic Guidance Module: a residual block of two SPADE units, ``(B,C,H,W)`` -> ``(B,C,H,W)``.

    ``x + conv(ReLU(SPADE(conv(ReLU(SPADE(x, S))), S)))`` (the SPADE ResBlk order, without its
    learned shortcut because the width does not change) [our reconstruction].
    """

    def __init__(self, channels: int, label_channels: int, hidden: int = 128, norm: str = "instance", zero_init: bool = True):
        super().__init__()
        self.spade1 = SPADE(channels, label_channels, hidden, norm, zero_init)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.spade2 = SPADE(channels, label_channels, hidden, norm, zero_init)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, segmentation: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(self.spade1(x, segmentation)))
        return x + self.conv2(F.relu(self.spade2(h, segmentation)))
