"""DeepFill v1 (Yu et al., CVPR 2018): coarse-to-fine inpainting with contextual attention.

Stage 1, a dilated-convolution encoder-decoder, paints a blurry guess into the hole. Stage 2 refines it
with two branches side by side: a second dilated-convolution branch ("hallucination") and a branch
that copies features from the known region with contextual attention
(:mod:`inpaintlib.attention.contextual`). Training uses a spatially discounted L1 in the hole, an L1
on the known pixels, and a global + a local critic.

[official code] refers to ``InpaintCAModel`` in ``inpaint_model.py`` of JiahuiYu/generative_inpainting
v1.0.0 (https://github.com/JiahuiYu/generative_inpainting, ``build_inpaint_net``); layers are named as
there (conv1..conv17 for stage 1, xconv* for the dilated branch, pmconv* for the attention branch,
allconv* after the concatenation).

Choices of ours for small images and free-form masks, each stated where it is made:

- ``num_downsamples`` (official 2): with 1, a 64 px image has 32 x 32 attention features and a 16 x 16
  matching grid, the same patch count per side as 128 px with the official 2.
- the mask reaches the feature grid by max-pooling (a cell is a hole if any of its pixels is), so
  thin free-form strokes are not lost; the official nearest-neighbour resize was written for boxes.
- the discount of the L1 uses the distance to the nearest known pixel (the paper's definition), which
  for a box is the official distance to the nearest box edge.
- the local critic sees a fixed window (half the image side, as v1's 128 of 256) centred on the
  bounding box of each sample's hole; v1 cropped its single box.
- critics: hinge + spectral norm by default (CPU budget, one critic step per generator step);
  ``gan_loss="wgan_gp"`` gives v1's WGAN-GP with the hole-restricted gradient penalty.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import spectral_norm

from inpaintlib.attention.contextual import (
    ContextualAttention,
    ContextualAttentionResult,
    downsample_nearest_align_corners,
    same_padding,
)
from inpaintlib.losses import hinge_d_loss, hinge_g_loss, valid_l1
from inpaintlib.masks import check_mask
from inpaintlib.train import Method, UpdateFn

__all__ = [
    "ConvSpec",
    "DeepFillCritic",
    "DeepFillGenerator",
    "DeepFillInpainter",
    "DeepFillMethod",
    "DeepFillOutput",
    "GAN_LOSSES",
    "GenConv",
    "chebyshev_distance_to_known",
    "crop_windows",
    "downsample_mask",
    "generator_layer_specs",
    "hole_window_offsets",
    "masked_gradient_penalty",
    "spatial_discount",
    "spatially_discounted_l1",
]

OFFICIAL_DILATIONS = (2, 4, 8, 16)  # [official code] conv7-10_atrous, xconv7-10_atrous
GAN_LOSSES = ("hinge", "wgan_gp")


class ConvSpec(NamedTuple):
    """One ``gen_conv`` (or ``gen_deconv`` when ``upsample``): out channels, kernel, stride, dilation, activation."""

    out_channels: int
    kernel: int
    stride: int = 1
    dilation: int = 1
    activation: str | None = "elu"
    upsample: bool = False


def _decoder_specs(cnum: int, num_downsamples: int) -> list[ConvSpec]:
    """[official code] conv13-17 / allconv13-17: per level gen_deconv(c) + gen_conv(c), the last conv c/2, then RGB."""
    specs: list[ConvSpec] = []
    for level in reversed(range(num_downsamples)):
        width = cnum * 2**level
        specs += [ConvSpec(width, 3, upsample=True), ConvSpec(width if level else cnum // 2, 3)]
    return specs + [ConvSpec(3, 3, activation=None)]  # linear output, clipped by the generator


def generator_layer_specs(
    cnum: int = 32, num_downsamples: int = 2, dilations: Sequence[int] = OFFICIAL_DILATIONS
) -> dict[str, list[ConvSpec]]:
    """The layer lists of the v1 generator, scaled by ``cnum`` and the number of stride-2 levels.

    Keys: "coarse" (stage 1), "dilated_branch", "attention_branch" (before the attention layer),
    "after_attention", "merge" (after the concatenation). Each stride-2 level doubles the width, so the
    bottleneck has ``cnum * 2**num_downsamples`` channels; with cnum 32 and 2 levels the lists are the
    official ones ([official code] ``build_inpaint_net``).
    """
    if cnum < 2 or num_downsamples < 1:
        raise ValueError(f"cnum must be >= 2 and num_downsamples >= 1; got {cnum} and {num_downsamples}")
    width = cnum * 2**num_downsamples  # bottleneck channels (128 for the official cnum 32)
    coarse = [ConvSpec(cnum, 5)]
    dilated_branch = [ConvSpec(cnum, 5)]
    attention_branch = [ConvSpec(cnum, 5)]
    for level in range(1, num_downsamples + 1):
        coarse += [ConvSpec(cnum * 2**level, 3, 2), ConvSpec(cnum * 2**level, 3)]  # conv2-conv5
        dilated_branch += [ConvSpec(cnum * 2 ** (level - 1), 3, 2), ConvSpec(cnum * 2**level, 3)]  # xconv2-xconv5
        last = level == num_downsamples  # pmconv4_downsample jumps to full width
        attention_branch += [ConvSpec(width if last else cnum * 2 ** (level - 1), 3, 2), ConvSpec(cnum * 2**level, 3)]
    dilated = [ConvSpec(width, 3, dilation=d) for d in dilations]
    coarse += [ConvSpec(width, 3)] + dilated + [ConvSpec(width, 3), ConvSpec(width, 3)] + _decoder_specs(cnum, num_downsamples)
    dilated_branch += [ConvSpec(width, 3)] + dilated
    attention_branch += [ConvSpec(width, 3, activation="relu")]  # pmconv6: ReLU, not ELU
    return {
        "coarse": coarse,
        "dilated_branch": dilated_branch,
        "attention_branch": attention_branch,
        "after_attention": [ConvSpec(width, 3), ConvSpec(width, 3)],  # pmconv9-10
        "merge": [ConvSpec(width, 3), ConvSpec(width, 3)] + _decoder_specs(cnum, num_downsamples),  # allconv11-17
    }


_ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, None: nn.Identity}


def _tf_default_init(layer: nn.Conv2d | nn.Linear) -> None:
    """Glorot-uniform weights and zero biases, the defaults of ``tf.layers.conv2d`` / ``dense`` [official code].

    PyTorch's default (uniform with bound 1/sqrt(fan_in)) has a third of that variance, and through the
    17 un-normalised layers of a stage the signal then shrinks enough to slow training visibly.
    """
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)


class GenConv(nn.Module):
    """``gen_conv`` / ``gen_deconv``: [x2 nearest upsample] -> conv with TF 'SAME' padding -> ELU.

    (B, C_in, H, W) -> (B, C_out, H', W') with H' = ceil(H / stride) (x2 first when ``upsample``).
    [official code] inpaint_ops.py: conv2d(padding='SAME', activation=elu); gen_deconv resizes by 2 with
    nearest neighbour and align_corners=True (neuralgym ``resize``), then a 3x3 gen_conv.
    """

    def __init__(self, in_channels: int, spec: ConvSpec):
        super().__init__()
        if spec.activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {spec.activation!r}; expected elu, relu or None")
        self.spec = spec
        self.reach = spec.dilation * (spec.kernel - 1) + 1  # effective kernel size
        # stride 1 with an odd reach: 'SAME' is symmetric whatever the size, so the conv pads itself
        self.fixed_padding = spec.stride == 1 and self.reach % 2 == 1
        padding = self.reach // 2 if self.fixed_padding else 0
        self.conv = nn.Conv2d(in_channels, spec.out_channels, spec.kernel, spec.stride, padding, spec.dilation)
        _tf_default_init(self.conv)
        self.activation = _ACTIVATIONS[spec.activation]()

    def forward(self, x: Tensor) -> Tensor:
        if self.spec.upsample:  # the TF align-corners rule also serves upsampling
            x = downsample_nearest_align_corners(x, (2 * x.shape[-2], 2 * x.shape[-1]))
        if not self.fixed_padding:  # e.g. 3x3 stride 2 on an even size: (0, 1)
            top, bottom = same_padding(x.shape[-2], self.reach, self.spec.stride)
            left, right = same_padding(x.shape[-1], self.reach, self.spec.stride)
            x = F.pad(x, (left, right, top, bottom))
        return self.activation(self.conv(x))


def _stack(in_channels: int, specs: Sequence[ConvSpec]) -> nn.Sequential:
    layers = []
    for spec in specs:
        layers.append(GenConv(in_channels, spec))
        in_channels = spec.out_channels
    return nn.Sequential(*layers)


def downsample_mask(mask: Tensor, factor: int) -> Tensor:
    """(B, 1, H, W) -> (B, 1, H / factor, W / factor); a cell is a hole if any pixel in it is.

    [our choice] max-pooling; the official ``resize_mask_like`` (nearest neighbour) can drop thin strokes.
    """
    return F.max_pool2d(mask, factor) if factor > 1 else mask


class DeepFillOutput(NamedTuple):
    """Generator outputs: coarse and refined images (B, 3, H, W) in [0, 1]; the attention of stage 2
    (output, attention (B, Lq, Lk), flow (B, 2, h, w)) when asked for and the branch exists, else None."""

    coarse: Tensor
    refined: Tensor
    attention: ContextualAttentionResult | None


class DeepFillGenerator(nn.Module):
    """Two-stage DeepFill v1 generator, images in [0, 1] outside and [-1, 1] inside.

    ``use_attention=False`` removes the contextual-attention branch (the ablation): stage 2 is then the
    dilated branch alone. ``attention`` configures the layer (default: the official 3x3 matching,
    rate 2, fuse 3, softmax scale 10). Images must be divisible by ``2**num_downsamples * rate``.
    """

    def __init__(
        self,
        cnum: int = 32,
        num_downsamples: int = 2,
        dilations: Sequence[int] = OFFICIAL_DILATIONS,
        use_attention: bool = True,
        attention: ContextualAttention | None = None,
    ):
        super().__init__()
        specs = generator_layer_specs(cnum, num_downsamples, dilations)
        self.num_downsamples, self.use_attention = num_downsamples, use_attention
        width = specs["dilated_branch"][-1].out_channels
        self.coarse = _stack(5, specs["coarse"])  # input: image, ones, mask [official code]
        self.dilated_branch = _stack(5, specs["dilated_branch"])
        if use_attention:
            self.attention_branch = _stack(5, specs["attention_branch"])
            self.attention = attention if attention is not None else ContextualAttention()
            self.after_attention = _stack(width, specs["after_attention"])
        self.merge = _stack(2 * width if use_attention else width, specs["merge"])

    @property
    def stride(self) -> int:
        """Image sizes must be multiples of this."""
        return 2**self.num_downsamples * (self.attention.rate if self.use_attention else 1)

    def forward(self, image: Tensor, mask: Tensor, return_attention: bool = False) -> DeepFillOutput:
        """image (B, 3, H, W) in [0, 1] (hole content is ignored), mask (B, 1, H, W) -> DeepFillOutput."""
        check_mask(mask, image)
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must have shape (B, 3, H, W); got {tuple(image.shape)}")
        if image.shape[-2] % self.stride or image.shape[-1] % self.stride:
            raise ValueError(f"image size {tuple(image.shape[-2:])} must be divisible by {self.stride}")
        incomplete = (2 * image - 1) * (1 - mask)  # [-1, 1], holes 0  [official code]
        ones = torch.ones_like(mask)
        coarse = self.coarse(torch.cat([incomplete, ones, mask], 1)).clamp(-1, 1)  # stage 1, clipped [official code] (v2: tanh)
        merged = coarse * mask + incomplete * (1 - mask)  # stage-2 input [official code]
        stage2_in = torch.cat([merged, ones, mask], 1)  # (B, 5, H, W)
        features = self.dilated_branch(stage2_in)  # (B, W, H/s, W/s)
        found = None
        if self.use_attention:
            x = self.attention_branch(stage2_in)  # (B, W, H/s, W/s)
            feature_mask = downsample_mask(mask, 2**self.num_downsamples)
            if return_attention:
                found = self.attention(x, x, feature_mask, return_flow=True, return_attention=True)
                x = found.output
            else:
                x = self.attention(x, x, feature_mask)  # self-attention, f = b [official code]
            features = torch.cat([features, self.after_attention(x)], 1)  # concat(x_hallu, pm)
        refined = self.merge(features).clamp(-1, 1)  # clipped [official code]
        return DeepFillOutput((coarse + 1) / 2, (refined + 1) / 2, found)


class DeepFillInpainter(DeepFillGenerator):
    """``DeepFillGenerator`` whose ``forward(masked (B,3,H,W), mask (B,1,H,W))`` returns only the refined
    image (B,3,H,W): the signature ``inpaintlib.compare`` rebuilds. Same state-dict keys as the generator."""

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        return super().forward(image, mask).refined


def chebyshev_distance_to_known(mask: Tensor) -> Tensor:
    """(B, 1, H, W) mask -> (B, 1, H, W) float: max(|dy|, |dx|) to the nearest known pixel (0 if known).

    Computed by growing the known region one 3x3 max-pool at a time (a loop over distances, not
    pixels). A sample with no known pixel gets max(H, W) everywhere.
    """
    known = 1 - mask
    distance = torch.zeros_like(mask)
    for _ in range(max(mask.shape[-2:])):
        if bool(known.all()):
            break
        distance = distance + (1 - known)
        known = F.max_pool2d(known, 3, stride=1, padding=1)
    return distance


def spatial_discount(mask: Tensor, gamma: float = 0.9) -> Tensor:
    """Loss weights (B, 1, H, W): gamma ** (d - 1) in the hole, d = distance to the nearest known pixel; 0 outside.

    [paper] "gamma^l, where l is the distance of the pixel to the nearest known pixel"; [official code]
    (``spatial_discounting_mask`` in ``inpaint_ops.py``) computes max(gamma^min(i, H-i), gamma^min(j, W-j)) over the box, i.e. gamma^(distance to
    the box edge), so a box's edge pixels (d = 1 here) get weight 1 in both. gamma: official config
    0.9, paper 0.99.
    """
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1]; got {gamma}")
    distance = chebyshev_distance_to_known(mask)
    return mask * gamma ** (distance - 1).clamp(min=0)


def spatially_discounted_l1(pred: Tensor, target: Tensor, mask: Tensor, gamma: float = 0.9,
                            weight: Tensor | None = None) -> Tensor:
    """sum(|pred - target| * w) / (C * number of hole pixels), w = :func:`spatial_discount`.

    [official code] (``inpaint_model.py``): a mean over the box of |gt - x| * w (normalised by the count, not by sum(w)).
    ``weight``: ``spatial_discount(mask, gamma)`` when the caller already has it (both stages share it).
    """
    if weight is None:
        weight = spatial_discount(mask, gamma)
    return ((pred - target).abs() * weight).sum() / (pred.shape[1] * mask.sum()).clamp(min=1.0)


def hole_window_offsets(mask: Tensor, size: int) -> Tensor:
    """Top-left corners (B, 2) of ``size x size`` windows centred on each sample's hole bounding box.

    Windows stay inside the image; a sample without a hole gets the centred window. [our choice] for
    free-form masks; v1's local critic crops its single 128 x 128 box [official code].
    """
    height, width = mask.shape[-2:]
    if not 1 <= size <= min(height, width):
        raise ValueError(f"window size {size} must be between 1 and the image size {height}x{width}")
    hole = mask[:, 0] > 0  # (B, H, W)
    corners = []
    for profile in (hole.any(dim=2), hole.any(dim=1)):  # (B, H): rows with a hole pixel, then (B, W): columns
        extent = profile.shape[1]
        index = torch.arange(extent, device=mask.device)
        first = torch.where(profile, index, extent).amin(dim=1)
        last = torch.where(profile, index, -1).amax(dim=1)
        centre2 = torch.where(profile.any(dim=1), first + last + 1, torch.full_like(first, extent))  # 2 * centre
        corners.append((torch.div(centre2 - size, 2, rounding_mode="floor")).clamp(0, extent - size))
    return torch.stack(corners, dim=1)


def crop_windows(x: Tensor, offsets: Tensor, size: int) -> Tensor:
    """Per-sample crops: x (B, C, H, W), offsets (B, 2) top-left -> (B, C, size, size) (differentiable)."""
    if offsets.shape != (x.shape[0], 2):
        raise ValueError(f"offsets must have shape ({x.shape[0]}, 2); got {tuple(offsets.shape)}")
    steps = torch.arange(size, device=x.device)
    rows = (offsets[:, 0:1] + steps)[:, :, None]  # (B, size, 1)
    cols = (offsets[:, 1:2] + steps)[:, None, :]  # (B, 1, size)
    batch = torch.arange(x.shape[0], device=x.device)[:, None, None]
    return x.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (B, C, size, size)


class DeepFillCritic(nn.Module):
    """v1 critic: n x [conv 5x5 stride 2 'SAME' + LeakyReLU 0.2], flatten, dense -> (B, 1) scores.

    (B, in_channels, S, S) with S = ``input_size`` -> (B, 1). [official code] (``inpaint_model.py``): local critic
    64/128/256/512 on the 128 x 128 box, global critic 64/128/256/256 on the image, no normalisation
    (WGAN-GP). ``spectral=True`` wraps every layer in spectral norm (for the hinge loss, [our reconstruction]).
    """

    def __init__(self, channels: Sequence[int], input_size: int, in_channels: int = 3, spectral: bool = True):
        super().__init__()
        wrap = spectral_norm if spectral else (lambda module: module)
        self.input_size = input_size
        layers: list[nn.Module] = []
        size, previous = input_size, in_channels
        for width in channels:
            top, bottom = same_padding(size, 5, 2)  # TF 'SAME' of the official dis_conv
            conv = nn.Conv2d(previous, width, 5, 2)
            _tf_default_init(conv)
            layers += [nn.ZeroPad2d((top, bottom, top, bottom)), wrap(conv), nn.LeakyReLU(0.2)]
            size, previous = -(-size // 2), width
        self.features = nn.Sequential(*layers)
        dense = nn.Linear(previous * size * size, 1)
        _tf_default_init(dense)
        self.score = wrap(dense)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"critic expects (B, C, {self.input_size}, {self.input_size}); got {tuple(x.shape)}")
        return self.score(self.features(x).flatten(1))  # (B, 1)


def masked_gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, mask: Tensor) -> Tensor:
    """WGAN-GP penalty restricted to the hole: mean over samples of (sqrt(sum(grad^2 * mask)) - 1)^2.

    real, fake (B, C, H, W), mask (B, 1, H, W). [official code] neuralgym ``gradients_penalty``:
    interpolate with alpha ~ U(0, 1) per sample, gradient of the critic at the interpolate, slope over
    hole pixels only. Keeps the graph so the penalty trains the critic.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    between = (alpha * real + (1 - alpha) * fake).detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(critic(between).sum(), between, create_graph=True)
    slope = torch.sqrt((gradient.square() * mask).flatten(1).sum(1) + 1e-12)  # (B,); eps keeps sqrt differentiable at 0
    return (slope - 1).square().mean()


