"""Inpainting guided by coherence priors of semantics and textures (Liao et al., CVPR 2021).

Known from the paper **[paper]**: a shared trunk whose decoder has, at every scale, an image
head and a segmentation head that jointly constrain the shared features; SWAP (semantic-wise
attention propagation) between scales, borrowing texture only from regions of the same class and
refining it scale by scale; a structure coherence loss (two conditional discriminators D_t, D_s) and
a non-local patch coherence loss. No official code exists and the method sections could not be read,
so the modules are **[our reconstruction]**:

- SWAP: semantic-gated contextual attention (:mod:`inpaintlib.attention.semantic`) computed on the
  decoder features of scale s with the gate from that scale's segmentation head, propagated to the
  next finer scale s+1 by PEN-Net's attention transfer (4x4 patches, stride 2, / 4) **[official code]**,
  written into the hole only, then fused (four dilated 3x3 branches, or one 3x3 conv);
- the network: an encoder to H/4, a decoder with scales H/4, H/2, H, an image head and a
  segmentation head at each; SWAP after the first ``swap_levels`` upsamplings;
- losses (:mod:`inpaintlib.losses_coherence`): L1 (hole 6, valid 1) and cross-entropy at every scale,
  structure coherence (0.1 per discriminator) and non-local patch coherence (1); placeholder weights.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from inpaintlib.attention.semantic import (
    GATE_MODES,
    DilatedFusion,
    attention_transfer,
    downsample_labels,
    downsample_mask,
    semantic_contextual_attention,
)
from inpaintlib.data.scenes import NUM_CLASSES
from inpaintlib.losses import hole_l1, valid_l1
from inpaintlib.losses_coherence import (
    NONLOCAL_MODES,
    nonlocal_coherence_loss,
    structure_coherence_d_losses,
    structure_coherence_g_losses,
)
from inpaintlib.masks import check_mask
from inpaintlib.models.saca import conv_elu
from inpaintlib.nn.discriminators import PatchDiscriminator
from inpaintlib.train import Method, UpdateFn

__all__ = [
    "FUSIONS",
    "SWAP",
    "CoherenceEncoder",
    "CoherenceGenerator",
    "CoherenceInpainter",
    "CoherenceMethod",
    "CoherenceOutput",
    "SWAPResult",
]

FUSIONS = ("dilated", "conv")


class SWAPResult(NamedTuple):
    """fine: (B, C, 2h, 2w) features with the hole filled; attention: (B, L, L) on the coarse h x w grid;
    fallback_count: (B,) coarse hole positions without a same-class source."""

    fine: Tensor
    attention: Tensor
    fallback_count: Tensor


class SWAP(nn.Module):
    """Semantic-wise attention propagation from scale s (h x w) to scale s+1 (2h x 2w) [our reconstruction].

    a = semantic_contextual_attention(F^s, M^s, P^s) (gate ``hard`` | ``soft`` | ``none``);
    F^{s+1}' = M^{s+1} fuse(M^{s+1} paste(a, 4x4 patches of F^{s+1}) + (1 - M^{s+1}) F^{s+1}) + (1 - M^{s+1}) F^{s+1}.
    """

    def __init__(
        self, fine_channels: int, gate: str = "hard", fusion: str = "dilated", softmax_scale: float = 10.0,
        chunk_size: int | None = 256,
    ) -> None:
        super().__init__()
        if gate not in GATE_MODES:
            raise ValueError(f"gate must be one of {GATE_MODES}; got {gate!r}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}; got {fusion!r}")
        self.gate, self.softmax_scale, self.chunk_size = gate, softmax_scale, chunk_size
        if fusion == "dilated":
            self.fuse = DilatedFusion(fine_channels)
        else:
            self.fuse = nn.Sequential(nn.Conv2d(fine_channels, fine_channels, 3, padding=1), nn.ReLU())

    def forward(
        self, coarse: Tensor, coarse_mask: Tensor, seg_probs: Tensor | None, fine: Tensor, fine_mask: Tensor
    ) -> SWAPResult:
        """coarse: (B, C_s, h, w); coarse_mask: (B, 1, h, w); seg_probs: (B, K, h, w); fine: (B, C, 2h, 2w)."""
        if fine.shape[-2:] != (2 * coarse.shape[-2], 2 * coarse.shape[-1]):
            raise ValueError(f"fine map {tuple(fine.shape)} must be twice the coarse map {tuple(coarse.shape)}")
        result = semantic_contextual_attention(
            coarse, coarse_mask, seg_probs if self.gate != "none" else None, self.gate, self.softmax_scale, self.chunk_size
        )
        filled = attention_transfer(result.attention, fine, fine_mask)  # (B, C, 2h, 2w), step 5-6
        fine_out = fine_mask * self.fuse(filled) + (1 - fine_mask) * fine
        return SWAPResult(fine_out, result.attention, result.fallback_count)

    def extra_repr(self) -> str:
        return f"gate={self.gate!r}, softmax_scale={self.softmax_scale}"


class CoherenceEncoder(nn.Module):
    """Shared trunk: (B, 4, H, W) -> features at H (cnum), H/2 (2 cnum) and H/4 (4 cnum, dilated convs)."""

    def __init__(self, cnum: int) -> None:
        super().__init__()
        self.to_full = conv_elu(4, cnum)
        self.to_half = conv_elu(cnum, 2 * cnum, 4, 2)
        self.to_quarter = nn.Sequential(
            conv_elu(2 * cnum, 4 * cnum, 4, 2), conv_elu(4 * cnum, 4 * cnum, dilation=2), conv_elu(4 * cnum, 4 * cnum, dilation=4)
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        full = self.to_full(x)
        half = self.to_half(full)
        return full, half, self.to_quarter(half)


class CoherenceOutput(NamedTuple):
    """images: [(B, 3, H/4, W/4), (B, 3, H/2, W/2), (B, 3, H, W)] in [0, 1], coarse to fine;
    seg_logits: [(B, K, ...)] at the same scales; attentions: one (B, L, L) per SWAP level;
    fallback_count: (B,) summed over SWAP levels."""

    images: list[Tensor]
    seg_logits: list[Tensor]
    attentions: list[Tensor]
    fallback_count: Tensor


class CoherenceGenerator(nn.Module):
    """Multi-scale joint network: an image head and a segmentation head at every decoder scale, SWAP
    between scales [our reconstruction]. (B, 3, H, W) masked image + (B, 1, H, W) mask -> CoherenceOutput.

    Decoder scales H/4 (the trunk output), H/2 and H. SWAP level 1 computes attention on the H/4
    features (gate from the H/4 segmentation head) and fills the H/2 features; with ``swap_levels=2``
    a second SWAP computes attention on the filled H/2 features and fills the H features.
    """

    def __init__(
        self, cnum: int = 16, num_classes: int = NUM_CLASSES, gate: str = "hard", swap_levels: int = 1,
        fusion: str = "dilated", softmax_scale: float = 10.0, chunk_size: int | None = 256,
    ) -> None:
        super().__init__()
        if swap_levels not in (1, 2):
            raise ValueError(f"swap_levels must be 1 or 2; got {swap_levels!r}")
        widths = (4 * cnum, 2 * cnum, cnum)  # decoder scales H/4, H/2, H
        self.encoder = CoherenceEncoder(cnum)
        self.decode = nn.ModuleList([conv_elu(widths[0] + widths[1], widths[1]), conv_elu(widths[1] + widths[2], widths[2])])
        self.image_heads = nn.ModuleList(nn.Sequential(conv_elu(c, c), nn.Conv2d(c, 3, 3, padding=1)) for c in widths)
        self.seg_heads = nn.ModuleList(nn.Sequential(conv_elu(c, c), nn.Conv2d(c, num_classes, 1)) for c in widths)
        self.swaps = nn.ModuleList(
            SWAP(widths[level + 1], gate, fusion, softmax_scale, chunk_size) for level in range(swap_levels)
        )

    def forward(self, image: Tensor, mask: Tensor) -> CoherenceOutput:
        check_mask(mask, image)
        height, width = image.shape[-2:]
        if height % 4 or width % 4:
            raise ValueError(f"image size {height}x{width} must be divisible by 4")
        x = torch.cat([(image * 2 - 1) * (1 - mask), mask], dim=1)  # (B, 4, H, W), hole = 0
        full, half, features = self.encoder(x)
        skips = (half, full)
        images, seg_logits, attentions, fallback = [], [], [], torch.zeros(image.shape[0], dtype=torch.long, device=image.device)
        for scale in range(3):  # H/4, H/2, H
            seg = self.seg_heads[scale](features)  # (B, K, h_s, w_s)
            images.append((torch.tanh(self.image_heads[scale](features)) + 1) / 2)
            seg_logits.append(seg)
            if scale == 2:
                break
            fine = self.decode[scale](torch.cat([F.interpolate(features, scale_factor=2.0, mode="nearest"), skips[scale]], 1))
            if scale < len(self.swaps):
                coarse_mask = downsample_mask(mask, features.shape[-2:])
                fine_mask = downsample_mask(mask, fine.shape[-2:])
                swap = self.swaps[scale](features, coarse_mask, seg.softmax(1), fine, fine_mask)
                fine = swap.fine
                attentions.append(swap.attention)
                fallback = fallback + swap.fallback_count
            features = fine
        return CoherenceOutput(images, seg_logits, attentions, fallback)


class CoherenceInpainter(CoherenceGenerator):
    """``CoherenceGenerator`` whose ``forward(masked (B,3,H,W), mask (B,1,H,W))`` returns only the finest
    image (B,3,H,W). Same state-dict keys as the generator."""

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        return super().forward(image, mask).images[-1]


class CoherenceMethod(Method):
    """Training recipe [our reconstruction, with placeholder weights of ours, not the paper's]:

    sum over scales (hole_weight L1_hole + valid_weight L1_valid + seg_weight CE)
    + structure_weight (-E[D_t(Î, S)] - E[D_s(Ŝ, Î)]) + nonlocal_weight L_nonlocal(φ(Î), φ(I)).

    φ is the generator's own encoder at H/4 applied to the full image with its weights detached, so the
    texture loss moves the image, not the features (a trainable φ could make all affinities equal).
    ``structure_weight=0`` / ``nonlocal_weight=0`` switch a loss off; ``gate="none"`` is the ungated ablation.
    """

    def __init__(
        self, cnum: int = 16, gate: str = "hard", swap_levels: int = 1, fusion: str = "dilated",
        hole_weight: float = 6.0, valid_weight: float = 1.0, seg_weight: float = 1.0, structure_weight: float = 0.1,
        nonlocal_weight: float = 1.0, nonlocal_mode: str = "affinity", lr: float = 1e-3, num_classes: int = NUM_CLASSES,
        chunk_size: int | None = 256,
    ) -> None:
        super().__init__()
        if nonlocal_mode not in NONLOCAL_MODES:
            raise ValueError(f"nonlocal_mode must be one of {NONLOCAL_MODES}; got {nonlocal_mode!r}")
        self.generator = CoherenceGenerator(cnum, num_classes, gate, swap_levels, fusion, chunk_size=chunk_size)
        critic_channels = (cnum, 2 * cnum, 4 * cnum)  # narrow critics for the CPU budget [our choice]
        self.d_t = PatchDiscriminator(3 + num_classes, critic_channels) if structure_weight > 0 else None
        self.d_s = PatchDiscriminator(num_classes + 3, critic_channels) if structure_weight > 0 else None
        self.num_classes, self.lr = num_classes, lr
        self.hole_weight, self.valid_weight, self.seg_weight = hole_weight, valid_weight, seg_weight
        self.structure_weight, self.nonlocal_weight, self.nonlocal_mode = structure_weight, nonlocal_weight, nonlocal_mode

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"g": torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=(0.5, 0.999))}
        if self.d_t is not None:
            critics = list(self.d_t.parameters()) + list(self.d_s.parameters())
            opts["d"] = torch.optim.Adam(critics, lr=self.lr, betas=(0.5, 0.999))
        return opts

    def phi(self, image: Tensor) -> Tensor:
        """φ(X): the encoder's H/4 features of the unmasked image, weights detached: (B, 3, H, W) -> (B, 4c, H/4, W/4)."""
        encoder = self.generator.encoder
        frozen = {name: value.detach() for name, value in encoder.named_parameters()}
        x = torch.cat([image * 2 - 1, torch.zeros_like(image[:, :1])], dim=1)
        return functional_call(encoder, frozen, (x,))[2]

    def training_step(self, batch: dict[str, Tensor], update: UpdateFn) -> None:
        image, mask, labels = batch["image"], batch["mask"], batch["labels"]
        out = self.generator(image * (1 - mask), mask)
        terms: dict[str, Tensor] = {}
        for scale, (pred, seg) in enumerate(zip(out.images, out.seg_logits)):
            size = pred.shape[-2:]
            target = F.adaptive_avg_pool2d(image, size) if size != image.shape[-2:] else image
            scale_mask = downsample_mask(mask, size)
            terms[f"l1_hole_{scale}"] = self.hole_weight * hole_l1(pred, target, scale_mask)
            terms[f"l1_valid_{scale}"] = self.valid_weight * valid_l1(pred, target, scale_mask)
            terms[f"seg_ce_{scale}"] = self.seg_weight * F.cross_entropy(seg, downsample_labels(labels, size, self.num_classes))
        composed = mask * out.images[-1] + (1 - mask) * image  # (B, 3, H, W)
        if self.d_t is not None:
            seg_true = F.one_hot(labels, self.num_classes).permute(0, 3, 1, 2).to(image.dtype)  # (B, K, H, W)
            seg_fake = out.seg_logits[-1].softmax(1)
            update("d", structure_coherence_d_losses(self.d_t, self.d_s, image, composed.detach(), seg_true, seg_fake.detach()))
            g_terms = structure_coherence_g_losses(self.d_t, self.d_s, composed, seg_true, seg_fake)
            terms |= {name: self.structure_weight * value for name, value in g_terms.items()}
        if self.nonlocal_weight > 0:
            phi_fake, phi_real = self.phi(composed), self.phi(image)
            grid = phi_fake.shape[-2:]
            terms["nonlocal"] = self.nonlocal_weight * nonlocal_coherence_loss(
                phi_fake, phi_real.detach(), downsample_labels(labels, grid, self.num_classes),
                downsample_mask(mask, grid), self.nonlocal_mode,
            )
        update("g", terms)

    @torch.no_grad()
    def inpaint(self, image: Tensor, mask: Tensor) -> Tensor:
        return self.generator(image, mask).images[-1]
