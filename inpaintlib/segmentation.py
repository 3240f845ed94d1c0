"""Semantic consistency: mIoU of a segmenter trained on clean scenes, run on inpainted ones.

If an inpainted region has the right class, a segmenter that never saw a hole labels it correctly.
The segmenter is a small U-Net trained here on clean Scenes (train split) with exact labels; it is
a yardstick built in the book, not a pretrained network, and its score on *clean* test images is
reported beside every inpainted score as the ceiling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from inpaintlib.config import REPO_ROOT
from inpaintlib.data.batches import InpaintingBatches
from inpaintlib.data.scenes import NUM_CLASSES
from inpaintlib.metrics import confusion_matrix, mean_iou
from inpaintlib.models.unet import DownBlock, UpBlock
from inpaintlib.train import Method, Trainer, load_weights, save_weights, seed_everything

CACHE_DIR = REPO_ROOT / "runs" / "cache"


class SceneSegmenter(nn.Module):
    """U-Net segmenter: image ``(B,3,H,W)`` in [0,1] -> class logits ``(B,K,H,W)``."""

    def __init__(self, num_classes: int = NUM_CLASSES, channels: Sequence[int] = (16, 32, 64, 128)):
        super().__init__()
        chans = (3, *channels)
        self.down = nn.ModuleList(DownBlock(chans[i], chans[i + 1], "batch", first=i == 0) for i in range(len(channels)))
        self.up = nn.ModuleList(
            UpBlock(channels[i + 1] * (1 if i == len(channels) - 2 else 2), channels[i], "batch")
            for i in reversed(range(len(channels) - 1))
        )
        self.head = nn.Sequential(UpBlock(2 * channels[0], channels[0], "none"), nn.ReLU(), nn.Conv2d(channels[0], num_classes, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, skips = image * 2 - 1, []
        for block in self.down:
            h = block(h)
            skips.append(h)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            h = torch.cat([block(h), skip], dim=1)
        return self.head(h)


class _SegmenterTraining(Method):
    """Cross-entropy on clean scenes (the mask of the batch is ignored)."""

    def __init__(self, segmenter: SceneSegmenter, lr: float = 2e-3):
        super().__init__()
        self.segmenter, self.lr = segmenter, lr

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"seg": torch.optim.Adam(self.segmenter.parameters(), lr=self.lr)}

    def training_step(self, batch: dict[str, torch.Tensor], update) -> None:
        update("seg", {"ce": F.cross_entropy(self.segmenter(batch["image"]), batch["labels"])})


def train_segmenter(
    size: int, steps: int = 400, batch_size: int = 16, train_images: int = 500, seed: int = 0,
    device: str | torch.device = "cpu", progress: bool = True,
) -> SceneSegmenter:
    """Train a ``SceneSegmenter`` on clean train-split scenes; returns it in eval mode."""
    seed_everything(seed)
    segmenter = SceneSegmenter()
    batches = InpaintingBatches.scenes(size, train_images, batch_size, seed=seed + 1000)
    Trainer(_SegmenterTraining(segmenter), batches, steps, device=device, progress=progress, log_every=50).fit()
    return segmenter.eval()


def segmenter_for(
    size: int, steps: int = 400, seed: int = 0, device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None, progress: bool = True,
) -> SceneSegmenter:
    """The segmenter for ``size`` px, trained once and cached as safetensors (training is deterministic)."""
    cache = Path(cache_dir) if cache_dir is not None else CACHE_DIR
    path = cache / f"scene_segmenter-{size}px-{steps}steps-seed{seed}.safetensors"
    segmenter = SceneSegmenter()
    if path.is_file():
        load_weights(segmenter, path)
        return segmenter.to(device).eval()
    segmenter = train_segmenter(size, steps, seed=seed, device=device, progress=progress)
    cache.mkdir(parents=True, exist_ok=True)
    save_weights(segmenter, path)
    return segmenter


@torch.no_grad()
def semantic_scores(
    segmenter: SceneSegmenter, images: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor, batch_size: int = 64
) -> dict[str, float]:
    """mIoU of ``segmenter`` on ``images`` ``(N,3,H,W)`` against ``labels`` ``(N,H,W)``.

    ``miou``: over all pixels; ``miou_hole``: over the pixels where ``masks`` ``(N,1,H,W)`` is 1,
    i.e. only what the inpainting model made.
    """
    device = next(segmenter.parameters()).device
    k = segmenter.head[-1].out_channels
    whole, hole = torch.zeros(k, k, dtype=torch.long), torch.zeros(k, k, dtype=torch.long)
    for start in range(0, len(images), batch_size):
        pred = segmenter(images[start : start + batch_size].to(device)).argmax(1).cpu()
        lab = labels[start : start + batch_size]
        in_hole = masks[start : start + batch_size, 0] > 0
        whole += confusion_matrix(pred, lab, k)
        hole += confusion_matrix(pred[in_hole], lab[in_hole], k)
    return {"miou": mean_iou(whole), "miou_hole": mean_iou(hole)}


def semantic_eval(
    segmenter: SceneSegmenter, inpaint: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], bench, batch_size: int = 32,
) -> dict[str, float]:
    """Inpaint every benchmark image, compose, and score its semantics with ``semantic_scores``."""
    outputs = []
    with torch.no_grad():
        for start in range(0, len(bench), batch_size):
            image, mask = bench.images[start : start + batch_size], bench.masks[start : start + batch_size]
            pred = inpaint(image * (1 - mask), mask).cpu().clamp(0, 1)
            outputs.append(mask * pred + (1 - mask) * image)
    return semantic_scores(segmenter, torch.cat(outputs), bench.labels, bench.masks)


@torch.no_grad()
def semantic_per_image(
    segmenter: SceneSegmenter, inpaint: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], bench, batch_size: int = 32,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-image hole accuracy ``(N,)`` (share of hole pixels the segmenter labels correctly after
    inpainting: a per-image score, so two models can be compared image by image) and the benchmark's
    ``{"miou", "miou_hole"}`` (``semantic_scores``), from one pass of ``inpaint``."""
    device = next(segmenter.parameters()).device
    outputs, accuracy = [], []
    for start in range(0, len(bench), batch_size):
        image, mask = bench.images[start : start + batch_size], bench.masks[start : start + batch_size]
        composed = mask * inpaint(image * (1 - mask), mask).cpu().clamp(0, 1) + (1 - mask) * image
        outputs.append(composed)
        pred = segmenter(composed.to(device)).argmax(1).cpu()                   # (B, H, W)
        hole = mask[:, 0] > 0
        correct = ((pred == bench.labels[start : start + batch_size]) & hole).flatten(1).sum(1)
        accuracy.append(correct.double() / hole.flatten(1).sum(1).clamp_min(1))
    return torch.cat(accuracy), semantic_scores(segmenter, torch.cat(outputs), bench.labels, bench.masks)
