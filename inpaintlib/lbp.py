"""Local binary patterns (LBP) as the LBP-guided inpainting paper computes them (Wu et al., TMM 2021).

The official data loader (HighwayWu/ImageInpainting, ``main.py::MyDataset.load_lbp``) turns every ground-truth
image into an LBP map with a per-pixel Python loop. This module computes the same map with tensor ops:

1. ``gray = cv2.cvtColor(img, BGR2GRAY)`` on uint8 levels [official code]; :func:`rgb_to_gray_uint8_like`
   reproduces cv2's fixed-point formula on our RGB ``[0, 1]`` images.
2. For each pixel, the 8 neighbours of the square 3x3 ring (radius 1, no interpolation) give one bit each,
   ``bit = neighbour >= centre`` [official code], weighted clockwise from the top-right
   (see :data:`LBP_NEIGHBOUR_WEIGHTS`)::

        64 | 128 |   1
       ----+-----+----
        32 |   c |   2
       ----+-----+----
        16 |   8 |   4

3. The code (0..255) is stored as uint8, normalised like an image and used as a *regression* target
   ``L = code / 127.5 - 1`` [official code] (:func:`lbp_target`).

Border rule of the official loop [official code]: it indexes a numpy array inside ``try/except``, so the
row/column index ``-1`` wraps to the last row/column (negative indexing) while the index ``H`` or ``W`` raises and
gives bit 0. The top row and left column therefore compare against pixels from the opposite side of the image,
the bottom row and right column lose their outward bits. ``border="zero"`` is the usual alternative
[our reconstruction]: the image is padded with gray level 0, so an outside neighbour sets its bit only when the
centre is black (0 >= 0).

Contrast with scikit-image [our reconstruction, measured with scikit-image 0.26]:
``skimage.feature.local_binary_pattern(gray, P=8, R=1, method="default")`` is a different operator. It samples
8 points on a *circle* of radius 1, so the four diagonal neighbours are bilinear interpolations at
``(+-0.707, +-0.707)`` (mixing the centre, two edge neighbours and the corner pixel), it numbers the bits
counter-clockwise starting at the right neighbour (right=1, top-right=2, top=4, top-left=8, left=16,
bottom-left=32, bottom=64, bottom-right=128), and it pads the image with 0. On ``skimage.data.camera()``
(512x512) 190,930 of 262,144 codes (72.8 %) differ from :func:`local_binary_pattern`; after re-ordering our bits
into scikit-image's order 78,855 codes (30.1 %) still differ, 78,204 of them away from the border, i.e. caused by
the interpolated diagonals (``benchmarks/bench_lbp_attention.py`` prints these numbers).
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

LBPBorder = Literal["official", "zero"]

# (row offset, column offset, bit weight), clockwise from the top-right neighbour [official code]
LBP_NEIGHBOUR_WEIGHTS: tuple[tuple[int, int, int], ...] = (
    (-1, 1, 1),  # top-right
    (0, 1, 2),  # right
    (1, 1, 4),  # bottom-right
    (1, 0, 8),  # bottom
    (1, -1, 16),  # bottom-left
    (0, -1, 32),  # left
    (-1, -1, 64),  # top-left
    (-1, 0, 128),  # top
)

# cv2 COLOR_RGB2GRAY / COLOR_BGR2GRAY on uint8 (OpenCV >= 4): Y = (9798 R + 19235 G + 3735 B + 2^14) >> 15,
# i.e. 0.299 R + 0.587 G + 0.114 B in 15-bit fixed point, rounded half up [our reconstruction, checked
# exhaustively on all 2^24 colours against the installed cv2]. OpenCV 2.x used 14-bit weights (4899, 9617, 1868),
# which differ by one level on 0.26 % of all colours; the OpenCV version of the official runs is unknown.
_GRAY_WEIGHTS_15BIT = (9798, 19235, 3735)  # R, G, B; sum = 2^15
_GRAY_SHIFT = 15


def rgb_to_gray_uint8_like(image: Tensor) -> Tensor:
    """Gray levels exactly as ``cv2.cvtColor(uint8_image, COLOR_RGB2GRAY)`` computes them.

    The official code reads BGR images with cv2 and converts them with ``COLOR_BGR2GRAY``; our images are RGB,
    so the same luminance is ``0.299 R + 0.587 G + 0.114 B`` [official code, via cv2].

    Args:
        image: (B, 3, H, W) float RGB in [0, 1]; each value is first rounded to the nearest of 256 uint8 levels.
    Returns:
        (B, 1, H, W) tensor of ``image``'s dtype holding integer gray levels 0..255 ("uint8-like").
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must have shape (B, 3, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"image must be a float tensor in [0, 1], got dtype {image.dtype}")
    if image.numel() > 0 and (image.min() < 0 or image.max() > 1):
        raise ValueError("image values must lie in [0, 1]")
    levels = torch.round(image * 255).to(torch.int64)  # (B,3,H,W) uint8 levels
    red, green, blue = levels[:, 0:1], levels[:, 1:2], levels[:, 2:3]  # (B,1,H,W) each
    weight_r, weight_g, weight_b = _GRAY_WEIGHTS_15BIT
    gray = (weight_r * red + weight_g * green + weight_b * blue + (1 << (_GRAY_SHIFT - 1))) >> _GRAY_SHIFT
    return gray.to(image.dtype)  # (B,1,H,W)


