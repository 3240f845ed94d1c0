"""Image-quality metrics, overall and inside the hole: PSNR, SSIM and L1.

All functions take images ``(B, 3, H, W)`` in [0, 1] and return one value per image ``(B,)``.
SSIM comes from torchmetrics (Gaussian window 11, sigma 1.5, the usual constants); its per-pixel map
is averaged over the hole for the in-hole score. PSNR and L1 are one line each, written out so the
in-hole variants use exactly the same definition as the overall ones.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from inpaintlib.checks import check_image, check_labels
from inpaintlib.masks import check_mask

METRIC_NAMES: tuple[str, ...] = ("psnr", "ssim", "l1", "psnr_hole", "ssim_hole", "l1_hole")
# PSNR of a pixel-perfect result is infinite; clamp so means over images stay finite.
PSNR_MAX = 100.0


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(
            f"pred and target must both be (B, 3, H, W); got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


def _masked_mean(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` ``(B, C, H, W)`` per image, weighted by ``weight`` ``(B, 1, H, W)``."""
    weight = weight.expand_as(x)
    return (x * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1e-12)


def psnr(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """PSNR in dB with data range 1: ``10 log10(1 / MSE)``, MSE over ``weight`` (all pixels if None)."""
    _check_pair(pred, target)
    weight = torch.ones_like(pred[:, :1]) if weight is None else weight
    mse = _masked_mean((pred - target) ** 2, weight)
    return (10 * torch.log10(1.0 / mse.clamp_min(10 ** (-PSNR_MAX / 10)))).clamp_max(PSNR_MAX)


def l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error over ``weight`` (all pixels if None), in [0, 1] units."""
    _check_pair(pred, target)
    weight = torch.ones_like(pred[:, :1]) if weight is None else weight
    return _masked_mean((pred - target).abs(), weight)


def ssim_map(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM ``(B, 1, H, W)`` (mean over colour channels), torchmetrics' Gaussian-window SSIM."""
    _check_pair(pred, target)
    _, full = structural_similarity_index_measure(
        pred.float(), target.float(), data_range=1.0, reduction="none", return_full_image=True
    )
    return full.mean(1, keepdim=True)


def ssim(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean SSIM per image over ``weight`` (all pixels if None)."""
    full = ssim_map(pred, target)
    weight = torch.ones_like(full) if weight is None else weight
    return _masked_mean(full, weight)


@torch.no_grad()
def image_metrics(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """All six metrics per image: overall and in-hole PSNR, SSIM, L1. Each value is ``(B,)``.

    ``pred`` should already be composed (known pixels copied from ``target``); the overall scores
    then measure the whole picture a user sees, the ``_hole`` scores only what the model made.
    """
    _check_pair(pred, target)
    check_mask(mask, pred)
    smap = ssim_map(pred, target)
    return {
        "psnr": psnr(pred, target),
        "ssim": smap.flatten(1).mean(1),
        "l1": l1(pred, target),
        "psnr_hole": psnr(pred, target, mask),
        "ssim_hole": _masked_mean(smap, mask),
        "l1_hole": l1(pred, target, mask),
    }


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """``(K, K)`` counts, rows = true class, columns = predicted class; ``ignore_index`` pixels skipped."""
    check_labels(target, num_classes, ignore_index, "target labels")
    check_labels(pred, num_classes, ignore_index, "predicted labels")
    keep = target != ignore_index
    idx = target[keep].long() * num_classes + pred[keep].long()
    return torch.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


def mean_iou(confusion: torch.Tensor) -> float:
    """mIoU over the classes that occur in the target or the prediction."""
    tp = confusion.diag().double()
    union = confusion.sum(0).double() + confusion.sum(1).double() - tp
    present = union > 0
    return float((tp[present] / union[present]).mean()) if present.any() else float("nan")
