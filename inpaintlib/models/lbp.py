"""LBP learning + spatial attention inpainting (Wu et al., IEEE TMM 2021; official code HighwayWu/ImageInpainting).

Two pix2pix-style U-Nets [official code, ``networks.py``]:

1. the **LBP network** sees ``cat(L_in, 1 - m)``, the LBP map (:func:`inpaintlib.lbp.lbp_target`) with the hole set
   to 0, and predicts the LBP of the hole: ``L_o = (tanh(U(.)) + L_in) * m + L_in * (1 - m)`` (residual, then
   composite);
2. the **image network** sees ``cat(I_in, L_o, 1 - m)`` (the predicted LBP is its only guidance) and runs the spatial
   attention of :mod:`inpaintlib.attention.lbp_spatial` in the decoder block that consumes the 1/8-resolution skip
   (32x32 for 256 px in the official code): ``u = ReLU(cat(up, skip))``, ``generated = u[:, :C]`` (decoder),
   ``known = u[:, C:]`` (encoder), output ``cat(generated, known, shifted)`` (3C channels); again residual and
   composite: ``I_o = (tanh(U(.)) + I_in) * m + I_in * (1 - m)``.

Images and LBP maps live in [-1, 1] inside this module, as in the official code (``Normalize(0.5, 0.5)``); a hole is
0 (mid-grey). Losses of the generator step [official code, ``model.py::backward_G``]::

    0.2 BCE(D(I_o), 1) + 0.2 BCE(D2(L_o), 1) + 10 MSE(I_o, I_gt) + 100 MSE(L_o, L_gt)
    + 10 sum_l MSE(Gram(phi_l(I_o)), Gram(phi_l(I_gt))) + 1 sum_l MSE(phi_l(I_o), phi_l(I_gt))
    + 0.01 sum_layers MSE(F_l(masked pass), F_l(clean pass))

with phi = relu1_2, relu2_2, relu3_3. The official phi is ImageNet VGG16 (torchvision); here it is the **HED-VGG16
features** of :mod:`inpaintlib.features` (a VGG16 trunk fine-tuned on BSDS500 edges), the only pretrained VGG16
available offline [our reconstruction].

Official defect [official code]: ``optimizer_LBP`` is created but never stepped, so ``train()`` never updates the LBP
network. ``lbp_training="intended"`` (default) steps it with the generator loss; ``"official"`` reproduces the defect.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlib.attention.lbp_spatial import (
    AttentionSources,
    SpatialAttentionBackward,
    lbp_attention_sources,
    lbp_spatial_attention,
)
from inpaintlib.features import HEDVGG16Features, gram_matrix
from inpaintlib.lbp import LBP_NEIGHBOUR_WEIGHTS, lbp_target
from inpaintlib.masks import check_mask
from inpaintlib.nn.discriminators import PatchDiscriminator
from inpaintlib.train import Method, UpdateFn

LBPTraining = Literal["intended", "official"]
HED_LAYERS = ("relu1_2", "relu2_2", "relu3_3")  # features[:5], [5:10], [10:17] of torchvision VGG16 [official code]
# The official phi sees images in [-1, 1]; HED-VGG16 sees 0..255 minus the Caffe mean (127.5x that scale). Dividing
# the activations by 127.5 brings them back to roughly the official scale (conv + ReLU is near homogeneous in its
# input) so that the official weights 10 (style) and 1 (perceptual) keep their meaning [our reconstruction].
HED_FEATURE_SCALE = 1 / 127.5


def lbp_unknown_mask(mask: Tensor) -> Tensor:
    """Pixels whose LBP code reads at least one hole pixel (itself or a neighbour), official border rule.

    ``unknown(r, c) = m(r, c) or any_k [inside_k(r, c) and m((r + dr_k) mod H, (c + dc_k) mod W)]`` over
    :data:`inpaintlib.lbp.LBP_NEIGHBOUR_WEIGHTS`, where ``inside_k`` is False when ``r + dr_k = H`` or
    ``c + dc_k = W`` (that bit is always 0) and index -1 wraps (see :func:`inpaintlib.lbp.local_binary_pattern`).

    The official loader computes ``L_in`` on the full ground truth and zeroes the hole only, so the codes of known
    pixels beside the hole carry bits of hole pixels into the input [official code]. We zero (and predict) those codes
    too, so that no hole pixel leaks and training and evaluation see the same input [our reconstruction].

    Args:
        mask: (B, 1, H, W) float in {0, 1}, 1 = hole.
    Returns:
        (B, 1, H, W) float in {0, 1}, a superset of ``mask``.
    """
    check_mask(mask)
    height, width = mask.shape[-2:]
    hole = mask > 0.5  # (B,1,H,W)
    rows = torch.arange(height, device=mask.device)
    cols = torch.arange(width, device=mask.device)
    unknown = hole.clone()
    for row_offset, col_offset, _ in LBP_NEIGHBOUR_WEIGHTS:
        neighbour_is_hole = torch.roll(hole, shifts=(-row_offset, -col_offset), dims=(2, 3))  # m[(r+dr)%H, (c+dc)%W]
        inside = ((rows + row_offset) < height)[:, None] & ((cols + col_offset) < width)[None, :]  # (H,W)
        unknown |= neighbour_is_hole & inside
    return unknown.to(mask.dtype)


def lbp_input(masked_image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """The LBP network's input from a masked image alone: ``L_in = lbp_target(image) * (1 - m_lbp)``.

    Outside ``m_lbp = lbp_unknown_mask(mask)`` a code reads only known pixels, so ``L_in`` equals the ground-truth
    LBP there whatever the hole holds.

    Args:
        masked_image: (B, 3, H, W) RGB in [0, 1] (hole content is ignored).
        mask: (B, 1, H, W) in {0, 1}, 1 = hole.
    Returns:
        ``L_in`` (B, 1, H, W) in [-1, 1] with 0 on ``m_lbp``, and ``m_lbp`` (B, 1, H, W).
    """
    check_mask(mask, masked_image)
    lbp_mask = lbp_unknown_mask(mask)  # (B,1,H,W)
    return lbp_target(masked_image) * (1 - lbp_mask), lbp_mask


def init_normal_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """Conv weights ~ N(0, std), biases 0 [official code, ``networks.py::init_weights``]."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


