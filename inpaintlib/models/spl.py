"""SPL (Zhang et al., IJCAI 2021): context-aware image inpainting with learned semantic priors.

A frozen multi-label classifier (the *pretext teacher*) sees the full image; its intermediate feature
map ``f_T`` says what is where. A *semantic prior learner* sees only the masked image and learns to
predict ``f_T``, hole included (a masked-weighted L1 distillation loss). Its last hidden map, the
``layout``, conditions the *image restoration branch* through SPADE blocks, so the generator knows
which class should continue into the hole.

[official code] = WendongZh/SPL (https://github.com/WendongZh/SPL: ``networks.py``, ``rn.py``, ``main.py``,
``models_inpaint.py``). Choices of ours, each repeated where it is made:

- the teacher is a small TResNet-like CNN trained in the book on clean Scenes multi-labels (the
  official TResNet-L OpenImages weights cannot be downloaded here); ``load_teacher`` reads a
  user-supplied teacher checkpoint (safetensors, written by ``save_teacher``);
- every width and depth is a constructor argument whose default is the official value; the book's
  presets scale them down for a CPU;
- the discriminator returns logits and the losses use BCE-with-logits, which equals the official
  sigmoid + ``BCELoss`` except that ``BCELoss`` clamps ``log`` at -100.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn
from torch.nn.utils import spectral_norm

from inpaintlib.data.scenes import NUM_CLASSES
from inpaintlib.masks import check_mask
from inpaintlib.nn.region_norm import BasicRegionNorm, LearnableRegionNorm, SpadeResnetBlock
from inpaintlib.train import CheckpointError, Method, Trainer, UpdateFn, atomic_save

PRIOR_SCALE = 2  # [official code] the teacher and the prior learner see 512 px for a 256 px image
TEACHER_METADATA_KEY = "spl_teacher"


# ----------------------------------------------------------------------------------------------
# Inputs of the two high-resolution networks
# ----------------------------------------------------------------------------------------------


def teacher_input(image: torch.Tensor) -> torch.Tensor:
    """The full image at twice the size, bilinear: ``(B,3,H,W)`` -> ``(B,3,2H,2W)``.

    [official code] ``gt_512`` is a bilinear ``cv2.resize`` of the original image to 512 px.
    """
    return F.interpolate(image, scale_factor=PRIOR_SCALE, mode="bilinear", align_corners=False)


def prior_learner_input(masked_image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``cat(x_in, m)`` at twice the size, nearest: ``(B,3,H,W)``, ``(B,1,H,W)`` -> ``(B,4,2H,2W)``.

    ``x_in = x * (1 - m) + m`` fills the hole with white [official code ``main.py``: ``gt_512_masked``,
    ``mask_512``, both ``F.interpolate`` with its default nearest mode].
    """
    filled = masked_image * (1 - mask) + mask
    return F.interpolate(torch.cat([filled, mask], dim=1), scale_factor=PRIOR_SCALE, mode="nearest")


# ----------------------------------------------------------------------------------------------
# The pretext teacher: a small multi-label classifier, TResNet-like, truncated after "layer2" for f_T
# ----------------------------------------------------------------------------------------------


class SpaceToDepth(nn.Module):
    """``(B,C,H,W)`` -> ``(B,C*s*s,H/s,W/s)``: each ``s x s`` block becomes channels (TResNet's stem)."""

    def __init__(self, block: int = 4):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(x, self.block)


