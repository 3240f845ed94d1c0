"""Photographs that ship with the installed packages: a real-photo test set with nothing to download.

scikit-image bundles a few colour photographs with its code (``skimage.data``) and matplotlib one
portrait (``grace_hopper.jpg`` in its sample data). :func:`photo_crops` cuts deterministic square crops
from them at the book's image size; :meth:`inpaintlib.evaluate.Benchmark.photos` pairs the crops with
the committed evaluation masks, so every model of the book can be scored on photographs beside Scenes.

The photographs and their terms, as the packages state them (each function's docstring in
``skimage.data``; matplotlib's sample data): see :data:`BUNDLED_PHOTOS`. Scikit-image's stereo
motorcycle pair is left out because the package states no licence for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from inpaintlib.data.folders import _to_image_tensor, load_rgb, resize_square

PHOTO_SEED = 11
# Each crop's side, as a fraction of the photo's shorter side: from a detail to the whole photo.
CROP_SIDE_RANGE = (0.35, 1.0)


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()  # (H, W, 3) uint8

    return load


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook

    return load_rgb(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))  # (H, W, 3) float in [0, 1]


@dataclass(frozen=True)
class BundledPhoto:
    """One photograph: its name, how to load it, where it comes from and on which terms."""

    name: str
    load: Callable[[], np.ndarray]   # () -> (H, W, 3) uint8 or float in [0, 1]
    package: str
    source: str
    terms: str

    def pixels(self) -> np.ndarray:
        """``(H, W, 3)`` float32 RGB in [0, 1]."""
        image = self.load()
        if image.dtype == np.uint8:
            image = image.astype(np.float32) / np.float32(255)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"bundled photo {self.name!r} has shape {image.shape}; expected (H, W, 3)")
        return image.astype(np.float32)


BUNDLED_PHOTOS: tuple[BundledPhoto, ...] = (
    BundledPhoto("astronaut", _skimage("astronaut"), "scikit-image",
                 "Eileen Collins, NASA Great Images database", "public domain (no known copyright restrictions)"),
    BundledPhoto("chelsea", _skimage("chelsea"), "scikit-image", "Chelsea the cat, by Stefan van der Walt", "CC0"),
    BundledPhoto("coffee", _skimage("coffee"), "scikit-image",
                 "a coffee cup at Pikolo Espresso Bar, by Rachel Michetti", "CC0"),
    BundledPhoto("hubble_deep_field", _skimage("hubble_deep_field"), "scikit-image",
                 "Hubble eXtreme Deep Field, NASA (HubbleSite)", "public domain (NASA media guidelines)"),
    BundledPhoto("immunohistochemistry", _skimage("immunohistochemistry"), "scikit-image",
                 "IHC-stained colonic glands, Center for Microscopy And Molecular Imaging",
                 "no known copyright restrictions"),
    BundledPhoto("retina", _skimage("retina"), "scikit-image",
                 "fundus photograph of a left eye, Mikael Häggström (Wikimedia Commons)", "CC0 1.0"),
    BundledPhoto("rocket", _skimage("rocket"), "scikit-image",
                 "DSCOVR launch on Falcon 9, SpaceX", "public domain (released by SpaceX)"),
    BundledPhoto("grace_hopper", _grace_hopper, "matplotlib",
                 "portrait of Grace Hopper, U.S. Navy", "public domain (U.S. government work)"),
)


def photo_table() -> list[dict[str, str]]:
    """The bundled photographs as rows ``{"photo", "package", "source", "terms"}`` (for the book)."""
    return [{"photo": p.name, "package": p.package, "source": p.source, "terms": p.terms} for p in BUNDLED_PHOTOS]


def photo_crops(size: int, count: int, seed: int = PHOTO_SEED,
                photos: tuple[BundledPhoto, ...] = BUNDLED_PHOTOS) -> tuple[torch.Tensor, list[str]]:
    """``count`` square crops ``(count, 3, size, size)`` float in [0, 1] and the photo each came from.

    Crop ``i`` comes from photo ``i mod P``: a square whose side is a uniform fraction
    (``CROP_SIDE_RANGE``) of the photo's shorter side, at a uniform position, resized to ``size``
    (area averaging). The same ``seed`` gives the same crops on every machine.
    """
    if count < 1 or size < 1:
        raise ValueError(f"count and size must be >= 1, got {count} and {size}")
    loaded = [p.pixels() for p in photos]  # each (H, W, 3)
    crops, names = [], []
    for i in range(count):
        k = i % len(photos)
        pixels = loaded[k]
        h, w = pixels.shape[:2]
        rng = np.random.default_rng([seed, i])
        side = max(1, int(rng.uniform(*CROP_SIDE_RANGE) * min(h, w)))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crops.append(_to_image_tensor(resize_square(pixels[top : top + side, left : left + side], size)))
        names.append(photos[k].name)
    return torch.stack(crops), names
