"""SACA, "semantic-aware contextual attention": our reconstruction, not the paper's method.

The SACA paper (ICASSP 2021, from the group of Liao et al.) could not be identified; the one fact known
of it, second-hand (a summary of its figures, not its text), is that SACA is applied to both the
high-level and the low-level feature maps of the model. Everything below is therefore **[our reconstruction]**,
built from verified parts:

- attention on the deep (high-level, H/4) map: 3x3 cosine patches, softmax scale 10, hole sources
  masked, with the semantic gate of SWAP (:func:`inpaintlib.attention.semantic.semantic_contextual_attention`),
  the gate read from a segmentation head on the same deep map;
- the same attention reconstructs the hole of the deep map (3x3 patches) and of the shallow
  (low-level, H/2) map from its 4x4 patches with stride 2, PEN-Net's attention transfer
  **[official code]**: "applied to both levels";
- each transferred map is refined by PEN-Net's four dilated 3x3 convs (rates 1, 2, 4, 8)
  **[official code]**, used in the hole only, so known features pass through unchanged.

``levels="deep"`` transfers on the deep map only; ``gate="none"`` is the ungated attention: the two
ablations of the chapter.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlib.attention.semantic import (
    GATE_MODES,
    DilatedFusion,
    attention_transfer,
    downsample_labels,
    downsample_mask,
    semantic_contextual_attention,
)
from inpaintlib.data.scenes import NUM_CLASSES
from inpaintlib.losses import hole_l1, mask_conditioned_hinge, valid_l1
from inpaintlib.masks import check_mask
from inpaintlib.nn.discriminators import PatchDiscriminator
from inpaintlib.train import Method, UpdateFn

__all__ = ["LEVELS", "SACA", "conv_elu", "SACAGenerator", "SACAInpainter", "SACAMethod", "SACAOutput", "SACAResult"]

LEVELS = ("deep", "both")


class SACAResult(NamedTuple):
    """What :class:`SACA` returns: deep (B, C_d, h, w), shallow (B, C_s, 2h, 2w), attention (B, L, L),
    fallback_count (B,) hole positions of the deep map that had no same-class source."""

    deep: Tensor
    shallow: Tensor
    attention: Tensor
    fallback_count: Tensor


class SACA(nn.Module):
    """Semantic-aware contextual attention across two levels [our reconstruction].

    deep: (B, C_d, h, w); shallow: (B, C_s, 2h, 2w); masks (B, 1, h, w) / (B, 1, 2h, 2w), 1 = hole;
    seg_probs: (B, K, h, w) or None when ``gate="none"``.
    deep' = M (fuse_d(transfer(A, deep))) + (1 - M) deep, and with ``levels="both"`` the same A
    transfers 4x4 stride-2 patches of the shallow map: shallow' = M fuse_s(transfer(A, shallow)) +
    (1 - M) shallow; with ``levels="deep"`` the shallow map is returned as it is.
    """

    def __init__(
        self, deep_channels: int, shallow_channels: int, levels: str = "both", gate: str = "hard",
        softmax_scale: float = 10.0, chunk_size: int | None = 256,
    ) -> None:
        super().__init__()
        if levels not in LEVELS:
            raise ValueError(f"levels must be one of {LEVELS}; got {levels!r}")
        if gate not in GATE_MODES:
            raise ValueError(f"gate must be one of {GATE_MODES}; got {gate!r}")
        self.levels, self.gate, self.softmax_scale, self.chunk_size = levels, gate, softmax_scale, chunk_size
        self.fuse_deep = DilatedFusion(deep_channels)
        self.fuse_shallow = DilatedFusion(shallow_channels) if levels == "both" else None

    def forward(
        self, deep: Tensor, shallow: Tensor, mask_deep: Tensor, mask_shallow: Tensor, seg_probs: Tensor | None
    ) -> SACAResult:
        if shallow.shape[-2:] != (2 * deep.shape[-2], 2 * deep.shape[-1]):
            raise ValueError(f"shallow map {tuple(shallow.shape)} must be twice the deep map {tuple(deep.shape)}")
        result = semantic_contextual_attention(
            deep, mask_deep, seg_probs if self.gate != "none" else None, self.gate, self.softmax_scale, self.chunk_size
        )
        filled = attention_transfer(result.attention, deep, mask_deep)  # (B, C_d, h, w), 3x3 patches
        deep_out = mask_deep * self.fuse_deep(filled) + (1 - mask_deep) * deep
        shallow_out = shallow
        if self.fuse_shallow is not None:
            filled = attention_transfer(result.attention, shallow, mask_shallow)  # 4x4 stride 2 [official code]
            shallow_out = mask_shallow * self.fuse_shallow(filled) + (1 - mask_shallow) * shallow
        return SACAResult(deep_out, shallow_out, result.attention, result.fallback_count)

    def extra_repr(self) -> str:
        return f"levels={self.levels!r}, gate={self.gate!r}, softmax_scale={self.softmax_scale}"


class SACAOutput(NamedTuple):
    """Generator output: image (B, 3, H, W) in [0, 1], seg_logits (B, K, H/4, W/4), attention
    (B, L, L) on the H/4 grid, fallback_count (B,)."""

    image: Tensor
    seg_logits: Tensor
    attention: Tensor
    fallback_count: Tensor


def conv_elu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Conv (padding keeps H/stride) + ELU."""
    padding = dilation * (kernel - 1) // 2 if stride == 1 else (kernel - stride) // 2
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation=dilation), nn.ELU())