class TeacherBlock(nn.Module):
    """ResNet basic block with BN and LeakyReLU(0.01) (TResNet's InPlaceABN activation), no SE.

    ``(B,C_in,H,W)`` -> ``(B,C_out,H/stride,W/stride)``; a 1x1 conv + BN shortcut when the shape changes.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.LeakyReLU(0.01),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class SceneTeacher(nn.Module):
    """The pretext teacher [our reconstruction of the official truncated TResNet-L at a small size].

    ``features``: image ``(B,3,H,W)`` in [0,1] -> ``f_T`` ``(B,channels[1],H/8,W/8)``: SpaceToDepth(4)
    -> conv3 + BN + LeakyReLU -> layer1 (stride 1) -> layer2 (stride 2). ``forward`` adds the part
    the official teacher drops after loading (layer3, global average pool, linear head) and returns
    multi-label logits ``(B,num_classes)``; it exists to train the teacher here.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, channels: Sequence[int] = (24, 48, 96),
                 blocks: Sequence[int] = (2, 2, 1)):
        super().__init__()
        if len(channels) != 3 or len(blocks) != 3 or min(blocks) < 1:
            raise ValueError(f"SceneTeacher needs 3 channel widths and 3 block counts >= 1, got {channels}, {blocks}")
        self.num_classes, self.channels, self.blocks = num_classes, tuple(channels), tuple(blocks)
        c1, c2, c3 = self.channels
        self.stem = nn.Sequential(
            SpaceToDepth(4), nn.Conv2d(48, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.LeakyReLU(0.01)
        )
        self.layer1 = nn.Sequential(*[TeacherBlock(c1, c1) for _ in range(blocks[0])])
        self.layer2 = nn.Sequential(TeacherBlock(c1, c2, stride=2), *[TeacherBlock(c2, c2) for _ in range(blocks[1] - 1)])
        self.layer3 = nn.Sequential(TeacherBlock(c2, c3, stride=2), *[TeacherBlock(c3, c3) for _ in range(blocks[2] - 1)])
        self.head = nn.Linear(c3, num_classes)

    @property
    def feature_channels(self) -> int:
        return self.channels[1]

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """``f_T``: ``(B,3,H,W)`` -> ``(B,C_T,H/8,W/8)`` (H, W divisible by 8)."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"the teacher takes RGB images (B, 3, H, W), got {tuple(image.shape)}")
        if image.shape[-1] % 8 or image.shape[-2] % 8:
            raise ValueError(f"the teacher needs H and W divisible by 8, got {tuple(image.shape[-2:])}")
        return self.layer2(self.layer1(self.stem(image)))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Multi-label logits ``(B,num_classes)``."""
        return self.head(self.layer3(self.features(image)).mean(dim=(2, 3)))


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and ``requires_grad=False`` for every parameter (the teacher is never trained by SPL)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


class TeacherTraining(Method):
    """Train a ``SceneTeacher`` with BCE on the image-level multi-labels ``present`` of clean images.

    The teacher sees ``teacher_input(image)`` (twice the size), as it will during distillation; the
    batch's mask is ignored. [our reconstruction: the official teacher was trained with ASL on OpenImages]
    """

    def __init__(self, teacher: SceneTeacher, lr: float = 1e-3):
        super().__init__()
        self.teacher, self.lr = teacher, lr

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"teacher": torch.optim.Adam(self.teacher.parameters(), lr=self.lr)}

    def training_step(self, batch: dict[str, torch.Tensor], update: UpdateFn) -> None:
        logits = self.teacher(teacher_input(batch["image"]))
        update("teacher", {"bce": F.binary_cross_entropy_with_logits(logits, batch["present"])})


def train_teacher(
    batches, steps: int, teacher: SceneTeacher | None = None, lr: float = 1e-3,
    device: str | torch.device = "cpu", checkpoint_dir: str | Path | None = None, progress: bool = True,
) -> SceneTeacher:
    """Train ``teacher`` (default ``SceneTeacher()``) for ``steps`` on ``batches``; returns it frozen."""
    teacher = SceneTeacher() if teacher is None else teacher
    Trainer(TeacherTraining(teacher, lr), batches, steps, checkpoint_dir=checkpoint_dir, device=device,
            progress=progress, log_every=25).fit()
    return freeze(teacher)


