"""CSA inpainting (Liu et al., ICCV 2019): a rough U-Net, then a refinement U-Net with the CSA layer.

The pipeline of ``models/CSA.py`` in the official code (https://github.com/KumapowerLIU/CSA-inpainting),
scaled down:

- **rough net** [official code ``netP``, pix2pix U-Net]: :class:`~inpaintlib.models.unet.UNetInpainter`
  on ``image * (1 - mask)`` and the mask; its output fills the hole of the input of
- **refinement net** [official code ``UnetGeneratorCSA``]: a U-Net whose encoder level at
  ``image / csa_stride`` runs an attention slot (``"csa"``, ``"contextual"`` or ``"none"``) on the raw
  convolution output, before the normalisation (pre-norm, signed features, as the official code);
- **consistency loss** [paper] between the CSA output (encoder) and the decoder feature of the same
  level, and the HED-VGG16 features of the ground truth at that resolution (the official code uses
  ImageNet VGG16 relu4_3 at 1/8 of the image; those weights cannot be downloaded here, so the target is
  the last ReLU of the HED-VGG16 block at ``csa_stride``: relu4_3 at stride 8, relu3_3 at stride 4),
  randomly projected to the level's width when the network is narrower (:class:`FeatureTargets`);
- **two critics** [official code]: a patch discriminator on the image and a patch discriminator on the
  HED-VGG16 features, trained with the relativistic average LSGAN loss of the official ``GANLoss``.

Official defects that change what is learned are options, off by default (the book follows the paper's
intent and shows the official behaviour as an option):
``official_consistency_no_grad`` (the official consistency loss is added as a fresh leaf, so it never
reaches the generator), ``official_feature_gan_no_grad`` (the feature critic's generator term is
computed on ``fake_B.data``), ``official_fixed_mask`` (the CSA layer keeps the feature mask of its first
call), and through :class:`~inpaintlib.attention.csa.CoherentSemanticAttention`, ``csa_gradient="official"``
(custom backward with the weights truncated to integers) and ``csa_clamp_weights``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Literal, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlib.attention.contextual import ContextualAttention
from inpaintlib.attention.csa import CoherentSemanticAttention, CSATrace, GradientMode, feature_mask
from inpaintlib.features import VGG16_BLOCKS, HEDVGG16Features
from inpaintlib.masks import check_mask
from inpaintlib.models.unet import UNetInpainter, unet_layers
from inpaintlib.nn.discriminators import PatchDiscriminator
from inpaintlib.train import Method, UpdateFn, load_weights

AttentionKind = Literal["csa", "contextual", "none"]
# HED takes 0..255 inputs (minus the Caffe mean) where the official code fed [-1,1] images to VGG16; for a
# bias-free ReLU network, features scale with the input, so dividing by 127.5 puts HED-VGG16 features on
# roughly the scale of the official consistency target [our reconstruction].
HED_FEATURE_SCALE = 1 / 127.5
ATTENTION_KINDS: tuple[str, ...] = ("csa", "contextual", "none")


def consistency_layer(stride: int) -> tuple[str, int]:
    """HED-VGG16 layer at ``image / stride`` and its channels: the last ReLU of block log2(stride) + 1.

    HED pools before blocks 2-5, so block k runs at ``image / 2**(k-1)``: stride 8 -> ("relu4_3", 512)
    (the layer of the official consistency target), 4 -> ("relu3_3", 256), 2 -> ("relu2_2", 128).
    """
    block = int(math.log2(stride)) + 1 if stride >= 1 else 0
    if stride < 2 or 2 ** (block - 1) != stride or block > len(VGG16_BLOCKS):
        raise ValueError(f"csa_stride must be 2, 4, 8 or 16 (a HED-VGG16 block resolution), got {stride}")
    n_convs, width = VGG16_BLOCKS[block - 1]
    return f"relu{block}_{n_convs}", width


class AttentionSlot(nn.Module):
    """The pluggable attention of the refinement encoder: ``(B,C,h,w), (B,1,h,w) -> (B,C,h,w)``.

    ``"csa"``: :class:`CoherentSemanticAttention`; ``"contextual"``: DeepFill's contextual attention as
    self-attention (``f = b``), ``rate=1`` so that it matches on the same grid as CSA [our reconstruction];
    ``"none"``: identity. Both attentions replace the feature (no residual), as in their official code.
    Attention runs in float32 outside autocast (the CSA recurrence divides by ``D_ad + D_max``).
    A sample whose feature mask is all hole is treated as all known (copied through) [our reconstruction],
    since both attentions need a known position.
    """

    def __init__(
        self,
        kind: AttentionKind = "csa",
        csa_gradient: GradientMode = "autograd",
        csa_clamp_weights: bool = False,
        official_fixed_mask: bool = False,
    ) -> None:
        super().__init__()
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {kind!r}")
        self.kind = kind
        self.official_fixed_mask = official_fixed_mask
        if kind == "csa":
            self.layer: nn.Module = CoherentSemanticAttention(csa_gradient, csa_clamp_weights)
        elif kind == "contextual":
            self.layer = ContextualAttention(ksize=3, stride=1, rate=1, fuse_k=3, softmax_scale=10.0)
        else:
            self.layer = nn.Identity()
        self.register_buffer("first_mask", None, persistent=False)

    def slot_mask(self, mask_feat: Tensor) -> Tensor:
        """The feature mask the attention uses: (B,1,h,w) -> (B,1,h,w).

        With ``official_fixed_mask`` the first sample's mask of the first call, for every later call
        [official code ``CSA_model.py`` l.35-42, ``fixed_mask=1``].
        """
        if self.official_fixed_mask:
            if self.first_mask is None or self.first_mask.shape[-2:] != mask_feat.shape[-2:]:
                self.first_mask = mask_feat[:1].detach().clone()
            mask_feat = self.first_mask.expand_as(mask_feat)
        has_known = (mask_feat < 0.5).flatten(1).any(1)  # (B,)
        return mask_feat * has_known[:, None, None, None].to(mask_feat.dtype)

    def forward(
        self, features: Tensor, mask_feat: Tensor, return_trace: bool = False
    ) -> tuple[Tensor, CSATrace | None]:
        """features (B,C,h,w), mask_feat (B,1,h,w) -> (out (B,C,h,w), CSA trace or None)."""
        if self.kind == "none":
            return features, None
        mask_used = self.slot_mask(mask_feat)
        with torch.autocast(features.device.type, enabled=False):
            x = features.float()
            if self.kind == "csa":
                out = self.layer(x, mask_used, return_trace=return_trace)
                out, trace = out if return_trace else (out, None)
            else:
                out, trace = self.layer(x, x, mask_used), None
        return out.to(features.dtype), trace

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, official_fixed_mask={self.official_fixed_mask}"


class RefinementOutputs(NamedTuple):
    """Refinement U-Net outputs: image (B,3,H,W), CSA-level features (B,C,h,w), the CSA trace or None."""

    image: Tensor
    encoder_feature: Tensor
    decoder_feature: Tensor
    trace: CSATrace | None


class RefinementUNet(nn.Module):
    """U-Net with an attention slot on the raw conv output of encoder level ``attention_level``.

    Level i runs at ``H / 2**(i+1)`` with ``channels[i]`` channels; level i is LeakyReLU -> conv 4x4 s2
    -> [attention at ``attention_level``] -> norm (as :class:`DownBlock`; the official level adds a dilated
    conv and a 3x3 conv, [official code] ``UnetSkipConnectionBlock_3`` in ``models/networks.py``). The decoder mirrors :class:`UNetInpainter`; its feature at the
    attention level (``decoder_feature``, after the up block's norm, before the skip concatenation) is
    the official ``InnerCos2`` tap, the attention output (``encoder_feature``, pre-norm) the ``InnerCos`` tap.
    Output: ``(out + 1) / 2`` of the last conv, no tanh (unbounded, as the official netG).
    """

    def __init__(
        self,
        channels: Sequence[int],
        attention_level: int,
        attention: AttentionSlot,
        norm: str = "instance",
        in_channels: int = 7,
    ) -> None:
        super().__init__()
        self.channels = tuple(channels)
        if not 0 <= attention_level < len(self.channels) - 1:
            raise ValueError(
                f"attention_level must be in [0, {len(self.channels) - 2}] (a level with a decoder twin), "
                f"got {attention_level}"
            )
        self.attention_level = attention_level
        self.attention = attention
        self.down, self.up, self.to_image = unet_layers(self.channels, norm, in_channels)  # as UNetInpainter

    def forward(self, x: Tensor, mask_feat: Tensor, return_trace: bool = False) -> RefinementOutputs:
        """x (B,in,H,W) in about [-1,1], mask_feat (B,1,H/2**(l+1),W/2**(l+1)) -> :class:`RefinementOutputs`."""
        skips, h, trace = [], x, None
        encoder_feature = decoder_feature = x
        for level, block in enumerate(self.down):
            h = block.conv(block.act(h))  # raw conv output (B,C_l,H_l,W_l)
            if level == self.attention_level:
                h, trace = self.attention(h, mask_feat, return_trace)  # pre-norm [official code]
                encoder_feature = h
            h = block.norm(h)
            skips.append(h)
        levels = reversed(range(len(self.channels) - 1))
        for block, skip, level in zip(self.up, reversed(skips[:-1]), levels):
            h = block(h)
            if level == self.attention_level:
                decoder_feature = h
            h = torch.cat([h, skip], dim=1)
        h = self.to_image[1](self.to_image[0](h))
        out = self.to_image[2](torch.cat([h, x], dim=1))  # (B,3,H,W), no tanh [official code]
        return RefinementOutputs((out + 1) / 2, encoder_feature, decoder_feature, trace)


class CSAOutputs(NamedTuple):
    """What :class:`CSAGenerator` computes. Images (B,3,H,W), features (B,C,h,w), feature mask (B,1,h,w)."""

    coarse: Tensor
    refined: Tensor
    encoder_feature: Tensor
    decoder_feature: Tensor
    feature_mask: Tensor
    trace: CSATrace | None


class CSAGenerator(nn.Module):
    """Rough U-Net -> refinement U-Net with an attention slot at ``image / csa_stride``.

    Refinement input (7 channels, [-1,1]): the rough output composed into the known pixels, the masked
    image (hole = 0) and the mask. The official net takes the first 6 [official code]; the mask channel
    is [our choice]. The composed input is detached: refinement gradients do not reach the rough net
    (the official ``Syn`` is built on ``.data``) [official code]. ``rough``: an existing (e.g. trained)
    rough network to use instead of a new ``UNetInpainter(rough_channels, norm)``.
    ``refine_residual``: False (official) reads the refinement output ``out`` as the image ``(out + 1) / 2``;
    True reads it as a correction of the composite, ``composite + out / 2`` [our choice], so that an
    untrained refinement starts from the rough result instead of having to learn to copy it.
    """

    def __init__(
        self,
        rough_channels: Sequence[int] = (64, 128, 256, 512, 512),
        refine_channels: Sequence[int] = (64, 128, 512, 512, 512),
        csa_stride: int = 8,
        attention: AttentionKind = "csa",
        norm: str = "instance",
        csa_gradient: GradientMode = "autograd",
        csa_clamp_weights: bool = False,
        official_fixed_mask: bool = False,
        rough: UNetInpainter | None = None,
        refine_residual: bool = False,
    ) -> None:
        super().__init__()
        consistency_layer(csa_stride)  # validates the stride
        self.refine_residual = refine_residual
        self.csa_stride = csa_stride
        self.rough = UNetInpainter(rough_channels, norm) if rough is None else rough
        slot = AttentionSlot(attention, csa_gradient, csa_clamp_weights, official_fixed_mask)
        self.refine = RefinementUNet(refine_channels, int(math.log2(csa_stride)) - 1, slot, norm)

    @property
    def attention(self) -> AttentionSlot:
        return self.refine.attention

    def forward(self, image: Tensor, mask: Tensor, return_trace: bool = False) -> CSAOutputs:
        """image (B,3,H,W) in [0,1] (its hole is ignored), mask (B,1,H,W) -> :class:`CSAOutputs`."""
        check_mask(mask, image)
        masked = image * (1 - mask)  # (B,3,H,W)
        coarse = self.rough(masked, mask)  # (B,3,H,W) in [0,1]
        composed = (mask * coarse + (1 - mask) * masked).detach()  # Syn on .data [official code]
        x = torch.cat([composed * 2 - 1, (masked * 2 - 1) * (1 - mask), mask], dim=1)  # (B,7,H,W)
        mask_feat = feature_mask(mask, levels=self.refine.attention_level + 1)  # (B,1,h,w) [official code]
        refined = self.refine(x, mask_feat, return_trace)
        image = composed + (refined.image - 0.5) if self.refine_residual else refined.image  # + out / 2
        return CSAOutputs(
            coarse, image, refined.encoder_feature, refined.decoder_feature, mask_feat, refined.trace
        )


class CSAInpainter(CSAGenerator):
    """``CSAGenerator`` whose ``forward(masked (B,3,H,W), mask (B,1,H,W))`` returns only the refined image
    (B,3,H,W) clamped to [0,1], as ``CSAMethod.inpaint``. Same state-dict keys as the generator."""

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        return super().forward(image, mask).refined.clamp(0, 1)


class FeaturePatchDiscriminator(nn.Module):
    """Patch critic on HED-VGG16 features [official code ``PFDiscriminator``]: ``(B,C,h,w) -> (B,1,h/8,w/8)``.

    conv 4x4 s2 -> LeakyReLU(0.2) -> conv 4x4 s2 -> InstanceNorm -> LeakyReLU(0.2) -> conv 4x4 s2.
    The official last conv has 512 output channels; here one logit per patch [our choice].
    """

    def __init__(self, in_channels: int, width: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 4, stride=2, padding=1),
            nn.InstanceNorm2d(width, affine=True),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 1, 4, stride=2, padding=1),
        )

    def forward(self, features: Tensor) -> Tensor:
        if features.ndim != 4 or min(features.shape[-2:]) < 8:
            raise ValueError(f"features must be (B,C,h,w) with h, w >= 8, got {tuple(features.shape)}")
        return self.net(features)


def relativistic_lsgan_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Critic side of the relativistic average LSGAN [official code ``GANLoss``, target 1]:

    ``1/2 [mean((D_r - mean D_f - 1)^2) + mean((D_f - mean D_r + 1)^2)]``.
    """
    real_term = (real_logits - fake_logits.mean() - 1).pow(2).mean()
    fake_term = (fake_logits - real_logits.mean() + 1).pow(2).mean()
    return 0.5 * (real_term + fake_term)


def relativistic_lsgan_g_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Generator side: ``1/2 [mean((D_r - mean D_f + 1)^2) + mean((D_f - mean D_r - 1)^2)]`` [official code]."""
    real_term = (real_logits - fake_logits.mean() + 1).pow(2).mean()
    fake_term = (fake_logits - real_logits.mean() - 1).pow(2).mean()
    return 0.5 * (real_term + fake_term)


def _check_consistency_shapes(feature: Tensor, target: Tensor, mask_feat: Tensor) -> None:
    if feature.shape != target.shape:
        raise ValueError(
            f"feature {tuple(feature.shape)} and HED-VGG16 target {tuple(target.shape)} must have the same "
            "shape (the attention level's channels must equal the target layer's)"
        )
    if mask_feat.shape != (feature.shape[0], 1, *feature.shape[-2:]):
        expected = (feature.shape[0], 1, *feature.shape[-2:])
        raise ValueError(f"mask_feat must be (B,1,h,w) = {expected}, got {tuple(mask_feat.shape)}")


def consistency_loss(feature: Tensor, target: Tensor, mask_feat: Tensor) -> Tensor:
    """Consistency loss on the hole positions [paper]: mean over hole positions and channels of (F - phi)^2.

    L_c = sum_{y in M} ||F_y - phi(I_gt)_y||^2 / (C |M|). feature, target (B,C,h,w); mask_feat (B,1,h,w).
    """
    _check_consistency_shapes(feature, target, mask_feat)
    squared = (feature - target).pow(2) * mask_feat  # (B,C,h,w)
    return squared.sum() / (feature.shape[1] * mask_feat.sum()).clamp_min(1.0)


def official_consistency_value(feature: Tensor, target: Tensor, mask_feat: Tensor) -> Tensor:
    """The official ``InnerCos`` value: MSE(F * mask, phi) over all positions (the target is not masked).

    [official code] ``CSA.py`` l.211-219 adds it as ``Variable(loss.data, requires_grad=True)``: it has no
    gradient, which :class:`CSAMethod` reproduces by detaching it (``official_consistency_no_grad``).
    """
    _check_consistency_shapes(feature, target, mask_feat)
    return F.mse_loss(feature * mask_feat, target)


class FeatureTargets:
    """HED-VGG16 features of ground-truth images at one layer, without gradient: ``(B,3,H,W) -> (B,C,h,w)``.

    The activations are multiplied by ``scale`` (default :data:`HED_FEATURE_SCALE`).
    ``channels``: ``None`` keeps the layer's channels (the official form: the CSA level has as many
    channels as VGG16 relu4_3). A smaller count multiplies the features by a fixed random matrix
    ``P`` (C x C_layer) with orthonormal rows scaled by sqrt(C_layer / C), so that a narrow network can be
    compared with them [our reconstruction]: random projections preserve inner products in
    expectation (E <Px, Py> = <x, y>), and inner products are what CSA matches on.

    With ``cache=True`` each distinct image (keyed by the bytes of its float tensor, so a flipped copy is
    another key) is run through the trunk once and its (projected) features are kept on the CPU: methods
    trained on the same batches (the ablation) share the cost. Not an ``nn.Module``: the frozen trunk is
    not part of any method's weights or checkpoints.
    """

    def __init__(
        self,
        features: HEDVGG16Features,
        layer: str,
        channels: int | None = None,
        cache: bool = True,
        seed: int = 0,
        scale: float = HED_FEATURE_SCALE,
    ) -> None:
        if layer not in features.layers:
            raise ValueError(f"layer {layer!r} is not among the HED-VGG16 features' layers {features.layers}")
        block = int(layer[4]) if layer.startswith("relu") else 0
        if not 1 <= block <= len(VGG16_BLOCKS):
            raise ValueError(f"layer must be a reluK_J layer of HED-VGG16, got {layer!r}")
        self.layer_channels = VGG16_BLOCKS[block - 1][1]
        self.channels = self.layer_channels if channels is None else channels
        if not 1 <= self.channels <= self.layer_channels:
            raise ValueError(f"channels must be in [1, {self.layer_channels}] for {layer}, got {channels}")
        self.projection: Tensor | None = None
        if self.channels < self.layer_channels:
            gaussian = torch.randn(self.layer_channels, self.channels, generator=torch.Generator().manual_seed(seed))
            orthonormal_columns = torch.linalg.qr(gaussian).Q  # (C_layer, C)
            self.projection = orthonormal_columns.T * math.sqrt(self.layer_channels / self.channels)  # P (C, C_layer)
        self.features, self.layer, self.cache, self.scale = features, layer, cache, scale
        self._store: dict[bytes, Tensor] = {}
        self.computed = 0

    def extract(self, images: Tensor) -> Tensor:
        """Scaled (and projected) HED-VGG16 ``layer`` activations, with gradient: (B,3,H,W) -> (B,C,h,w)."""
        self.features.to(images.device)
        with torch.autocast(images.device.type, enabled=False):
            activation = self.features.extract(images.float(), (self.layer,))[self.layer]  # (B,C_layer,h,w)
            activation = self.scale * activation
            if self.projection is None:
                return activation
            projection = self.projection.to(activation.device)
            return torch.einsum("ok,bkhw->bohw", projection, activation)  # P phi  (B,C,h,w)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        if not self.cache:
            self.computed += len(images)
            return self.extract(images)
        host = images.detach().float().cpu().contiguous()
        keys = [hashlib.blake2b(img.numpy().tobytes(), digest_size=16).digest() for img in host]
        missing = sorted({keys.index(key) for key in keys if key not in self._store})
        if missing:
            fresh = self.extract(images[missing]).cpu()  # (n,C,h,w)
            self._store.update({keys[i]: value for i, value in zip(missing, fresh)})
            self.computed += len(missing)
        return torch.stack([self._store[key] for key in keys]).to(images.device)

    def __len__(self) -> int:
        return len(self._store)


class RoughStageMethod(Method):
    """Stage 1 alone: the rough U-Net with the official rough loss ``rec_weight * L1(coarse)`` (whole image).

    The refinement input is detached [official code], so the rough network's training does not depend on
    the refinement network: it can be trained once and shared, frozen, by several :class:`CSAMethod`
    (``rough=...``), e.g. the variants of an ablation [our choice].
    """

    def __init__(
        self,
        channels: Sequence[int] = (64, 128, 256, 512, 512),
        norm: str = "instance",
        rec_weight: float = 1.0,
        lr: float = 2e-4,
    ) -> None:
        super().__init__()
        self.generator = UNetInpainter(channels, norm)
        self.rec_weight, self.lr = rec_weight, lr

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=(0.5, 0.999))}

    def training_step(self, batch: dict[str, Tensor], update: UpdateFn) -> None:
        image, mask = batch["image"], batch["mask"]
        coarse = self.generator(image * (1 - mask), mask)  # (B,3,H,W)
        update("g", {"l1_coarse": self.rec_weight * (coarse - image).abs().mean()})  # [official code]

    @torch.no_grad()
    def inpaint(self, image: Tensor, mask: Tensor) -> Tensor:
        return self.generator(image, mask)


class CSAMethod(Method):
    """Training recipe of CSA (official ``CSA.py`` l.165-234), rescaled so that the L1 weight is 1.

    Generator terms: ``rec_weight * (L1(coarse) + L1(refined))`` (whole-image means [official code];
    no ``L1(coarse)`` with a frozen, already trained ``rough`` network, see :class:`RoughStageMethod`),
    ``adv_weight * RaLS_G(image critic)``, ``feature_adv_weight * RaLS_G(feature critic)`` and
    ``consistency_weight * (L_c(encoder) + L_c(decoder))``. Critic terms: ``0.5 * RaLS_D`` for each critic.
    The official weights 100 (L1) and 0.2 (GAN) give ``adv_weight = 0.002`` after rescaling, which is
    also the paper's lambda_adv; lambda_c = 0.01 is the paper's [recalled, not checked], set for ImageNet
    VGG features (the targets are rescaled towards their scale, see :data:`HED_FEATURE_SCALE`).
    ``feature_adv_weight = 0`` removes the feature
    critic (and its HED-VGG16 pass over the generated image).
    """

    def __init__(
        self,
        attention: AttentionKind = "csa",
        rough_channels: Sequence[int] = (64, 128, 256, 512, 512),
        refine_channels: Sequence[int] = (64, 128, 512, 512, 512),
        csa_stride: int = 8,
        norm: str = "instance",
        rec_weight: float = 1.0,
        adv_weight: float = 0.002,
        feature_adv_weight: float = 0.002,
        consistency_weight: float = 0.01,
        critic_channels: Sequence[int] = (64, 128, 256),
        feature_critic_width: int = 512,
        lr: float = 2e-4,
        csa_gradient: GradientMode = "autograd",
        csa_clamp_weights: bool = False,
        official_fixed_mask: bool = False,
        official_consistency_no_grad: bool = False,
        official_feature_gan_no_grad: bool = False,
        targets: FeatureTargets | None = None,
        rough: UNetInpainter | None = None,
        refine_residual: bool = False,
    ) -> None:
        super().__init__()
        self.layer, _ = consistency_layer(csa_stride)
        level = int(math.log2(csa_stride)) - 1
        if level >= len(refine_channels) - 1:
            raise ValueError(
                f"csa_stride {csa_stride} puts the attention at level {level}; refine_channels needs a deeper "
                f"level after it, got {tuple(refine_channels)}"
            )
        self.generator = CSAGenerator(
            rough_channels, refine_channels, csa_stride, attention, norm, csa_gradient, csa_clamp_weights,
            official_fixed_mask, rough, refine_residual,
        )
        self.rough_frozen = rough is not None
        if self.rough_frozen:
            rough.requires_grad_(False)
        if targets is None:
            hed = HEDVGG16Features(layers=(self.layer,))
            targets = FeatureTargets(hed, self.layer, refine_channels[level], cache=False)
        if targets.layer != self.layer or targets.channels != refine_channels[level]:
            raise ValueError(
                f"targets give {targets.channels} channels of HED-VGG16 {targets.layer}; the attention level "
                f"needs {refine_channels[level]} channels of {self.layer}"
            )
        self.targets = targets
        self.image_critic = PatchDiscriminator(in_channels=3, channels=critic_channels) if adv_weight > 0 else None
        self.feature_critic = (
            FeaturePatchDiscriminator(targets.channels, feature_critic_width) if feature_adv_weight > 0 else None
        )
        self.rec_weight, self.adv_weight, self.feature_adv_weight = rec_weight, adv_weight, feature_adv_weight
        self.consistency_weight, self.lr = consistency_weight, lr
        self.official_consistency_no_grad = official_consistency_no_grad
        self.official_feature_gan_no_grad = official_feature_gan_no_grad

    def train(self, mode: bool = True) -> "CSAMethod":
        """As ``nn.Module.train``; a frozen rough network stays in eval mode (no norm statistics updates)."""
        super().train(mode)
        if self.rough_frozen:
            self.generator.rough.eval()
        return self

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Adam(lr, betas (0.5, 0.999)) for the generators and for the critics [official code] (no critic
        optimiser when both adversarial weights are 0)."""
        trainable = [p for p in self.generator.parameters() if p.requires_grad]  # without a frozen rough net
        critics = [p for critic in (self.image_critic, self.feature_critic) if critic is not None for p in critic.parameters()]
        optimizers = {"g": torch.optim.Adam(trainable, lr=self.lr, betas=(0.5, 0.999))}
        if critics:
            optimizers["d"] = torch.optim.Adam(critics, lr=self.lr, betas=(0.5, 0.999))
        return optimizers

    def training_step(self, batch: dict[str, Tensor], update: UpdateFn) -> None:
        """One critic step, then one generator step, on the same batch [official code].

        The generator terms reuse the critics' real logits of the critic step, detached (one critic pass
        less; the official code recomputes them after the critic update) [our choice].
        """
        image, mask = batch["image"], batch["mask"]
        out = self.generator(image, mask)
        composed = mask * out.refined + (1 - mask) * image  # (B,3,H,W)
        target = self.targets(image)  # phi(I_gt) (B,C,h,w), no gradient

        critic_terms = {}
        if self.image_critic is not None:
            real_logits = self.image_critic(image)
            critic_terms["image_rals"] = 0.5 * relativistic_lsgan_d_loss(real_logits, self.image_critic(composed.detach()))
        if self.feature_critic is not None:
            with torch.no_grad():
                fake_features = self.targets.extract(composed.detach())  # (B,C,h,w)
            real_feature_logits = self.feature_critic(target)
            critic_terms["feature_rals"] = 0.5 * relativistic_lsgan_d_loss(
                real_feature_logits, self.feature_critic(fake_features)
            )
        if critic_terms:
            update("d", critic_terms)

        terms = {"l1_refined": self.rec_weight * (out.refined - image).abs().mean()}
        if self.image_critic is not None:
            terms["adv_image"] = self.adv_weight * relativistic_lsgan_g_loss(real_logits.detach(), self.image_critic(composed))
        if not self.rough_frozen:
            terms["l1_coarse"] = self.rec_weight * (out.coarse - image).abs().mean()
        if self.feature_critic is not None:
            if self.official_feature_gan_no_grad:  # fake_B.data [official code]: a value, no gradient to G
                with torch.no_grad():
                    fake_feature_logits = self.feature_critic(fake_features)
            else:
                fake_feature_logits = self.feature_critic(self.targets.extract(composed))
            value = relativistic_lsgan_g_loss(real_feature_logits.detach(), fake_feature_logits)
            terms["adv_feature"] = self.feature_adv_weight * value
        if self.official_consistency_no_grad:  # Variable(loss.data, requires_grad=True) [official code]
            value = official_consistency_value(out.encoder_feature, target, out.feature_mask)
            value = (value + official_consistency_value(out.decoder_feature, target, out.feature_mask)).detach()
        else:  # [paper] L_c on the hole positions, encoder (CSA output) and decoder
            value = consistency_loss(out.encoder_feature, target, out.feature_mask)
            value = value + consistency_loss(out.decoder_feature, target, out.feature_mask)
        terms["consistency"] = self.consistency_weight * value
        update("g", terms)

    @torch.no_grad()
    def inpaint(self, image: Tensor, mask: Tensor) -> Tensor:
        """(B,3,H,W) masked image, (B,1,H,W) mask -> refined image (B,3,H,W) clamped to [0,1]."""
        return self.generator(image, mask).refined.clamp(0, 1)


