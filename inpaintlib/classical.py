"""Classical (non-learned) inpainting baselines: the floor every deep model in the book must beat.

Both take and return images ``(B, 3, H, W)`` in [0, 1] with masks ``(B, 1, H, W)`` (1 = missing),
the same signature as a model's ``inpaint`` method, so the evaluation harness treats them alike.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from skimage.restoration import inpaint_biharmonic

from inpaintlib.checks import check_image
from inpaintlib.masks import check_mask


def _per_image(fn, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    check_image(image)
    check_mask(mask, image)
    out = []
    for img, m in zip(image.detach().cpu().numpy(), mask.detach().cpu().numpy()):
        out.append(fn(np.ascontiguousarray(img.transpose(1, 2, 0)), m[0] > 0.5).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out)).to(image)


def _biharmonic(img: np.ndarray, hole: np.ndarray) -> np.ndarray:
    if not hole.any():
        return img
    return inpaint_biharmonic(img, hole, channel_axis=-1).astype(np.float32)


def _telea(img: np.ndarray, hole: np.ndarray, radius: int = 3) -> np.ndarray:
    as_u8 = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    filled = cv2.inpaint(as_u8, hole.astype(np.uint8), radius, cv2.INPAINT_TELEA)
    return filled.astype(np.float32) / 255.0


def biharmonic_inpaint(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """scikit-image's biharmonic inpainting (smooth fill solving the biharmonic equation), per image."""
    return _per_image(_biharmonic, image, mask)


def telea_inpaint(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """OpenCV's Telea fast-marching inpainting (radius 3); works on 8-bit images, so results are quantised."""
    return _per_image(_telea, image, mask)


CLASSICAL_METHODS = {"biharmonic": biharmonic_inpaint, "telea": telea_inpaint}