@torch.no_grad()
def teacher_scores(
    teacher: SceneTeacher, images: torch.Tensor, present: torch.Tensor, batch_size: int = 64
) -> dict[str, float]:
    """Multi-label quality on ``images`` ``(N,3,H,W)`` against ``present`` ``(N,K)`` (threshold 0.5).

    ``label_accuracy``: the fraction of (image, class) decisions that are right; ``exact_match``: the
    fraction of images whose every class is right.
    """
    device = next(teacher.parameters()).device
    preds = torch.cat([
        (teacher(teacher_input(images[i : i + batch_size].to(device))) > 0).float().cpu()
        for i in range(0, len(images), batch_size)
    ])
    right = preds == present
    return {"label_accuracy": float(right.float().mean()), "exact_match": float(right.all(dim=1).float().mean())}


def save_teacher(teacher: SceneTeacher, path: str | Path) -> None:
    """Weights and architecture (as safetensors metadata) of a teacher, so ``load_teacher`` can rebuild it."""
    config = {"num_classes": teacher.num_classes, "channels": list(teacher.channels), "blocks": list(teacher.blocks)}
    atomic_save(dict(teacher.state_dict()), Path(path), metadata={TEACHER_METADATA_KEY: json.dumps(config)})


def load_teacher(path: str | Path, feature_channels: int | None = None) -> SceneTeacher:
    """A frozen ``SceneTeacher`` from a user-supplied safetensors file written by ``save_teacher``.

    Raises ``CheckpointError`` naming the problem: missing file, not safetensors, no teacher metadata,
    weights that do not fit the recorded architecture, or (``feature_channels`` given) an ``f_T``
    width that differs from what the generator was built for.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"teacher checkpoint not found: {path}")
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"teacher checkpoint {path} is not a readable safetensors file ({err})") from err
    if TEACHER_METADATA_KEY not in metadata:
        raise CheckpointError(
            f"teacher checkpoint {path} has no '{TEACHER_METADATA_KEY}' metadata (num_classes, channels, blocks); "
            "write it with inpaintlib.models.spl.save_teacher"
        )
    try:
        config = json.loads(metadata[TEACHER_METADATA_KEY])
        teacher = SceneTeacher(config["num_classes"], config["channels"], config["blocks"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"teacher checkpoint {path} has malformed '{TEACHER_METADATA_KEY}' metadata ({err})"
        ) from err
    try:
        teacher.load_state_dict(tensors)
    except RuntimeError as err:
        lines = str(err).strip().splitlines()
        raise CheckpointError(
            f"teacher checkpoint {path} does not fit SceneTeacher{tuple(config.values())}: {lines[-1].strip()}"
        ) from err
    if feature_channels is not None and teacher.feature_channels != feature_channels:
        raise CheckpointError(
            f"teacher checkpoint {path} gives f_T with {teacher.feature_channels} channels; the generator maps its "
            f"prior to {feature_channels} (build SPLGenerator(teacher_channels={teacher.feature_channels}))"
        )
    return freeze(teacher)


# ----------------------------------------------------------------------------------------------
# The semantic prior learner
# ----------------------------------------------------------------------------------------------


class DenseLayer(nn.Module):
    """``(B,C,H,W)`` -> ``(B,C+growth,H,W)``: ``cat(x, ReLU(conv3(x)))`` [official code]."""

    def __init__(self, c_in: int, growth: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, growth, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, F.relu(self.conv(x))], dim=1)


class ResidualDenseBlock(nn.Module):
    """RDB [official code ``RDB``]: ``layers`` dense layers, a 1x1 local fusion, a local residual.

    ``(B,C,H,W)`` -> ``(B,C,H,W)``.
    """

    def __init__(self, channels: int, growth: int = 32, layers: int = 6):
        super().__init__()
        self.dense = nn.Sequential(*[DenseLayer(channels + growth * i, growth) for i in range(layers)])
        self.fuse = nn.Conv2d(channels + growth * layers, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fuse(self.dense(x))


class ResnetBlock(nn.Module):
    """``x + conv3(ReLU(conv3(x)))`` with reflection padding, no norm [official code ``ResnetBlock``, no SN]."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SemanticPriorLearner(nn.Module):
    """Masked image ``(B,3,H,W)`` + mask -> ``layout`` ``(B,4c,H/4,W/4)`` and ``f_S`` ``(B,C_T,H/4,W/4)``.

    [official code ``G_Net``, the ``_sm`` branch] on ``prior_learner_input`` (twice the size):
    ReflPad3 + conv7 (4 -> c) -> three stride-2 conv4 (c -> 2c -> 4c -> 4c), LeakyReLU(0.1) after each
    => ``x_sm``; conv3 -> ``rdb_blocks`` RDBs in series; global feature fusion (1x1 over all RDB outputs,
    conv3) plus ``x_sm``; ``res_blocks`` ResnetBlocks => ``layout``; 1x1 ``feature_mapping`` => ``f_S``.
    Official: c = 64, 16 RDBs of 6 layers with growth 32, 4 ResnetBlocks, C_T = 152.
    """

    def __init__(self, channels: int = 64, rdb_blocks: int = 16, rdb_layers: int = 6, rdb_growth: int = 32,
                 res_blocks: int = 4, teacher_channels: int = 152):
        super().__init__()
        c = channels
        self.layout_channels, self.teacher_channels = 4 * c, teacher_channels
        self.encoder = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(4, c, 7), nn.LeakyReLU(0.1),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(2 * c, 4 * c, 4, stride=2, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(4 * c, 4 * c, 4, stride=2, padding=1), nn.LeakyReLU(0.1),
        )
        self.encoder_out = nn.Conv2d(4 * c, 4 * c, 3, padding=1)
        self.rdbs = nn.ModuleList(ResidualDenseBlock(4 * c, rdb_growth, rdb_layers) for _ in range(rdb_blocks))
        self.global_fusion = nn.Sequential(
            nn.Conv2d(4 * c * rdb_blocks, 4 * c, 1), nn.Conv2d(4 * c, 4 * c, 3, padding=1)
        )
        self.feature_recon = nn.Sequential(*[ResnetBlock(4 * c) for _ in range(res_blocks)])
        self.feature_mapping = nn.Conv2d(4 * c, teacher_channels, 1)

    def forward(self, masked_image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_sm = self.encoder(prior_learner_input(masked_image, mask))  # (B, 4c, H/4, W/4)
        h, local = self.encoder_out(x_sm), []
        for rdb in self.rdbs:
            h = rdb(h)
            local.append(h)
        fused = self.global_fusion(torch.cat(local, dim=1)) + x_sm  # global residual skips encoder_out
        layout = self.feature_recon(fused)
        return layout, self.feature_mapping(layout)


# ----------------------------------------------------------------------------------------------
# The generator: image restoration branch guided by the prior
# ----------------------------------------------------------------------------------------------


class SPLOutput(NamedTuple):
    """``image`` ``(B,3,H,W)`` in [0,1]; ``layout`` ``(B,L,H/4,W/4)`` and ``student_features``
    ``(B,C_T,H/4,W/4)`` (both None without a prior)."""

    image: torch.Tensor
    layout: torch.Tensor | None
    student_features: torch.Tensor | None


class SPLGenerator(nn.Module):
    """[official code ``G_Net``]: masked image ``(B,3,H,W)`` + mask ``(B,1,H,W)`` -> ``SPLOutput``.

    Image branch on ``x_in = x * (1 - m) + m`` (3 channels, the mask is not concatenated):
    ReflPad3 + conv7 (3 -> c) + RN-B + ReLU, two stride-2 conv4 (c -> 2c -> 4c) each + RN-B + ReLU;
    ``middle_blocks`` SPADE ResnetBlocks (dilation 2) all conditioned on the same ``layout``; decoder
    conv3 + PixelShuffle(2) + RN-L + ReLU twice (4c -> 2c -> c), ReflPad3 + conv7 (c -> 3);
    output ``(tanh + 1) / 2``. ``use_prior=False`` drops the prior learner and conditions nothing
    (the ablation). H and W must be divisible by 4. Defaults are the official sizes (about 45.6 M
    parameters); PyTorch's default initialisation, as officially.
    """

    def __init__(self, channels: int = 64, prior_channels: int = 64, middle_blocks: int = 8, rdb_blocks: int = 16,
                 rdb_layers: int = 6, rdb_growth: int = 32, prior_res_blocks: int = 4, spade_hidden: int = 128,
                 teacher_channels: int = 152, use_prior: bool = True, threshold: float = 0.8):
        super().__init__()
        c = channels
        self.use_prior = use_prior
        self.prior = (
            SemanticPriorLearner(prior_channels, rdb_blocks, rdb_layers, rdb_growth, prior_res_blocks, teacher_channels)
            if use_prior else None
        )
        layout_channels = self.prior.layout_channels if use_prior else 0
        self.enc_conv1 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, c, 7))
        self.enc_norm1 = BasicRegionNorm(c)
        self.enc_conv2 = nn.Conv2d(c, 2 * c, 4, stride=2, padding=1)
        self.enc_norm2 = BasicRegionNorm(2 * c)
        self.enc_conv3 = nn.Conv2d(2 * c, 4 * c, 4, stride=2, padding=1)
        self.enc_norm3 = BasicRegionNorm(4 * c)
        self.middle = nn.ModuleList(
            SpadeResnetBlock(4 * c, layout_channels, dilation=2, hidden=spade_hidden) for _ in range(middle_blocks)
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(4 * c, 2 * c * 4, 3, padding=1), nn.PixelShuffle(2),  # (B, 2c, H/2, W/2)
            LearnableRegionNorm(2 * c, threshold), nn.ReLU(),
            nn.Conv2d(2 * c, c * 4, 3, padding=1), nn.PixelShuffle(2),  # (B, c, H, W)
            LearnableRegionNorm(c, threshold), nn.ReLU(),
            nn.ReflectionPad2d(3), nn.Conv2d(c, 3, 7),
        )

    def encode(self, masked_image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Image branch encoder: ``(B,3,H,W)`` -> ``(B,4c,H/4,W/4)``."""
        x = masked_image * (1 - mask) + mask  # [official code] x_input: holes white, mask not concatenated
        x = F.relu(self.enc_norm1(self.enc_conv1(x), mask))
        x = F.relu(self.enc_norm2(self.enc_conv2(x), mask))
        return F.relu(self.enc_norm3(self.enc_conv3(x), mask))

    def forward(self, masked_image: torch.Tensor, mask: torch.Tensor) -> SPLOutput:
        check_mask(mask, masked_image)
        if masked_image.shape[1] != 3:
            raise ValueError(f"SPLGenerator takes RGB images (B, 3, H, W), got {tuple(masked_image.shape)}")
        if masked_image.shape[-1] % 4 or masked_image.shape[-2] % 4:
            raise ValueError(f"SPLGenerator needs H and W divisible by 4, got {tuple(masked_image.shape[-2:])}")
        layout, student = self.prior(masked_image, mask) if self.prior is not None else (None, None)
        x = self.encode(masked_image, mask)
        for block in self.middle:
            x = block(x, layout)
        return SPLOutput((torch.tanh(self.decoder(x)) + 1) / 2, layout, student)


class SPLInpainter(SPLGenerator):
    """``SPLGenerator`` whose ``forward`` returns only the image ``(B,3,H,W)``: the ``inpaint(masked, mask)``
    signature other code expects (e.g. ``inpaintlib.compare``). Same state-dict keys as ``SPLGenerator``.
    """

    def forward(self, masked_image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return super().forward(masked_image, mask).image


class SPLDiscriminator(nn.Module):
    """[official code ``D_Net``]: five conv4 (stride 2, 2, 2, 1, 1), spectral norm, no bias, LeakyReLU(0.2).

    Image ``(B,3,H,W)`` -> patch logits ``(B,1,H/8-2,W/8-2)`` (30 x 30 for 256 px). The official net
    applies a sigmoid here; we return logits and fold it into the BCE.
    """

    def __init__(self, channels: Sequence[int] = (64, 128, 256, 512), spectral: bool = True):
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"SPLDiscriminator needs 4 widths (stride 2, 2, 2, 1 layers), got {channels}")
        wrap = spectral_norm if spectral else (lambda m: m)
        chans, strides = (3, *channels, 1), (2, 2, 2, 1, 1)
        layers: list[nn.Module] = []
        for i, stride in enumerate(strides):
            layers.append(wrap(nn.Conv2d(chans[i], chans[i + 1], 4, stride=stride, padding=1, bias=not spectral)))
            if i < len(strides) - 1:
                layers.append(nn.LeakyReLU(0.2))
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


# ----------------------------------------------------------------------------------------------
# Losses [official code main.py::train]
# ----------------------------------------------------------------------------------------------


def nsgan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``0.5 * (BCE(D(gt), 1) + BCE(D(pred), 0))``, each a mean over patches."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return 0.5 * (real + fake)


def nsgan_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """``BCE(D(pred), 1)``: the non-saturating generator loss."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def hole_weighted_l1(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, hole_extra: float = 2.0
) -> torch.Tensor:
    """``mean(|pred - gt| * (1 + 2 m))`` over all ``B*C*H*W`` elements [official code]."""
    return ((pred - target).abs() * (1 + hole_extra * mask)).mean()


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, hole_extra: float = 3.0
) -> torch.Tensor:
    """The prior loss ``mean(|f_S - f_T| * (1 + 3 m_down))`` [official code].

    ``student``/``teacher`` ``(B,C,h,w)``; ``mask`` ``(B,1,H,W)`` resized to ``(h,w)`` by nearest.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"student features {tuple(student.shape)} and teacher features {tuple(teacher.shape)} differ")
    m = F.interpolate(mask, size=student.shape[-2:], mode="nearest")
    return ((student - teacher).abs() * (1 + hole_extra * m)).mean()


def hole_feature_error(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean ``|f_S - f_T|`` over channels and the hole cells only (mask resized by nearest): ``(B,)``.

    A picture-free measure of how well a prior recovers the teacher's semantics where pixels are
    missing [our addition]; an image without hole cells scores 0.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"student features {tuple(student.shape)} and teacher features {tuple(teacher.shape)} differ")
    m = F.interpolate(mask, size=student.shape[-2:], mode="nearest")  # (B, 1, h, w)
    per_cell = (student - teacher).abs().mean(dim=1, keepdim=True)  # (B, 1, h, w)
    return (per_cell * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3)).clamp_min(1.0)


# ----------------------------------------------------------------------------------------------
# The method
# ----------------------------------------------------------------------------------------------


class SPLMethod(Method):
    """SPL training: one D step, then one G step with ``adv * BCE_G + l1 * L1_w + prior * L_distill``.

    Weights [official code]: adv 1.0, l1 10, prior 1.0; Adam lr 1e-4, betas (0, 0.9), for both nets.
    ``use_prior=False``: no prior learner, no teacher (the ablation). ``distill=False``: the prior
    learner is kept but trained only through the image loss (its ``f_S`` head gets no loss). The
    teacher is frozen and stays in eval mode whatever ``train()`` is called with.
    """

    def __init__(self, teacher: SceneTeacher | None = None, use_prior: bool = True, distill: bool = True,
                 channels: int = 64, prior_channels: int = 64, middle_blocks: int = 8, rdb_blocks: int = 16,
                 rdb_layers: int = 6, rdb_growth: int = 32, prior_res_blocks: int = 4, spade_hidden: int = 128,
                 disc_channels: Sequence[int] = (64, 128, 256, 512), adv_weight: float = 1.0, l1_weight: float = 10.0,
                 prior_weight: float = 1.0, lr: float = 1e-4, betas: tuple[float, float] = (0.0, 0.9)):
        super().__init__()
        if distill and not use_prior:
            raise ValueError("distill=True needs use_prior=True (there is no prior to distil into)")
        if distill and teacher is None:
            raise ValueError("distill=True needs a teacher (train_teacher or load_teacher)")
        self.use_prior, self.distill = use_prior, distill
        self.teacher = freeze(teacher) if distill else None
        teacher_channels = teacher.feature_channels if teacher is not None else 4 * prior_channels
        self.generator = SPLGenerator(channels, prior_channels, middle_blocks, rdb_blocks, rdb_layers, rdb_growth,
                                      prior_res_blocks, spade_hidden, teacher_channels, use_prior)
        self.discriminator = SPLDiscriminator(disc_channels) if adv_weight > 0 else None
        self.adv_weight, self.l1_weight, self.prior_weight = adv_weight, l1_weight, prior_weight
        self.lr, self.betas = lr, tuple(betas)

    def train(self, mode: bool = True) -> "SPLMethod":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"g": torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=self.betas)}
        if self.discriminator is not None:
            opts["d"] = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr, betas=self.betas)
        return opts

    def training_step(self, batch: dict[str, torch.Tensor], update: UpdateFn) -> None:
        image, mask = batch["image"], batch["mask"]
        out = self.generator(image * (1 - mask), mask)
        terms = {"l1": self.l1_weight * hole_weighted_l1(out.image, image, mask)}
        if self.discriminator is not None:
            update("d", {"nsgan": nsgan_d_loss(self.discriminator(image), self.discriminator(out.image.detach()))})
            terms["adv"] = self.adv_weight * nsgan_g_loss(self.discriminator(out.image))  # D sees the raw prediction
        if self.distill:
            with torch.no_grad():
                teacher_features = self.teacher.features(teacher_input(image))  # f_T of the full image
            terms["prior"] = self.prior_weight * distillation_loss(out.student_features, teacher_features, mask)
        update("g", terms)

    @torch.no_grad()
    def inpaint(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        device = next(self.generator.parameters()).device
        return self.generator(image.to(device), mask.to(device)).image.to(image.device)


# ----------------------------------------------------------------------------------------------
# Pictures of feature maps
# ----------------------------------------------------------------------------------------------


def feature_pca_rgb(features: torch.Tensor, reference: torch.Tensor | None = None, components: int = 3) -> torch.Tensor:
    """Feature maps ``(B,C,h,w)`` -> ``(B,components,h,w)`` in [0,1]: projections on principal axes.

    The axes (and the range mapped to [0,1]) come from the channel vectors of ``reference``
    (default: ``features``), so two maps drawn with the same reference share their colours, e.g. the
    student's ``f_S`` drawn in the axes of the teacher's ``f_T``. Each axis's sign makes its
    largest loading positive.
    """
    reference = features if reference is None else reference
    if features.ndim != 4 or reference.ndim != 4 or features.shape[1] != reference.shape[1]:
        raise ValueError(
            f"features {tuple(features.shape)} and reference {tuple(reference.shape)} must be (B, C, h, w) with equal C"
        )
    if features.shape[1] < components:
        raise ValueError(f"need at least {components} channels for {components} components, got {features.shape[1]}")
    ref = reference.detach().float().permute(0, 2, 3, 1).reshape(-1, reference.shape[1])  # (N, C)
    centre = ref.mean(dim=0)
    _, _, vh = torch.linalg.svd(ref - centre, full_matrices=False)
    axes = vh[:components]  # (k, C)
    axes = axes * torch.sign(axes.gather(1, axes.abs().argmax(dim=1, keepdim=True)))
    ref_proj = (ref - centre) @ axes.T  # (N, k)
    lo, hi = ref_proj.amin(dim=0), ref_proj.amax(dim=0)
    x = features.detach().float().permute(0, 2, 3, 1)  # (B, h, w, C)
    proj = ((x - centre) @ axes.T - lo) / (hi - lo).clamp_min(1e-12)
    return proj.clamp(0, 1).permute(0, 3, 1, 2)


def spl_method_from_files(teacher_checkpoint: str | None = None, **kwargs) -> SPLMethod:
    """An :class:`SPLMethod` from JSON-able arguments, for ``inpaintlib.experiment`` (arms are data): the
    frozen teacher is read from ``teacher_checkpoint`` (a ``save_teacher`` file; ``None`` for the
    ablations without distillation). Other ``kwargs`` go to :class:`SPLMethod`."""
    teacher = load_teacher(teacher_checkpoint) if teacher_checkpoint else None
    return SPLMethod(teacher, **kwargs)