class PerSampleTopTAttention(nn.Module):
    """The LBP spatial attention for a batch whose samples may have fewer than T hole positions.

    The official layer runs on one image whose hole is large (``torch.topk`` fails when a sample has fewer than T
    hole or known positions) [official code]. Here a sample keeps T when it can; otherwise its T is lowered to its
    number of hole positions (hole -> hole needs T of them) or known positions; a sample with no known position
    gets ``shifted = 0`` [our reconstruction]. Samples are grouped by their T (at most T groups); the fusion weights
    are per sample anyway, so grouping does not change any sample's result.

    ``forward(generated, known, mask)``: (B, C, h, w) x2 + (B, 1, H, W) -> (B, 3C, h, w).
    """

    def __init__(self, top_t: int = 2, within_hole: bool = True, backward: SpatialAttentionBackward = "official"):
        super().__init__()
        if isinstance(top_t, bool) or not isinstance(top_t, int) or top_t < 1:
            raise ValueError(f"top_t must be a positive int, got {top_t!r}")
        if backward not in ("autograd", "official"):
            raise ValueError(f"backward must be 'autograd' or 'official', got {backward!r}")
        self.top_t, self.within_hole, self.backward_rule = top_t, within_hole, backward

    def sample_top_t(self, mask: Tensor, size: tuple[int, int]) -> Tensor:
        """The T each sample is attended with, (B,) long (0 = no known position: no attention)."""
        hole = F.interpolate(mask.float(), size=size, mode="nearest").flatten(1) == 1  # (B,N) as the layer does
        holes = hole.sum(1)
        knowns = hole.shape[1] - holes
        limit = torch.minimum(holes, knowns) if self.within_hole else knowns  # (B,)
        return torch.where(holes == 0, self.top_t, limit.clamp(max=self.top_t))

    def forward(self, generated: Tensor, known: Tensor, mask: Tensor) -> Tensor:
        sample_t = self.sample_top_t(mask, generated.shape[-2:])  # (B,)
        attend = dict(within_hole=self.within_hole, backward=self.backward_rule)
        if bool((sample_t == self.top_t).all()):
            return lbp_spatial_attention(generated, known, mask, top_t=self.top_t, **attend)
        output = torch.cat([generated, known, torch.zeros_like(generated)], 1)  # (B,3C,h,w); shifted 0 if T = 0
        for top_t in sorted(set(sample_t.tolist()) - {0}):
            rows = torch.nonzero(sample_t == top_t).squeeze(1)
            attended = lbp_spatial_attention(generated[rows], known[rows], mask[rows], top_t=top_t, **attend)
            output = output.index_copy(0, rows, attended)
        return output

    def extra_repr(self) -> str:
        return f"top_t={self.top_t}, within_hole={self.within_hole}, backward={self.backward_rule!r}"


