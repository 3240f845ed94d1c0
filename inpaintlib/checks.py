"""Input checks for the book's tensor conventions, each failing with one line that names the problem.

Masks have their own check next to the mask generators (``inpaintlib.masks.check_mask``).
"""

from __future__ import annotations

import torch

# Images a little outside [0, 1] (e.g. from a bilinear resize) are fine; 0-255 images are not.
IMAGE_RANGE_SLACK = 1e-3


def check_image(image: torch.Tensor, name: str = "image") -> None:
    """Raise ``ValueError`` unless ``image`` is a float ``(B, 3, H, W)`` tensor with values in [0, 1]."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(image).__name__}")
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"{name} must have shape (B, 3, H, W) (RGB), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {image.dtype} (divide 8-bit images by 255)")
    if image.numel() and not bool(torch.isfinite(image).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    if image.numel() and (float(image.min()) < -IMAGE_RANGE_SLACK or float(image.max()) > 1 + IMAGE_RANGE_SLACK):
        raise ValueError(
            f"{name} values must lie in [0, 1], found [{float(image.min()):.3g}, {float(image.max()):.3g}]"
        )


def check_labels(labels: torch.Tensor, num_classes: int, ignore_index: int = 255, name: str = "labels") -> None:
    """Raise ``ValueError`` unless ``labels`` is an integer tensor with values in ``[0, K)`` or ``ignore_index``."""
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor of class ids, got dtype {labels.dtype}")
    bad = (labels < 0) | ((labels >= num_classes) & (labels != ignore_index))
    if bool(bad.any()):
        raise ValueError(
            f"{name} contain ids outside [0, {num_classes}) (other than ignore {ignore_index}): "
            f"{sorted(set(labels[bad].unique().tolist()))[:5]}"
        )
