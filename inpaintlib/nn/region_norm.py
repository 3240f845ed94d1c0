"""Normalisations conditioned on a spatial map: region normalisation (RN-B, RN-L) and SPADE.

Region normalisation (Yu et al., AAAI 2020) splits a feature map into regions (hole / known, or a
learned foreground) and normalises each region with its own mean and variance, so the statistics of
the known pixels are not polluted by whatever fills the hole. SPL (Zhang et al., IJCAI 2021) uses
RN-B in its image encoder, RN-L in its decoder, and SPADE (Park et al., CVPR 2019) blocks in its
middle, conditioned on the learned semantic prior.

[official code] = ``rn.py`` and ``networks.py`` of WendongZh/SPL (https://github.com/WendongZh/SPL).
SPADE itself is ``inpaintlib.nn.spade.SPADE`` (shared with the SGE-Net chapter); with instance norm and
the default initialisation it is the official SPL ``SPADE``: ``IN(x) * (1 + gamma(L)) + beta(L)``,
``gamma, beta = conv3(ReLU(conv3(L)))``, hidden width 128, layout resized by nearest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inpaintlib.nn.spade import SPADE

INSTANCE_NORM_EPS = 1e-5  # [official code] nn.InstanceNorm2d default


def _check_features(x: torch.Tensor, channels: int, name: str = "x") -> None:
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"{name} has {x.shape[1]} channels, the layer was built for {channels}")


def _check_region(region: torch.Tensor, x: torch.Tensor) -> None:
    if region.ndim != 4 or region.shape[1] not in (1, x.shape[1]) or region.shape[0] != x.shape[0]:
        raise ValueError(
            f"region must have shape (B, 1 or C, H, W) matching x {tuple(x.shape)}, got {tuple(region.shape)}"
        )
    if region.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"region size {tuple(region.shape[-2:])} differs from the feature size {tuple(x.shape[-2:])}")
    if not bool(((region == 0) | (region == 1)).all()):
        raise ValueError("region values must be exactly 0 or 1")


def _normalize_inside(x: torch.Tensor, region: torch.Tensor, eps: float) -> torch.Tensor:
    """One region of [official code] ``RN_binarylabel_IN.rn``: ``(B,C,H,W)`` -> ``(B,C,H,W)``, ~0 outside."""
    h, w = x.shape[-2:]
    area = region.sum(dim=(2, 3), keepdim=True)  # S_r: (B, 1|C, 1, 1)
    area = torch.where(area == 0, torch.ones_like(area), area)  # [official code] Sr[Sr == 0] = 1
    inside = x * region
    mean = inside.sum(dim=(2, 3), keepdim=True) / area  # mu_r: (B, C, 1, 1)
    filled = inside + (1 - region) * mean  # outside of the region := mu_r
    # IN over the filled map, then sqrt(S_r / HW): in the region this is (x - mu_r) / sqrt(var_r + eps HW / S_r)
    return F.instance_norm(filled, eps=eps) * torch.sqrt(area / (h * w))


def region_normalize(x: torch.Tensor, region: torch.Tensor, eps: float = INSTANCE_NORM_EPS) -> torch.Tensor:
    """Normalise the ``region == 1`` and the ``region == 0`` pixels separately, per sample and channel.

    ``x`` ``(B,C,H,W)``, ``region`` ``(B,1,H,W)`` or ``(B,C,H,W)`` in {0,1} (treated as constant: no
    gradient flows into it) -> ``(B,C,H,W)``: each region has mean 0 and variance
    ``var_r / (var_r + eps * HW / S_r)`` (about 1) [official code ``RN_binarylabel_IN``].
    Computed in float32 (areas are pixel counts, which bfloat16 cannot hold exactly), returned in ``x``'s dtype.
    """
    _check_region(region, x)
    x32, region32 = x.float(), region.detach().float()
    return (_normalize_inside(x32, region32, eps) + _normalize_inside(x32, 1 - region32, eps)).to(x.dtype)


class BasicRegionNorm(nn.Module):
    """RN-B [official code ``RN_B``]: region normalisation by the inpainting mask, with one affine per region.

    ``x`` ``(B,C,H,W)``, ``mask`` ``(B,1,H',W')`` (1 = hole; resized to ``(H,W)`` by nearest) ->
    ``(B,C,H,W)``. ``out = rn*m*(1+g_hole) + b_hole + rn*(1-m)*(1+g_known) + b_known``: the two
    betas are *not* masked, so both are added everywhere (an [official code] quirk, kept: with
    zero-initialised betas it only changes the parametrisation of a per-channel bias).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.hole_gamma = nn.Parameter(torch.zeros(channels))  # [official code] foreground_gamma
        self.hole_beta = nn.Parameter(torch.zeros(channels))
        self.known_gamma = nn.Parameter(torch.zeros(channels))  # [official code] background_gamma
        self.known_beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _check_features(x, self.channels)
        if mask.ndim != 4 or mask.shape[1] != 1:
            raise ValueError(f"mask must have shape (B, 1, H, W), got {tuple(mask.shape)}")
        m = F.interpolate(mask, size=x.shape[-2:], mode="nearest")  # (B, 1, H, W)
        rn = region_normalize(x, m)
        g_hole, b_hole = self.hole_gamma.view(1, -1, 1, 1), self.hole_beta.view(1, -1, 1, 1)
        g_known, b_known = self.known_gamma.view(1, -1, 1, 1), self.known_beta.view(1, -1, 1, 1)
        return rn * m * (1 + g_hole) + b_hole + rn * (1 - m) * (1 + g_known) + b_known