def _check_gray_levels(gray: Tensor) -> None:
    if gray.ndim != 4 or gray.shape[1] != 1:
        raise ValueError(f"gray must have shape (B, 1, H, W), got {tuple(gray.shape)}")
    if gray.dtype == torch.bool or gray.is_complex():
        raise ValueError(f"gray must hold uint8 gray levels, got dtype {gray.dtype}")
    if gray.numel() == 0:
        return
    if gray.min() < 0 or gray.max() > 255:
        raise ValueError("gray levels must lie in [0, 255] (uint8 levels, not [0, 1] intensities)")
    if gray.is_floating_point() and not torch.equal(gray, torch.round(gray)):
        raise ValueError("gray levels must be integers (uint8-valued); use rgb_to_gray_uint8_like")


def local_binary_pattern(gray: Tensor, border: LBPBorder = "official") -> Tensor:
    """8-neighbour, radius-1 square-ring LBP codes of the official data loader, vectorised.

    ``code(r, c) = sum_k weight_k * [gray(r + dr_k, c + dc_k) >= gray(r, c)]`` over
    :data:`LBP_NEIGHBOUR_WEIGHTS` [official code].

    Args:
        gray: (B, 1, H, W) uint8 gray levels, as a uint8/integer tensor or a float tensor of integer values.
        border: ``"official"``: row/column index -1 wraps to the last row/column, index H or W gives bit 0
            [official code]; ``"zero"``: outside pixels have gray level 0 [our reconstruction].
    Returns:
        (B, 1, H, W) long codes in [0, 255].
    """
    _check_gray_levels(gray)
    if border not in ("official", "zero"):
        raise ValueError(f"border must be 'official' or 'zero', got {border!r}")
    levels = gray.to(torch.int16)  # (B,1,H,W) exact integer comparison
    height, width = levels.shape[-2:]
    codes = torch.zeros(levels.shape, dtype=torch.long, device=levels.device)  # (B,1,H,W)
    if border == "official":
        rows = torch.arange(height, device=levels.device)
        cols = torch.arange(width, device=levels.device)
    else:
        padded = F.pad(levels, (1, 1, 1, 1), value=0)  # (B,1,H+2,W+2)
    for row_offset, col_offset, weight in LBP_NEIGHBOUR_WEIGHTS:
        if border == "official":
            # neighbour[r, c] = gray[(r + dr) mod H, (c + dc) mod W]: index -1 wraps like numpy's img[-1]
            neighbour = torch.roll(levels, shifts=(-row_offset, -col_offset), dims=(2, 3))
            # index H or W raises IndexError in the official loop -> bit 0
            inside = ((rows + row_offset) < height)[:, None] & ((cols + col_offset) < width)[None, :]  # (H,W)
            bit = (neighbour >= levels) & inside
        else:
            neighbour = padded[:, :, 1 + row_offset : 1 + row_offset + height, 1 + col_offset : 1 + col_offset + width]
            bit = neighbour >= levels
        codes += bit.long() * weight
    return codes


def lbp_target(image: Tensor, border: LBPBorder = "official") -> Tensor:
    """The LBP regression target of the official training code: ``L = code / 127.5 - 1``.

    The official loader stores the code as uint8, applies ToTensor (/255) and Normalize(0.5, 0.5), which is
    ``code / 127.5 - 1`` [official code].

    Args:
        image: (B, 3, H, W) float RGB in [0, 1].
        border: border rule of :func:`local_binary_pattern`.
    Returns:
        (B, 1, H, W) float target in [-1, 1] (dtype of ``image``).
    """
    codes = local_binary_pattern(rgb_to_gray_uint8_like(image), border=border)  # (B,1,H,W) long
    return codes.to(image.dtype) / 127.5 - 1


def lbp_target_to_codes(target: Tensor) -> Tensor:
    """Inverse of :func:`lbp_target`: ``code = round((L + 1) * 127.5)`` clamped to [0, 255].

    Args:
        target: (B, 1, H, W) float LBP map in [-1, 1] (targets or network predictions).
    Returns:
        (B, 1, H, W) long codes in [0, 255].
    """
    if target.ndim != 4 or target.shape[1] != 1:
        raise ValueError(f"target must have shape (B, 1, H, W), got {tuple(target.shape)}")
    if not target.is_floating_point():
        raise ValueError(f"target must be a float tensor, got dtype {target.dtype}")
    return torch.round((target + 1) * 127.5).clamp(0, 255).long()