class _Down(nn.Module):
    """[LeakyReLU(0.2) ->] conv 4x4 s2 p1 [-> InstanceNorm]: (B, C_in, H, W) -> (B, C_out, H/2, W/2) [official]."""

    def __init__(self, c_in: int, c_out: int, first: bool):
        super().__init__()
        self.act = nn.Identity() if first else nn.LeakyReLU(0.2)
        self.conv = nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)
        self.norm = nn.Identity() if first else nn.InstanceNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.conv(self.act(x)))


class _Bottleneck(nn.Module):
    """LeakyReLU -> conv 4x4 s2 -> ReLU -> convT 4x4 s2 -> InstanceNorm, same size in and out [official code]."""

    def __init__(self, channels: int):
        super().__init__()
        self.down = nn.Conv2d(channels, channels, 4, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1)
        self.norm = nn.InstanceNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.up(F.relu(self.down(F.leaky_relu(x, 0.2)))))


class _Up(nn.Module):
    """ReLU [-> attention, 2C -> 3C] -> convT 4x4 s2 p1 [-> InstanceNorm]: (B, 2C, h, w) -> (B, C_out, 2h, 2w).

    Without attention this is the official ``up_k``; with it, ``up31`` (ReLU), ``MyAttention`` and ``up311``
    (convT 768 -> 128, InstanceNorm) [official code].
    """

    def __init__(self, c_in: int, c_out: int, last: bool, attention: PerSampleTopTAttention | None = None):
        super().__init__()
        self.attention = attention
        self.conv = nn.ConvTranspose2d(c_in * 3 // 2 if attention is not None else c_in, c_out, 4, stride=2, padding=1)
        self.norm = nn.Identity() if last else nn.InstanceNorm2d(c_out)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Returns the block output and the feature the official code lists (the attention output, if any)."""
        h = F.relu(x)
        if self.attention is not None:
            half = h.shape[1] // 2
            h = self.attention(h[:, :half], h[:, half:], mask)  # generated = decoder half, known = encoder skip
        out = self.norm(self.conv(h))
        return out, h if self.attention is not None else out


class PixUNet(nn.Module):
    """The official pix2pix-style U-Net, ``len(channels) + 1`` halvings (the last one inside the bottleneck).

    ``forward(x, mask) -> (tanh output (B, out_channels, H, W), features)``; ``features`` are the 2n tensors the
    official generators return for the feature-consistency loss: dn1..dn_n, bottle, up_n..up_2 (the attention output
    in place of its block) [official code]. With ``attention`` the block that consumes the skip of level
    ``attention_depth`` (resolution H / 2^depth; 3 = 1/8 as official) attends.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int],
        attention: PerSampleTopTAttention | None = None,
        attention_depth: int = 3,
    ):
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        if len(self.channels) < 2 or min(self.channels) < 1:
            raise ValueError(f"channels must hold at least 2 positive widths, got {channels!r}")
        if attention is not None and not 2 <= attention_depth <= len(self.channels):
            raise ValueError(f"attention_depth must be in [2, {len(self.channels)}], got {attention_depth}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.attention_depth = attention_depth if attention is not None else None
        widths = (in_channels, *self.channels)
        self.down = nn.ModuleList(_Down(widths[k], widths[k + 1], first=k == 0) for k in range(len(self.channels)))
        self.bottle = _Bottleneck(self.channels[-1])
        # up[k] consumes cat(previous, dn_{k+1}) (2 c_k channels, 0-based k) and outputs c_{k-1} (or out_channels)
        self.up = nn.ModuleList(
            _Up(
                2 * self.channels[k],
                self.channels[k - 1] if k > 0 else out_channels,
                last=k == 0,
                attention=attention if k + 1 == attention_depth else None,
            )
            for k in range(len(self.channels))
        )
        init_normal_(self)

    @property
    def stride(self) -> int:
        return 2 ** (len(self.channels) + 1)

    @property
    def attention(self) -> PerSampleTopTAttention | None:
        return self.up[self.attention_depth - 1].attention if self.attention_depth is not None else None

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, list[Tensor]]:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"input must have shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[-1] % self.stride or x.shape[-2] % self.stride:
            raise ValueError(
                f"image size {tuple(x.shape[-2:])} is not divisible by 2^(levels + 1) = {self.stride}; "
                "use fewer levels or another size"
            )
        skips = []
        h = x
        for block in self.down:
            h = block(h)
            skips.append(h)  # dn1..dn_n
        h = self.bottle(h)
        features = [*skips, h]
        for k in reversed(range(len(self.up))):
            h, listed = self.up[k](torch.cat([h, skips[k]], 1), mask)  # cat(up_{k+1}, dn_k) [official code]
            if k > 0:
                features.append(listed)
        return torch.tanh(h), features


