"""LPIPS (Zhang et al., CVPR 2018), VGG16 variant, from weight files the user supplies.

LPIPS needs two files that cannot be downloaded where this book is built: the ImageNet VGG16
weights of torchvision (``vgg16-397923af.pth``, keys ``features.<i>.weight``) and the LPIPS v0.1
linear calibration of the VGG variant (``vgg.pth`` of the ``lpips`` package, keys
``lin<k>.model.1.weight``). Give their paths to :meth:`LPIPS.from_files`, or set
``INPAINTLIB_LPIPS_VGG16`` and ``INPAINTLIB_LPIPS_LINEAR`` for :func:`lpips_from_environment`;
without them the book reports LPIPS as unavailable. An :class:`LPIPS` built without the files has
random weights: it computes the formula, and its numbers are not LPIPS.

Distance [paper, eq. 1], with unit-normalised activations ``ŷ^l`` of five VGG16 layers (relu1_2,
relu2_2, relu3_3, relu4_3, relu5_3) and a learned non-negative weight ``w_l`` per channel::

    d(x, x0) = Σ_l 1/(H_l W_l) Σ_{h,w} || w_l ⊙ (ŷ^l_hw − ŷ0^l_hw) ||²

[official code] (``lpips/lpips.py``, v0.1): images in [-1, 1] are shifted and scaled per channel
(``ScalingLayer``) before the trunk; normalisation divides by ``sqrt(Σ_c y²) + 1e-10``; the released
``w_l`` is a bias-free 1x1 convolution applied to the squared difference, so what is computed is
``Σ_c w_lc (ŷ_c − ŷ0_c)²`` (the paper's ``w_l`` squared, as the weights are stored).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from inpaintlib.checks import check_image

VGG16_ENV_VAR = "INPAINTLIB_LPIPS_VGG16"
LINEAR_ENV_VAR = "INPAINTLIB_LPIPS_LINEAR"

# torchvision's vgg16().features, configuration D: channels of each 3x3 conv, "M" a 2x2/2 max pool.
VGG16_FEATURES = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
# Indices in that Sequential after which LPIPS taps the activation: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
LPIPS_TAPS = (3, 8, 15, 22, 29)
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
# [official code] ScalingLayer: per-channel shift and scale of [-1, 1] RGB inputs.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class LPIPSWeightsError(ValueError):
    """A weight file that is missing, unreadable or not laid out as expected, named in one line."""


def vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features`` up to relu5_3 (indices 0-29), with the same state-dict keys."""
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_FEATURES:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU()]
            channels = item
    return nn.Sequential(*layers)


def normalize_channels(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """(B, C, H, W) -> the same with every pixel's channel vector divided by its norm (+ eps)."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def _read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise LPIPSWeightsError(f"{what} weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated file, a pickle of something else, ...
        first = next((line.strip() for line in str(err).splitlines() if line.strip()), "")  # one line, the file named
        raise LPIPSWeightsError(f"cannot read {what} weights {path}: {type(err).__name__}: {first}") from err
    if not isinstance(state, dict):
        raise LPIPSWeightsError(f"{what} weights {path} hold a {type(state).__name__}, not a state dict")
    return state


def _take(state: dict[str, torch.Tensor], key: str, shape: tuple[int, ...], path: str | Path) -> torch.Tensor:
    if key not in state:
        raise LPIPSWeightsError(f"{path} has no {key!r}; is it the right file?")
    if tuple(state[key].shape) != shape:
        raise LPIPSWeightsError(f"{path}: {key!r} has shape {tuple(state[key].shape)}, expected {shape}")
    return state[key].float()


class LPIPS(nn.Module):
    """``forward(a, b)``: images (B, 3, H, W) in [0, 1] -> LPIPS distance per image (B,)."""

    def __init__(self):
        super().__init__()
        self.features = vgg16_features()
        self.linear = nn.ParameterList(nn.Parameter(torch.rand(1, c, 1, 1) / c) for c in LPIPS_CHANNELS)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(cls, vgg16_path: str | Path, linear_path: str | Path) -> "LPIPS":
        """Load torchvision's VGG16 ``.pth`` (classifier keys are ignored) and lpips v0.1 ``vgg.pth``."""
        model = cls()
        vgg, lin = _read_state_dict(vgg16_path, "VGG16"), _read_state_dict(linear_path, "LPIPS linear")
        for index, layer in enumerate(model.features):
            if isinstance(layer, nn.Conv2d):
                layer.weight.copy_(_take(vgg, f"features.{index}.weight", tuple(layer.weight.shape), vgg16_path))
                layer.bias.copy_(_take(vgg, f"features.{index}.bias", tuple(layer.bias.shape), vgg16_path))
        for k, weight in enumerate(model.linear):
            weight.copy_(_take(lin, f"lin{k}.model.1.weight", tuple(weight.shape), linear_path))
        return model

    def layer_distances(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) pair -> (B, 5): the term of each tapped layer; their sum is the distance."""
        check_image(a)
        check_image(b)
        if a.shape != b.shape:
            raise ValueError(f"LPIPS compares images of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
        x = (torch.cat([a, b]) * 2 - 1 - self.shift) / self.scale  # [0,1] -> [-1,1] -> ScalingLayer
        terms = []
        for index, layer in enumerate(self.features[: LPIPS_TAPS[-1] + 1]):
            x = layer(x)
            if index in LPIPS_TAPS:
                ya, yb = normalize_channels(x).chunk(2)
                weight = self.linear[LPIPS_TAPS.index(index)]
                terms.append(F.conv2d((ya - yb).pow(2), weight).mean(dim=(1, 2, 3)))  # 1/(H_l W_l) Σ_hw w_l·(Δŷ)²
        return torch.stack(terms, dim=1)

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.layer_distances(a, b).sum(dim=1)


def lpips_from_environment() -> LPIPS | None:
    """``LPIPS.from_files`` with the paths in ``INPAINTLIB_LPIPS_VGG16`` / ``INPAINTLIB_LPIPS_LINEAR``;
    ``None`` when either variable is unset (a set variable naming a bad file raises)."""
    vgg16_path, linear_path = os.environ.get(VGG16_ENV_VAR), os.environ.get(LINEAR_ENV_VAR)
    if not vgg16_path or not linear_path:
        return None
    return LPIPS.from_files(vgg16_path, linear_path)
