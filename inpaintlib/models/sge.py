"""SGE-Net (Liao et al., ECCV 2020): semantic guidance and evaluation, scale by scale.

What the paper states [paper]: segmentation and inpainting are solved together and updated in turn.
At every decoder scale the network predicts a segmentation of the scene; the Semantic Guidance
Module (SGM) uses it to guide the inpainting features, and the Segmentation Confidence Evaluation
Module (SCEM) judges where that segmentation is unreliable; those regions go back into the hole and
are inferred again at the next, finer scale. Losses: L1 on the image, cross-entropy on the
segmentation, adversarial. No official code exists.

Everything below the module names and their roles is [our reconstruction]:

- Encoder to ``size / 2^(L-1)``; decoder levels back to full size. The last ``num_scales`` levels
  are *output scales*: each predicts an image and K class logits. A segmentation head on the
  bottleneck gives the guidance for the first output scale.
- SGM: ``inpaintlib.nn.spade.SGMBlock`` (two SPADE units, residual) driven by the previous scale's
  soft segmentation ``softmax(Z)``; without SGM the same block with plain affine instance norm.
- SCEM (``scem_update``): confidence ``c = max_k softmax(Z)_k``; in the current hole the pixels below
  the ``floor(q |H|)``-th smallest confidence stay missing, the rest are accepted; known pixels are
  never re-masked; no gradient.
- Each output scale gets a *context*: the known pixels plus the previous scale's prediction where
  SCEM accepted it, and the hole it still has to fill. It predicts every pixel of the image (the last
  scale's prediction is the output), so accepted pixels are context it may keep, not pasted
  low-resolution pixels.
- Masks go to coarse scales by max-pooling (a coarse pixel is missing if any of its fine pixels is),
  so the coarse hole covers the fine one and every fine hole pixel has a coarse prediction.
- Losses per output scale, averaged over scales: ``hole_weight * L1_hole + valid_weight * L1_valid``
  against the average-pooled image, ``seg_weight * CE`` against nearest-resized labels (also on the
  bottleneck head), and ``adv_weight`` times a hinge loss of one patch critic per scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from inpaintlib.checks import check_image
from inpaintlib.data.scenes import NUM_CLASSES
from inpaintlib.losses import hinge_d_loss, hinge_g_loss, hole_l1, valid_l1
from inpaintlib.masks import check_mask
from inpaintlib.models.unet import DownBlock, UpBlock
from inpaintlib.nn.discriminators import PatchDiscriminator
from inpaintlib.nn.spade import SGMBlock
from inpaintlib.train import Method, UpdateFn


def segmentation_confidence(prob: torch.Tensor) -> torch.Tensor:
    """Pixel-wise confidence ``c = max_k P_k``: ``(B,K,H,W)`` -> ``(B,1,H,W)`` [paper: SCEM's input]."""
    if prob.ndim != 4:
        raise ValueError(f"prob must have shape (B, K, H, W), got {tuple(prob.shape)}")
    return prob.amax(dim=1, keepdim=True)


@torch.no_grad()
def scem_update(prob: torch.Tensor, mask: torch.Tensor, q: float) -> torch.Tensor:
    """SCEM: the part of the hole whose segmentation is unreliable, ``(B,1,H,W)`` in {0, 1}.

    ``prob`` ``(B,K,H,W)`` class probabilities, ``mask`` ``(B,1,H,W)`` the current hole (1 = missing).
    Per image, with ``H`` the hole and ``c`` the confidence: sort ``c`` over ``H`` ascending,
    ``tau`` = the value at 0-based rank ``floor(q |H|)`` (``+inf`` when that rank is ``|H|``), and
    ``M'(p) = 1 iff p in H and c(p) < tau`` [our reconstruction of SCEM]. With distinct confidences
    exactly ``floor(q |H|)`` pixels stay missing; ties at ``tau`` are accepted. Detached.
    """
    check_mask(mask)
    if prob.ndim != 4 or prob.shape[0] != mask.shape[0] or prob.shape[-2:] != mask.shape[-2:]:
        raise ValueError(f"prob must be (B, K, H, W) matching mask {tuple(mask.shape)}, got {tuple(prob.shape)}")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    conf = segmentation_confidence(prob.detach().float()).flatten(1)  # (B, HW)
    hole = mask.flatten(1) > 0  # (B, HW)
    ranked = torch.where(hole, conf, torch.full_like(conf, math.inf)).sort(dim=1).values  # hole values first
    count = hole.sum(dim=1)  # |H|, (B,)
    rank = torch.floor(q * count.double()).long()  # floor(q |H|), (B,)
    picked = ranked.gather(1, rank.clamp(max=conf.shape[1] - 1)[:, None])[:, 0]
    tau = torch.where(rank < count, picked, torch.full_like(picked, math.inf))  # (B,)
    unreliable = hole & (conf < tau[:, None])  # known pixels: hole is False, never re-masked
    return unreliable.to(mask.dtype).view_as(mask)


def downsample_mask(mask: torch.Tensor, size: int) -> torch.Tensor:
    """``(B,1,H,W)`` -> ``(B,1,size,size)`` by max-pooling: a coarse pixel is missing if any fine one is."""
    return mask if mask.shape[-1] == size else F.adaptive_max_pool2d(mask, size)


def downsample_image(image: torch.Tensor, size: int) -> torch.Tensor:
    """``(B,C,H,W)`` -> ``(B,C,size,size)`` by average pooling."""
    return image if image.shape[-1] == size else F.adaptive_avg_pool2d(image, size)


def downsample_labels(labels: torch.Tensor, size: int) -> torch.Tensor:
    """``(B,H,W)`` long -> ``(B,size,size)``: the label at the centre of each block."""
    if labels.shape[-1] == size:
        return labels
    return F.interpolate(labels[:, None].float(), size=(size, size), mode="nearest-exact")[:, 0].long()


def next_scale_hole(remasked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The hole of the next (2x finer) scale: SCEM's ``(B,1,r,r)`` upsampled nearest, inside the original hole.

    ``mask`` is the full-resolution original hole ``(B,1,H,W)``; pixels known there stay known.
    """
    size = 2 * remasked.shape[-1]
    return F.interpolate(remasked, size=(size, size), mode="nearest") * downsample_mask(mask, size)


def mask_cascade(probs: Sequence[torch.Tensor], mask: torch.Tensor, q: float) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """SCEM across scales on fixed probabilities: ``(holes, remasked)``, one ``(B,1,r_s,r_s)`` per scale.

    ``probs[s]`` ``(B,K,r_s,r_s)`` with ``r_{s+1} = 2 r_s``; ``holes[s]`` is what scale ``s`` had to
    fill, ``remasked[s] = scem_update(probs[s], holes[s], q)``. This is the generator's mask schedule
    with its probabilities held fixed (for the q slider).
    """
    hole = downsample_mask(mask, probs[0].shape[-1])
    holes, remasked = [], []
    for s, prob in enumerate(probs):
        if s > 0:
            hole = next_scale_hole(remasked[-1], mask)
        holes.append(hole)
        remasked.append(scem_update(prob, hole, q))
    return holes, remasked


class PlainResBlock(nn.Module):
    """``x + conv(ReLU(IN(conv(ReLU(IN(x))))))`` with affine instance norm: the SGM block without guidance."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1, self.conv1 = nn.InstanceNorm2d(channels, affine=True), nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2, self.conv2 = nn.InstanceNorm2d(channels, affine=True), nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.norm2(self.conv1(F.relu(self.norm1(x))))))


@dataclass
class SGEOutput:
    """Everything one forward pass computed; lists run over output scales, coarse to fine.

    ``images[s]`` ``(B,3,r,r)`` (the last one, ``image``, is the final prediction); ``logits[s]`` ``(B,K,r,r)``;
    ``coarse_logits`` ``(B,K,h,w)`` of the bottleneck head (guidance of the first scale); ``holes[s]``
    ``(B,1,r,r)`` the hole scale ``s`` filled; ``remasked[s]`` SCEM's verdict on it; ``contexts[s]``
    ``(B,3,r,r)`` the context image scale ``s`` saw (0 in its hole).
    """

    images: list[torch.Tensor]
    logits: list[torch.Tensor]
    coarse_logits: torch.Tensor
    holes: list[torch.Tensor]
    remasked: list[torch.Tensor]
    contexts: list[torch.Tensor]

    @property
    def image(self) -> torch.Tensor:
        """The finest scale's prediction ``(B,3,H,W)``: the output of the generator."""
        return self.images[-1]

    @property
    def probs(self) -> list[torch.Tensor]:
        return [z.softmax(dim=1) for z in self.logits]


class SGEGenerator(nn.Module):
    """Multi-scale inpainting generator with per-scale segmentation, SGM guidance and SCEM re-masking.

    ``channels = (c_0, ..., c_{L-1})``: ``c_0`` at full size, ``c_{L-1}`` at the bottleneck
    ``size / 2^(L-1)``. ``num_scales`` (1 .. L-1) output scales: the finest ``num_scales`` decoder
    levels (64 px, 3 scales: 16, 32, 64). ``q``: SCEM's fraction of each hole sent back.
    """

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 64, 64),
        num_scales: int = 3,
        num_classes: int = NUM_CLASSES,
        use_sgm: bool = True,
        use_scem: bool = True,
        q: float = 0.5,
        sgm_hidden: int = 32,
    ):
        super().__init__()
        self.channels = tuple(channels)
        levels = len(self.channels) - 1
        if levels < 1:
            raise ValueError(f"channels needs at least 2 entries, got {self.channels}")
        if not 1 <= num_scales <= levels:
            raise ValueError(f"num_scales must be in [1, {levels}] for {len(self.channels)} channel levels, got {num_scales}")
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q}")
        self.num_scales, self.num_classes = num_scales, num_classes
        self.use_sgm, self.use_scem, self.q = use_sgm, use_scem, q
        c = self.channels
        self.stem = nn.Sequential(nn.Conv2d(4, c[0], 3, padding=1), nn.LeakyReLU(0.2))  # (B, c0, H, W)
        self.down = nn.ModuleList(DownBlock(c[i], c[i + 1], "instance") for i in range(levels))
        self.coarse_head = nn.Conv2d(c[-1], num_classes, 1)  # bottleneck segmentation
        # Decoder level i (i = levels-1 .. 0) works at size / 2^i; output scales are i < num_scales.
        self.up, self.fuse, self.guide = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.seg_heads, self.image_heads = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(levels)):
            output = i < num_scales
            self.up.append(UpBlock(c[i + 1], c[i], "instance"))
            extra = 4 if output else 0  # context image (3) + its hole (1)
            self.fuse.append(nn.Sequential(nn.Conv2d(2 * c[i] + extra, c[i], 3, padding=1), nn.InstanceNorm2d(c[i], affine=True), nn.ReLU()))
            self.guide.append(SGMBlock(c[i], num_classes, sgm_hidden) if output and use_sgm else PlainResBlock(c[i]))
            if output:
                self.seg_heads.append(nn.Conv2d(c[i], num_classes, 1))
                self.image_heads.append(nn.Conv2d(c[i], 3, 3, padding=1))

    @property
    def stride(self) -> int:
        return 2 ** (len(self.channels) - 1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B,3,H,W)`` image in [0,1] (hole content ignored), ``(B,1,H,W)`` mask -> ``(B,3,H,W)`` prediction."""
        return self.forward_scales(image, mask).image

    def forward_scales(self, image: torch.Tensor, mask: torch.Tensor, q: float | None = None) -> SGEOutput:
        """Like ``forward`` but returns every scale's outputs (``SGEOutput``).

        ``q`` overrides the SCEM quantile of this pass (default ``self.q``).
        """
        check_image(image)
        check_mask(mask, image)
        size = image.shape[-1]
        if image.shape[-2] != size or size % self.stride:
            raise ValueError(f"image must be square with a side divisible by {self.stride}, got {tuple(image.shape[-2:])}")
        q = self.q if q is None else q
        known = image * (1 - mask)  # (B, 3, H, W)
        h = self.stem(torch.cat([(known * 2 - 1) * (1 - mask), mask], dim=1))
        skips = [h]
        for block in self.down:
            h = block(h)
            skips.append(h)
        coarse_logits = self.coarse_head(h)  # (B, K, size / stride, ...)
        guidance = coarse_logits.softmax(dim=1)
        out = SGEOutput([], [], coarse_logits, [], [], [])
        levels = len(self.channels) - 1
        for j, i in enumerate(reversed(range(levels))):  # j-th decoder module, level i at size / 2^i
            h = self.up[j](h)
            r = h.shape[-1]
            inputs = [h, skips[i]]
            if i < self.num_scales:
                hole, context = self._context(known, mask, r, out)
                inputs += [(context * 2 - 1) * (1 - hole), hole]
                out.holes.append(hole)
                out.contexts.append(context)
            h = self.fuse[j](torch.cat(inputs, dim=1))  # (B, c_i, r, r)
            if i >= self.num_scales:
                h = self.guide[j](h)
                continue
            h = self.guide[j](h, guidance) if self.use_sgm else self.guide[j](h)  # SGM [paper: role]
            logits = self.seg_heads[len(out.logits)](h)  # (B, K, r, r)
            pred = (torch.tanh(self.image_heads[len(out.images)](h)) + 1) / 2  # (B, 3, r, r)
            guidance = logits.softmax(dim=1)
            remasked = scem_update(guidance, hole, q) if self.use_scem else hole  # SCEM [paper: role]
            out.logits.append(logits)
            out.images.append(pred)
            out.remasked.append(remasked)
        return out

    @staticmethod
    def _context(known: torch.Tensor, mask: torch.Tensor, r: int, out: SGEOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """The hole ``(B,1,r,r)`` this scale fills and its context image ``(B,3,r,r)`` (0 in the hole)."""
        original = downsample_mask(mask, r)  # (B, 1, r, r)
        base = downsample_image(known, r) * (1 - original)  # fully known blocks only
        if not out.remasked:
            return original, base
        hole = next_scale_hole(out.remasked[-1], mask)
        accepted = F.interpolate(out.images[-1].detach(), size=(r, r), mode="nearest")  # previous prediction
        context = (base + original * accepted) * (1 - hole)
        return hole, context


class SGEMethod(Method):
    """SGE-Net training: per-scale L1 (hole/valid), segmentation cross-entropy, hinge adversarial.

    Switches for the ablations: ``use_sgm`` (semantic guidance), ``use_scem`` (mask updates),
    ``num_scales`` (1 = single scale).
    """

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 64, 64),
        num_scales: int = 3,
        use_sgm: bool = True,
        use_scem: bool = True,
        q: float = 0.5,
        sgm_hidden: int = 32,
        hole_weight: float = 6.0,
        valid_weight: float = 1.0,
        seg_weight: float = 0.5,
        adv_weight: float = 0.0,
        disc_channels: Sequence[int] = (32, 64, 128),
        lr: float = 2e-4,
        num_classes: int = NUM_CLASSES,
    ):
        super().__init__()
        self.generator = SGEGenerator(channels, num_scales, num_classes, use_sgm, use_scem, q, sgm_hidden)
        self.discriminators = (
            nn.ModuleList(PatchDiscriminator(4, disc_channels) for _ in range(num_scales)) if adv_weight > 0 else None
        )
        self.hole_weight, self.valid_weight, self.seg_weight, self.adv_weight = hole_weight, valid_weight, seg_weight, adv_weight
        self.lr = lr

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"g": torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=(0.5, 0.999))}
        if self.discriminators is not None:
            opts["d"] = torch.optim.Adam(self.discriminators.parameters(), lr=self.lr, betas=(0.5, 0.999))
        return opts

    def training_step(self, batch: dict[str, torch.Tensor], update: UpdateFn) -> None:
        image, mask, labels = batch["image"], batch["mask"], batch["labels"]
        out = self.generator.forward_scales(image * (1 - mask), mask)
        n = len(out.images)
        coarse = out.coarse_logits
        terms = {"l1_hole": 0.0, "l1_valid": 0.0, "seg_ce": F.cross_entropy(coarse, downsample_labels(labels, coarse.shape[-1]))}
        composed = []
        for pred, logits in zip(out.images, out.logits):
            r = pred.shape[-1]
            target, hole = downsample_image(image, r), downsample_mask(mask, r)
            terms["l1_hole"] = terms["l1_hole"] + hole_l1(pred, target, hole) / n
            terms["l1_valid"] = terms["l1_valid"] + valid_l1(pred, target, hole) / n
            terms["seg_ce"] = terms["seg_ce"] + F.cross_entropy(logits, downsample_labels(labels, r))
            composed.append((torch.cat([hole * pred + (1 - hole) * target, hole], 1), torch.cat([target, hole], 1)))
        terms = {
            "l1_hole": self.hole_weight * terms["l1_hole"],
            "l1_valid": self.valid_weight * terms["l1_valid"],
            "seg_ce": self.seg_weight * terms["seg_ce"] / (n + 1),
        }
        if self.discriminators is not None:
            d_loss = sum(hinge_d_loss(d(real), d(fake.detach())) for d, (fake, real) in zip(self.discriminators, composed))
            update("d", {"hinge": d_loss / n})
            terms["adv"] = self.adv_weight * sum(hinge_g_loss(d(fake)) for d, (fake, _) in zip(self.discriminators, composed)) / n
        update("g", terms)

    @torch.no_grad()
    def inpaint(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.generator(image, mask)