class LBPGenerator(nn.Module):
    """LBP network: ``cat(L_in, 1 - m)`` -> ``L_o = (tanh + L_in) * m + L_in * (1 - m)`` [official code].

    ``forward(lbp_in (B,1,H,W) in [-1,1] with 0 in the hole, mask (B,1,H,W)) -> (L_o (B,1,H,W), 2n features)``.
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 64, 64, 64)):
        super().__init__()
        self.unet = PixUNet(2, 1, channels)

    def forward(self, lbp_in: Tensor, mask: Tensor) -> tuple[Tensor, list[Tensor]]:
        check_mask(mask, lbp_in)
        out, features = self.unet(torch.cat([lbp_in, 1 - mask], 1), mask)  # dn1(cat([lbp, 1 - mask]))
        lbp = out + lbp_in  # residual: plbp = up1(.) + lbp
        return lbp * mask + lbp_in * (1 - mask), features  # composite


class LBPImageGenerator(nn.Module):
    """Image network: ``cat(I_in, L, 1 - m)`` (``cat(I_in, 1 - m)`` without LBP guidance) -> composite image.

    ``forward(image_in (B,3,H,W) in [-1,1] with 0 in the hole, lbp (B,1,H,W) or None, mask) -> (I_o, 2n features)``
    with ``I_o = (tanh + I_in) * m + I_in * (1 - m)`` [official code]. The spatial attention sits in the decoder
    block that consumes the 1/2^attention_depth skip.
    """

    def __init__(
        self,
        channels: Sequence[int] = (32, 64, 64, 128, 128),
        use_lbp: bool = True,
        top_t: int = 2,
        within_hole: bool = True,
        attention_backward: SpatialAttentionBackward = "official",
        attention_depth: int = 3,
    ):
        super().__init__()
        self.use_lbp = use_lbp
        attention = PerSampleTopTAttention(top_t, within_hole, attention_backward)
        self.unet = PixUNet(5 if use_lbp else 4, 3, channels, attention, attention_depth)

    def forward(self, image_in: Tensor, lbp: Tensor | None, mask: Tensor) -> tuple[Tensor, list[Tensor]]:
        check_mask(mask, image_in)
        if self.use_lbp != (lbp is not None):
            raise ValueError("pass an LBP map exactly when the generator was built with use_lbp=True")
        guidance = [image_in, lbp, 1 - mask] if self.use_lbp else [image_in, 1 - mask]
        out, features = self.unet(torch.cat(guidance, 1), mask)  # dn11(cat([x, lbp, 1 - mask]))
        image = out + image_in  # residual: output = up11(.) + x
        return image * mask + image_in * (1 - mask), features  # composite


def inpaint_with_lbp(image_net: LBPImageGenerator, lbp_net: LBPGenerator | None, image: Tensor, mask: Tensor) -> Tensor:
    """Inference of the two networks: masked image (B,3,H,W) in [0,1] + mask (B,1,H,W) -> composite (B,3,H,W)
    in [0,1]. The LBP net (None without LBP guidance) fills the hole's LBP, which then guides the image net."""
    check_mask(mask, image)
    image_in = (image * 2 - 1) * (1 - mask)  # (B,3,H,W) in [-1,1], hole = 0
    lbp = lbp_net(*lbp_input(image * (1 - mask), mask))[0] if lbp_net is not None else None  # (B,1,H,W)
    image_out, _ = image_net(image_in, lbp, mask)
    return ((image_out + 1) / 2).clamp(0, 1)


