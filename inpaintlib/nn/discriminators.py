"""Patch discriminators: a logit per receptive-field patch rather than one per image."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import spectral_norm


class PatchDiscriminator(nn.Module):
    """pix2pix-style PatchGAN: 4x4 stride-2 convs with LeakyReLU(0.2), then a 1-channel 4x4 conv.

    ``(B, in_channels, H, W)`` -> logits ``(B, 1, H / 2^n, W / 2^n)`` for ``n = len(channels)``.
    Spectral normalisation (SN-PatchGAN, DeepFill v2) is on by default and replaces batch norm.
    """

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (64, 128, 256), spectral: bool = True):
        super().__init__()
        wrap = spectral_norm if spectral else (lambda m: m)
        layers: list[nn.Module] = []
        prev = in_channels
        for ch in channels:
            layers += [wrap(nn.Conv2d(prev, ch, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            prev = ch
        layers.append(wrap(nn.Conv2d(prev, 1, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