def csa_method_from_files(
    attention: AttentionKind = "csa",
    rough_weights: str | None = None,
    rough_channels: Sequence[int] = (64, 128, 256, 512, 512),
    refine_channels: Sequence[int] = (64, 128, 512, 512, 512),
    csa_stride: int = 8,
    norm: str = "instance",
    cache_targets: bool = True,
    target_seed: int = 0,
    **kwargs,
) -> CSAMethod:
    """A :class:`CSAMethod` from JSON-able arguments, for ``inpaintlib.experiment`` (arms are data).

    ``rough_weights``: a safetensors file of a pretrained :class:`RoughStageMethod` generator, loaded and
    frozen (``None`` trains the rough network with the refinement). The HED-VGG16 targets of the
    consistency loss are built here, cached per image when ``cache_targets`` (an ablation's arms trained in
    one process share the cache); ``target_seed`` fixes their random projection. Other ``kwargs`` go to
    :class:`CSAMethod`.
    """
    rough = None
    if rough_weights is not None:
        rough = UNetInpainter(rough_channels, norm)
        load_weights(rough, rough_weights)
    layer, _ = consistency_layer(csa_stride)
    level = int(math.log2(csa_stride)) - 1
    targets = FeatureTargets(HEDVGG16Features(layers=(layer,)), layer, channels=refine_channels[level],
                             cache=cache_targets, seed=target_seed)
    return CSAMethod(attention, rough_channels, refine_channels, csa_stride, norm, targets=targets, rough=rough, **kwargs)
