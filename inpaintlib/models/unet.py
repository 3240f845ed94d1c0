"""A U-Net inpainting baseline: encoder-decoder with skip connections, L1 on hole and valid pixels.

The common design (pix2pix ``UnetGenerator``, used by Shift-Net and as CSA's rough network)
[official code], with two choices for a small CPU budget [our choice]: the decoder upsamples with
nearest neighbour + 3x3 conv instead of a transposed conv (fewer checkerboard artefacts), and the
loss is ``6 * L1_hole + 1 * L1_valid`` (the partial-convolution weighting). An optional patch
discriminator adds a hinge adversarial term.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from inpaintlib.checks import check_image
from inpaintlib.losses import hole_l1, mask_conditioned_hinge, valid_l1
from inpaintlib.masks import check_mask
from inpaintlib.nn.discriminators import PatchDiscriminator
from inpaintlib.train import Method, UpdateFn


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; expected batch, instance, group or none")


class DownBlock(nn.Module):
    """LeakyReLU(0.2) -> conv 4x4 stride 2 -> norm: ``(B, C_in, H, W)`` -> ``(B, C_out, H/2, W/2)``."""

    def __init__(self, c_in: int, c_out: int, norm: str, first: bool = False):
        super().__init__()
        self.act = nn.Identity() if first else nn.LeakyReLU(0.2)
        self.conv = nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)
        self.norm = nn.Identity() if first else _norm(norm, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(self.act(x)))


class UpBlock(nn.Module):
    """ReLU -> nearest x2 -> conv 3x3 -> norm: ``(B, C_in, H, W)`` -> ``(B, C_out, 2H, 2W)``."""

    def __init__(self, c_in: int, c_out: int, norm: str):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm = _norm(norm, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(F.interpolate(F.relu(x), scale_factor=2.0, mode="nearest")))


def unet_layers(channels: Sequence[int], norm: str, in_channels: int) -> tuple[nn.ModuleList, nn.ModuleList, nn.Sequential]:
    """The layers of the book's U-Net: ``(down, up, to_image)``.

    ``down[i]`` halves the resolution to ``channels[i]`` channels; decoder level i takes the deeper
    output (``channels[i+1]``, doubled by the skip except at the bottom); ``to_image`` is the last up
    block, a ReLU and a 3x3 conv over ``cat(features, input)`` to 3 channels.
    """
    chans = (in_channels, *channels)
    down = nn.ModuleList(DownBlock(chans[i], chans[i + 1], norm, first=i == 0) for i in range(len(channels)))
    up = nn.ModuleList(
        UpBlock(channels[i + 1] * (1 if i == len(channels) - 2 else 2), channels[i], norm)
        for i in reversed(range(len(channels) - 1))
    )
    to_image = nn.Sequential(
        UpBlock(2 * channels[0], channels[0], "none"),
        nn.ReLU(),
        nn.Conv2d(channels[0] + in_channels, 3, 3, padding=1),
    )
    return down, up, to_image


class UNetInpainter(nn.Module):
    """U-Net generator: ``cat(image * (1 - mask), mask)`` -> image, images in [0, 1].

    With ``channels = (c0, ..., c_{n-1})`` the encoder halves the resolution ``n`` times, so H and W
    must be divisible by ``2^n`` (64 px with 4 levels: 64 -> 32 -> 16 -> 8 -> 4).
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128, 256), norm: str = "batch", in_channels: int = 4):
        super().__init__()
        self.channels = tuple(channels)
        self.down, self.up, self.to_image = unet_layers(self.channels, norm, in_channels)

    @property
    def stride(self) -> int:
        return 2 ** len(self.channels)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B,3,H,W)`` masked image in [0,1], ``(B,1,H,W)`` mask -> ``(B,3,H,W)`` in [0,1]."""
        check_image(image)
        check_mask(mask, image)
        if image.shape[-1] % self.stride or image.shape[-2] % self.stride:
            raise ValueError(
                f"image size {tuple(image.shape[-2:])} is not divisible by the U-Net stride {self.stride}; "
                "resize or pad the input"
            )
        x = torch.cat([(image * 2 - 1) * (1 - mask), mask], dim=1)  # (B, 4, H, W), hole = 0
        skips = []
        h = x
        for block in self.down:
            h = block(h)
            skips.append(h)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            h = torch.cat([block(h), skip], dim=1)
        h = self.to_image[1](self.to_image[0](h))
        out = self.to_image[2](torch.cat([h, x], dim=1))
        return (torch.tanh(out) + 1) / 2


class UNetMethod(Method):
    """Training recipe: ``hole_weight * L1_hole + valid_weight * L1_valid [+ adv_weight * hinge GAN]``."""

    def __init__(
        self,
        channels: Sequence[int] = (32, 64, 128, 256),
        norm: str = "batch",
        hole_weight: float = 6.0,
        valid_weight: float = 1.0,
        adv_weight: float = 0.0,
        lr: float = 2e-4,
    ):
        super().__init__()
        self.generator = UNetInpainter(channels, norm)
        self.discriminator = PatchDiscriminator(in_channels=4) if adv_weight > 0 else None
        self.hole_weight, self.valid_weight, self.adv_weight, self.lr = hole_weight, valid_weight, adv_weight, lr

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"g": torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=(0.5, 0.999))}
        if self.discriminator is not None:
            opts["d"] = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr, betas=(0.5, 0.999))
        return opts

    def training_step(self, batch: dict[str, torch.Tensor], update: UpdateFn) -> None:
        image, mask = batch["image"], batch["mask"]
        pred = self.generator(image * (1 - mask), mask)
        terms = {
            "l1_hole": self.hole_weight * hole_l1(pred, image, mask),
            "l1_valid": self.valid_weight * valid_l1(pred, image, mask),
        }
        if self.discriminator is not None:
            composed = mask * pred + (1 - mask) * image
            terms["adv"] = self.adv_weight * mask_conditioned_hinge(self.discriminator, image, composed, mask, update)
        update("g", terms)

    @torch.no_grad()
    def inpaint(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.generator(image, mask)