class SelfAwareAffine(nn.Module):
    """The spatial map of RN-L [official code ``SelfAware_Affine``]: ``(B,C,H,W)`` -> three ``(B,1,H,W)``.

    ``S = sigmoid(conv7([mean_c x, max_c x]))`` (no bias), ``gamma = conv7(S)``, ``beta = conv7(S)``.
    """

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        if kernel_size not in (3, 7):
            raise ValueError(f"kernel_size must be 3 or 7 (as in the official code), got {kernel_size}")
        pad = kernel_size // 2
        self.importance_conv = nn.Conv2d(2, 1, kernel_size, padding=pad, bias=False)
        self.gamma_conv = nn.Conv2d(1, 1, kernel_size, padding=pad)
        self.beta_conv = nn.Conv2d(1, 1, kernel_size, padding=pad)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)  # (B, 2, H, W)
        importance = torch.sigmoid(self.importance_conv(pooled))  # S: (B, 1, H, W)
        return importance, self.gamma_conv(importance), self.beta_conv(importance)


class LearnableRegionNorm(nn.Module):
    """RN-L [official code ``RN_L``]: region normalisation by a region the layer finds itself.

    ``(B,C,H,W)`` -> ``(B,C,H,W)``: the region is ``S >= threshold`` (``S`` from ``SelfAwareAffine``,
    detached, the same for every channel), then ``out = rn * (1 + gamma) + beta`` with spatial
    ``gamma, beta`` ``(B,1,H,W)``. Threshold 0.8 [official code ``main.py``].
    """

    def __init__(self, channels: int, threshold: float = 0.8):
        super().__init__()
        self.channels, self.threshold = channels, threshold
        self.self_aware = SelfAwareAffine()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features(x, self.channels)
        importance, gamma, beta = self.self_aware(x)
        region = (importance.detach() >= self.threshold).to(x.dtype).expand_as(x)  # (B, C, H, W)
        return region_normalize(x, region) * (1 + gamma) + beta


class UnconditionalNorm(nn.Module):
    """What SPADE becomes without a layout [our reconstruction, for the ablation]: IN with a learned affine.

    ``out = IN(x) * (1 + gamma) + beta`` with per-channel ``gamma, beta`` (zero-initialised), which is
    SPADE fed a constant layout. ``forward(x, layout)`` ignores ``layout`` (it must be ``None``).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, layout: torch.Tensor | None = None) -> torch.Tensor:
        _check_features(x, self.channels)
        if layout is not None:
            raise ValueError("this block was built without a prior (layout_channels=0); pass layout=None")
        gamma, beta = self.gamma.view(1, -1, 1, 1), self.beta.view(1, -1, 1, 1)
        return F.instance_norm(x, eps=INSTANCE_NORM_EPS) * (1 + gamma) + beta


class SpadeResnetBlock(nn.Module):
    """[official code ``ResnetBlock_Spade``]: ``x + conv3(ReLU(SPADE(conv3_dil(ReLU(SPADE(x, l))), l)))``.

    ``x`` ``(B,C,H,W)``, ``layout`` ``(B,L,H,W)`` -> ``(B,C,H,W)``. Reflection padding, the first conv
    dilated (official 2), no spectral norm and no activation after the sum. ``layout_channels=0``
    builds the ablation without a prior (``UnconditionalNorm`` in place of SPADE).
    """

    def __init__(self, channels: int, layout_channels: int, dilation: int = 2, hidden: int = 128):
        super().__init__()
        self.conditioned = layout_channels > 0
        self.norm1 = self._norm(channels, layout_channels, hidden)
        self.conv1 = nn.Sequential(nn.ReflectionPad2d(dilation), nn.Conv2d(channels, channels, 3, dilation=dilation))
        self.norm2 = self._norm(channels, layout_channels, hidden)
        self.conv2 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3))

    @staticmethod
    def _norm(channels: int, layout_channels: int, hidden: int) -> nn.Module:
        if layout_channels > 0:
            return SPADE(channels, layout_channels, hidden, norm="instance")  # official init: PyTorch default
        return UnconditionalNorm(channels)

    def forward(self, x: torch.Tensor, layout: torch.Tensor | None) -> torch.Tensor:
        if self.conditioned and layout is None:
            raise ValueError("this block is conditioned on a layout (the semantic prior); got layout=None")
        h = self.conv1(F.relu(self.norm1(x, layout)))
        h = self.conv2(F.relu(self.norm2(h, layout)))
        return x + h