class LBPInpainter(nn.Module):
    """Both generators as one ``forward(masked (B,3,H,W), mask (B,1,H,W)) -> (B,3,H,W)``, the signature
    ``inpaintlib.compare`` rebuilds. State-dict keys ``image_net.*`` and ``lbp_net.*``, as in :class:`LBPMethod`,
    so ``nn.ModuleDict({"image_net": m.image_net, "lbp_net": m.lbp_net})`` saves a trained method's weights."""

    def __init__(self, image_channels: Sequence[int] = (32, 64, 64, 128, 128),
                 lbp_channels: Sequence[int] = (16, 32, 64, 64, 64), use_lbp: bool = True, top_t: int = 2,
                 within_hole: bool = True, attention_depth: int = 3):
        super().__init__()
        self.image_net = LBPImageGenerator(image_channels, use_lbp, top_t, within_hole, attention_depth=attention_depth)
        self.lbp_net = LBPGenerator(lbp_channels) if use_lbp else None

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        return inpaint_with_lbp(self.image_net, self.lbp_net, image, mask)


def bce_gan_loss(logits: Tensor, real: bool) -> Tensor:
    """``BCE(sigmoid(logits), 1 or 0)`` averaged over patches (the official D ends in a sigmoid + BCELoss)."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 1.0 if real else 0.0))


def feature_consistency_loss(features: Sequence[Tensor], clean_features: Sequence[Tensor]) -> Tensor:
    """``sum_l MSE(F_l, F_gt,l)`` over the generator's listed features (unweighted) [official code].

    The official code does not detach the clean pass: both passes get gradients.
    """
    if len(features) != len(clean_features):
        raise ValueError(f"got {len(features)} and {len(clean_features)} feature tensors")
    return sum(F.mse_loss(a, b) for a, b in zip(features, clean_features))


def hed_style_perceptual_mse(
    hed: HEDVGG16Features, pred: Tensor, target: Tensor, scale: float = HED_FEATURE_SCALE
) -> tuple[Tensor, Tensor]:
    """Official-form style and perceptual terms on HED-VGG16 features (unweighted sums over relu1_2..relu3_3).

    ``style = sum_l MSE(Gram(s phi_l(pred)), Gram(s phi_l(target)))``, ``perceptual = sum_l MSE(s phi_l(pred),
    s phi_l(target))`` with Gram = F F^T / (C H W) [official code] and ``s = scale``.

    Args:
        hed: the HED-VGG16 trunk; pred, target: (B, 3, H, W) RGB in [0, 1] (one batched trunk pass).
    Returns:
        (style, perceptual) scalars.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    both = hed.extract(torch.cat([pred, target], 0), HED_LAYERS)  # {l: (2B,C,h,w)}
    batch = pred.shape[0]
    style = perceptual = pred.new_zeros(())
    for activation in both.values():
        fake, real = activation[:batch] * scale, activation[batch:] * scale
        style = style + F.mse_loss(gram_matrix(fake), gram_matrix(real))
        perceptual = perceptual + F.mse_loss(fake, real)
    return style, perceptual