class DeepFillMethod(Method):
    """DeepFill v1 training recipe (``build_graph_with_losses`` in ``inpaint_model.py``) with the choices named in the module docstring.

    Generator loss [official code]: ``adv_weight * adv + l1_weight * (coarse_weight * DL1(x1) + DL1(x2))
    + ae_weight * (coarse_weight * L1_known(x1) + L1_known(x2))``, DL1 = spatially discounted L1 in the
    hole; official weights 0.001 / 1.2 / 1.2 / 1.2. Critics (``adv_weight > 0``): a global one on the
    composed image and a local one on a window of side ``image_size * local_fraction`` around the hole,
    their losses summed; ``gan_loss`` "hinge" (spectral norm) or "wgan_gp" (v1: penalty 10, in the hole).
    ``d_steps`` critic updates per generator update on the same batch (v1: 5 on fresh batches).
    """

    def __init__(
        self,
        image_size: int,
        cnum: int = 32,
        num_downsamples: int = 2,
        dilations: Sequence[int] = OFFICIAL_DILATIONS,
        use_attention: bool = True,
        gamma: float = 0.9,
        gan_loss: str = "hinge",
        adv_weight: float = 0.001,
        critic_cnum: int = 64,
        local_fraction: float = 0.5,
        d_steps: int = 1,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.5, 0.9),
        l1_weight: float = 1.2,
        ae_weight: float = 1.2,
        coarse_weight: float = 1.2,
        gp_weight: float = 10.0,
    ):
        super().__init__()
        if gan_loss not in GAN_LOSSES:
            raise ValueError(f"unknown gan_loss {gan_loss!r}; expected one of {', '.join(GAN_LOSSES)}")
        if d_steps < 1:
            raise ValueError(f"d_steps must be >= 1; got {d_steps}")
        self.generator = DeepFillGenerator(cnum, num_downsamples, dilations, use_attention)
        if image_size % self.generator.stride:
            raise ValueError(f"image_size {image_size} must be divisible by {self.generator.stride}")
        self.local_size = max(1, round(image_size * local_fraction))
        self.critics = None
        if adv_weight > 0:
            spectral = gan_loss == "hinge"
            c = critic_cnum
            self.critics = nn.ModuleDict({
                "global": DeepFillCritic((c, 2 * c, 4 * c, 4 * c), image_size, spectral=spectral),
                "local": DeepFillCritic((c, 2 * c, 4 * c, 8 * c), self.local_size, spectral=spectral),
            })
        self.gamma, self.gan_loss, self.adv_weight, self.d_steps = gamma, gan_loss, adv_weight, d_steps
        self.lr, self.betas = lr, tuple(betas)
        self.l1_weight, self.ae_weight, self.coarse_weight, self.gp_weight = l1_weight, ae_weight, coarse_weight, gp_weight

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers = {"g": torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=self.betas)}
        if self.critics is not None:
            optimizers["d"] = torch.optim.Adam(self.critics.parameters(), lr=self.lr, betas=self.betas)
        return optimizers

    def _critic_views(self, image: Tensor, mask: Tensor, offsets: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        """{critic name: (input, the mask over that input)}: the whole image and the window around the hole."""
        return {
            "global": (image, mask),
            "local": (crop_windows(image, offsets, self.local_size), crop_windows(mask, offsets, self.local_size)),
        }

    def _critic_loss(self, real: Tensor, composed: Tensor, mask: Tensor, offsets: Tensor) -> dict[str, Tensor]:
        terms = {}
        real_views = self._critic_views(real, mask, offsets)
        fake_views = self._critic_views(composed.detach(), mask, offsets)
        for name, critic in self.critics.items():
            (real_in, view_mask), (fake_in, _) = real_views[name], fake_views[name]
            real_score, fake_score = critic(real_in), critic(fake_in)
            if self.gan_loss == "hinge":
                terms[name] = hinge_d_loss(real_score, fake_score)
            else:  # WGAN: d = mean(D(fake) - D(real)) + 10 * GP
                terms[name] = fake_score.mean() - real_score.mean()
                terms[f"{name}_gp"] = self.gp_weight * masked_gradient_penalty(critic, real_in, fake_in, view_mask)
        return terms

    def _adversarial_loss(self, composed: Tensor, mask: Tensor, offsets: Tensor) -> Tensor:
        views = self._critic_views(composed, mask, offsets)
        scores = [critic(views[name][0]) for name, critic in self.critics.items()]
        return sum(hinge_g_loss(score) for score in scores)  # -mean(D(fake)) for both hinge and WGAN

    def training_step(self, batch: dict[str, Tensor], update: UpdateFn) -> None:
        image, mask = batch["image"], batch["mask"]
        out = self.generator(image * (1 - mask), mask)
        composed = out.refined * mask + image * (1 - mask)
        offsets = hole_window_offsets(mask, self.local_size)
        if self.critics is not None:
            for _ in range(self.d_steps):
                update("d", self._critic_loss(image, composed, mask, offsets))
        discount = spatial_discount(mask, self.gamma)  # (B, 1, H, W), once for both stages
        terms = {
            "discounted_l1": self.l1_weight * (
                self.coarse_weight * spatially_discounted_l1(out.coarse, image, mask, weight=discount)
                + spatially_discounted_l1(out.refined, image, mask, weight=discount)
            ),
            "known_l1": self.ae_weight * (
                self.coarse_weight * valid_l1(out.coarse, image, mask) + valid_l1(out.refined, image, mask)
            ),
        }
        if self.critics is not None:
            terms["adv"] = self.adv_weight * self._adversarial_loss(composed, mask, offsets)
        update("g", terms)

    @torch.no_grad()
    def inpaint(self, image: Tensor, mask: Tensor) -> Tensor:
        """(B, 3, H, W) masked image in [0, 1], (B, 1, H, W) mask -> refined (B, 3, H, W) in [0, 1]."""
        return self.generator(image, mask).refined