class SACAGenerator(nn.Module):
    """Encoder-decoder with a segmentation head and SACA between them [our reconstruction].

    (B, 3, H, W) masked image in [0, 1] + (B, 1, H, W) mask -> :class:`SACAOutput`; H, W divisible by 4.
    Encoder: full res (cnum) -> shallow map H/2 (2 cnum) -> deep map H/4 (4 cnum, two dilated convs);
    the segmentation head reads the deep map and gives the gate; SACA fills both maps' holes; the
    decoder upsamples (nearest + conv) with the shallow map and the full-res map as skips.
    """

    def __init__(
        self, cnum: int = 16, num_classes: int = NUM_CLASSES, levels: str = "both", gate: str = "hard",
        softmax_scale: float = 10.0, chunk_size: int | None = 256,
    ) -> None:
        super().__init__()
        self.enc_full = conv_elu(4, cnum)
        self.enc_shallow = conv_elu(cnum, 2 * cnum, 4, 2)
        self.enc_deep = nn.Sequential(
            conv_elu(2 * cnum, 4 * cnum, 4, 2), conv_elu(4 * cnum, 4 * cnum, dilation=2), conv_elu(4 * cnum, 4 * cnum, dilation=4)
        )
        self.seg_head = nn.Sequential(conv_elu(4 * cnum, 4 * cnum), nn.Conv2d(4 * cnum, num_classes, 1))
        self.saca = SACA(4 * cnum, 2 * cnum, levels, gate, softmax_scale, chunk_size)
        self.dec_deep = conv_elu(4 * cnum, 2 * cnum)
        self.dec_shallow = conv_elu(4 * cnum, 2 * cnum)
        self.dec_up = conv_elu(2 * cnum, cnum)
        self.to_image = nn.Sequential(conv_elu(2 * cnum, cnum), nn.Conv2d(cnum, 3, 3, padding=1))

    def forward(self, image: Tensor, mask: Tensor) -> SACAOutput:
        check_mask(mask, image)
        height, width = image.shape[-2:]
        if height % 4 or width % 4:
            raise ValueError(f"image size {height}x{width} must be divisible by 4")
        x = torch.cat([(image * 2 - 1) * (1 - mask), mask], dim=1)  # (B, 4, H, W), hole = 0
        full = self.enc_full(x)  # (B, c, H, W)
        shallow = self.enc_shallow(full)  # (B, 2c, H/2, W/2)
        deep = self.enc_deep(shallow)  # (B, 4c, H/4, W/4)
        seg_logits = self.seg_head(deep)  # (B, K, H/4, W/4)
        mask_shallow = downsample_mask(mask, shallow.shape[-2:])
        mask_deep = downsample_mask(mask, deep.shape[-2:])
        saca = self.saca(deep, shallow, mask_deep, mask_shallow, seg_logits.softmax(1))
        up = F.interpolate(self.dec_deep(saca.deep), scale_factor=2.0, mode="nearest")  # (B, 2c, H/2, W/2)
        h = self.dec_shallow(torch.cat([up, saca.shallow], dim=1))  # (B, 2c, H/2, W/2)
        h = self.dec_up(F.interpolate(h, scale_factor=2.0, mode="nearest"))  # (B, c, H, W)
        out = self.to_image(torch.cat([h, full], dim=1))  # (B, 3, H, W)
        return SACAOutput((torch.tanh(out) + 1) / 2, seg_logits, saca.attention, saca.fallback_count)


class SACAInpainter(SACAGenerator):
    """``SACAGenerator`` whose ``forward(masked (B,3,H,W), mask (B,1,H,W))`` returns only the image
    (B,3,H,W). Same state-dict keys as the generator."""

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        return super().forward(image, mask).image


class SACAMethod(Method):
    """hole_weight L1_hole + valid_weight L1_valid + seg_weight CE(seg head, labels at H/4)
    [+ adv_weight hinge GAN with a patch critic] [our reconstruction; weights are placeholders]."""

    def __init__(
        self, cnum: int = 16, levels: str = "both", gate: str = "hard", hole_weight: float = 6.0,
        valid_weight: float = 1.0, seg_weight: float = 1.0, adv_weight: float = 0.0, lr: float = 1e-3,
        num_classes: int = NUM_CLASSES, chunk_size: int | None = 256,
    ) -> None:
        super().__init__()
        self.generator = SACAGenerator(cnum, num_classes, levels, gate, chunk_size=chunk_size)
        self.discriminator = PatchDiscriminator(in_channels=4) if adv_weight > 0 else None
        self.num_classes = num_classes
        self.hole_weight, self.valid_weight, self.seg_weight = hole_weight, valid_weight, seg_weight
        self.adv_weight, self.lr = adv_weight, lr

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"g": torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=(0.5, 0.999))}
        if self.discriminator is not None:
            opts["d"] = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr, betas=(0.5, 0.999))
        return opts

    def training_step(self, batch: dict[str, Tensor], update: UpdateFn) -> None:
        image, mask, labels = batch["image"], batch["mask"], batch["labels"]
        out = self.generator(image * (1 - mask), mask)
        target = downsample_labels(labels, out.seg_logits.shape[-2:], self.num_classes)  # (B, H/4, W/4)
        terms = {
            "l1_hole": self.hole_weight * hole_l1(out.image, image, mask),
            "l1_valid": self.valid_weight * valid_l1(out.image, image, mask),
            "seg_ce": self.seg_weight * F.cross_entropy(out.seg_logits, target),
        }
        if self.discriminator is not None:
            composed = mask * out.image + (1 - mask) * image
            terms["adv"] = self.adv_weight * mask_conditioned_hinge(self.discriminator, image, composed, mask, update)
        update("g", terms)

    @torch.no_grad()
    def inpaint(self, image: Tensor, mask: Tensor) -> Tensor:
        return self.generator(image, mask).image