class LBPMethod(Method):
    """The LBP paper's training recipe with the book's switches (see the module docstring for the losses).

    Args:
        image_channels, lbp_channels: widths of the two U-Nets (official: 64, 128, 256, 512 x4 at 256 px).
        use_lbp: LBP network + LBP guidance (False: image net on ``cat(I_in, 1 - m)``, no LBP terms, no D2).
        within_hole: keep the hole -> hole half of the attention.
        top_t: T sources per attention kind (official k = 2).
        lbp_training: "intended" (the LBP net is stepped with the generator loss) or "official" (never stepped).
        hed_losses: add the HED-VGG16 style and perceptual terms (expensive on CPU).
        attention_backward: backward of the attention ("official" Shift-Net style, or "autograd").
        attention_depth: the attention runs at 1 / 2^depth of the image size (official 3: 32x32 of 256).
        adv_weight, image_mse_weight, lbp_mse_weight, style_weight, perceptual_weight, consistency_weight:
            official 0.2, 10, 100, 10, 1, 0.01. ``adv_weight = 0`` builds no critic (no D, no D2, no critic
            steps): their terms would not reach the generators [our choice, as CSA's].
        disc_channels: widths of the two spectral-norm patch discriminators.
        lr: Adam learning rate (official 2e-4, betas (0.5, 0.999)).
    """

    def __init__(
        self,
        image_channels: Sequence[int] = (32, 64, 64, 128, 128),
        lbp_channels: Sequence[int] = (16, 32, 64, 64, 64),
        use_lbp: bool = True,
        within_hole: bool = True,
        top_t: int = 2,
        lbp_training: LBPTraining = "intended",
        hed_losses: bool = True,
        attention_backward: SpatialAttentionBackward = "official",
        attention_depth: int = 3,
        adv_weight: float = 0.2,
        image_mse_weight: float = 10.0,
        lbp_mse_weight: float = 100.0,
        style_weight: float = 10.0,
        perceptual_weight: float = 1.0,
        consistency_weight: float = 0.01,
        disc_channels: Sequence[int] = (32, 64, 128),
        lr: float = 2e-4,
    ):
        super().__init__()
        if lbp_training not in ("intended", "official"):
            raise ValueError(f"lbp_training must be 'intended' or 'official', got {lbp_training!r}")
        self.use_lbp, self.lbp_training, self.hed_losses, self.lr = use_lbp, lbp_training, hed_losses, lr
        self.weights = dict(
            adv=adv_weight,
            image_mse=image_mse_weight,
            lbp_mse=lbp_mse_weight,
            style=style_weight,
            perceptual=perceptual_weight,
            consistency=consistency_weight,
        )
        self.image_net = LBPImageGenerator(
            image_channels, use_lbp, top_t, within_hole, attention_backward, attention_depth
        )
        self.lbp_net = LBPGenerator(lbp_channels) if use_lbp else None
        critics = adv_weight > 0  # built after the generators: their initial weights do not depend on it
        self.image_disc = PatchDiscriminator(3, disc_channels) if critics else None  # D (official: NLayerDiscriminator)
        self.lbp_disc = PatchDiscriminator(1, disc_channels) if use_lbp and critics else None  # D2
        if use_lbp and lbp_training == "official":
            self.lbp_net.requires_grad_(False)  # optimizer_LBP.step() is never called [official code]
        # not a submodule: frozen, shared, and kept out of checkpoints
        self._hed: list[HEDVGG16Features] = [HEDVGG16Features(layers=HED_LAYERS)] if hed_losses else []

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        adam = dict(lr=self.lr, betas=(0.5, 0.999))
        generator_params = list(self.image_net.parameters())
        if self.lbp_net is not None and self.lbp_training == "intended":
            generator_params += list(self.lbp_net.parameters())  # the step the official code forgot
        optimizers = {"g": torch.optim.Adam(generator_params, **adam)}
        if self.image_disc is not None:
            optimizers["d"] = torch.optim.Adam(self.image_disc.parameters(), **adam)
        if self.lbp_disc is not None:
            optimizers["d2"] = torch.optim.Adam(self.lbp_disc.parameters(), **adam)
        return optimizers

    def _hed_trunk(self, device: torch.device) -> HEDVGG16Features:
        if self._hed[0].convs["conv1_1"].weight.device != device:
            self._hed[0] = self._hed[0].to(device)
        return self._hed[0]

    @torch.no_grad()
    def predict_lbp(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(L_o, L_in, m_lbp)``, each (B, 1, H, W), from a masked image (B, 3, H, W) in [0, 1] and its mask."""
        if self.lbp_net is None:
            raise ValueError("this method was built with use_lbp=False: it has no LBP network")
        lbp_in, lbp_mask = lbp_input(image * (1 - mask), mask)
        lbp_out, _ = self.lbp_net(lbp_in, lbp_mask)
        return lbp_out, lbp_in, lbp_mask

    def training_step(self, batch: dict[str, Tensor], update: UpdateFn) -> None:
        image, mask = batch["image"], batch["mask"]
        check_mask(mask, image)
        w = self.weights
        image_gt = image * 2 - 1  # (B,3,H,W) in [-1, 1]
        image_in = image_gt * (1 - mask)  # hole = 0 [official code: masked_fill_(mask, 0.)]
        lbp_out = lbp_gt = None
        if self.lbp_net is not None:
            lbp_gt = lbp_target(image)  # (B,1,H,W), from the full ground truth [official code]
            lbp_mask = lbp_unknown_mask(mask)
            lbp_out, _ = self.lbp_net(lbp_gt * (1 - lbp_mask), lbp_mask)  # L_o = LBPNet(L_in, m); not detached
        # masked pass G(I_in, L_o, m) and clean "teacher" pass G(I_gt, L_gt, m) in one batch (InstanceNorm and the
        # attention are per sample, so this equals two calls) [official code: both with gradients]
        both_out, both_features = self.image_net(
            torch.cat([image_in, image_gt]),
            torch.cat([lbp_out, lbp_gt]) if lbp_out is not None else None,
            torch.cat([mask, mask]),
        )
        batch_size = image.shape[0]
        image_out = both_out[:batch_size]  # composite (the official re-composes with I_gt: the same values)
        features = [f[:batch_size] for f in both_features]
        clean_features = [f[batch_size:] for f in both_features]

        if self.lbp_disc is not None:  # D2 step, then D step, then G step [official code]
            update("d2", {"bce": 0.5 * (bce_gan_loss(self.lbp_disc(lbp_out.detach()), False)
                                        + bce_gan_loss(self.lbp_disc(lbp_gt), True))})
        if self.image_disc is not None:
            update("d", {"bce": 0.5 * (bce_gan_loss(self.image_disc(image_out.detach()), False)
                                       + bce_gan_loss(self.image_disc(image_gt), True))})

        discs = [d for d in (self.image_disc, self.lbp_disc) if d is not None]
        for disc in discs:
            disc.requires_grad_(False)
        terms = {}  # in the order of the official sum
        if self.image_disc is not None:
            terms["adv_image"] = w["adv"] * bce_gan_loss(self.image_disc(image_out), True)
        terms["mse_image"] = w["image_mse"] * F.mse_loss(image_out, image_gt)
        terms["consistency"] = w["consistency"] * feature_consistency_loss(features, clean_features)
        if lbp_out is not None:
            if self.lbp_disc is not None:
                terms["adv_lbp"] = w["adv"] * bce_gan_loss(self.lbp_disc(lbp_out), True)
            terms["mse_lbp"] = w["lbp_mse"] * F.mse_loss(lbp_out, lbp_gt)
        if self.hed_losses:
            style, perceptual = hed_style_perceptual_mse(
                self._hed_trunk(image.device), (image_out + 1) / 2, image
            )
            terms["style_hed"] = w["style"] * style
            terms["perceptual_hed"] = w["perceptual"] * perceptual
        update("g", terms)
        for disc in discs:
            disc.requires_grad_(True)

    @torch.no_grad()
    def inpaint(self, image: Tensor, mask: Tensor) -> Tensor:
        """(B, 3, H, W) masked image in [0, 1] + mask -> (B, 3, H, W) composite in [0, 1]; sees no hole pixel."""
        return inpaint_with_lbp(self.image_net, self.lbp_net, image, mask)

    @torch.no_grad()
    def attention_sources(self, image: Tensor, mask: Tensor, queries: Tensor) -> AttentionSources:
        """Top-T sources of chosen hole positions in the trained image network (inputs as for :meth:`inpaint`).

        Args:
            queries: (Q, 2) long (row, col) on the attention grid (H / 2^attention_depth), holes in every sample;
                every sample's hole must cover at least T cells of that grid (T is not lowered here).
        Returns:
            :class:`inpaintlib.attention.lbp_spatial.AttentionSources`, (B, Q, T, ...) fields.
        """
        attention = self.image_net.unet.attention
        captured: list[tuple[Tensor, Tensor, Tensor]] = []
        hook = attention.register_forward_pre_hook(lambda _module, args: captured.append(args))
        try:
            self.inpaint(image, mask)
        finally:
            hook.remove()
        generated, known, attention_mask = captured[0]
        return lbp_attention_sources(
            generated, known, attention_mask, queries, top_t=attention.top_t, within_hole=attention.within_hole
        )
