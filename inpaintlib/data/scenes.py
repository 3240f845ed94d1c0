"""Scenes: the book's procedural mixed-scene benchmark.

No photo data set can be downloaded here, so the book renders its own: a sky above a wavy horizon,
one to three ground bands (water, grass, gravel, sand), brick buildings standing on the ground and
round trees in front. Every class has its own texture and colour statistics, the per-pixel labels
are exact (they are what was drawn), and a scene is a pure function of ``(seed, split, index)``, at
any resolution. Holes that cross class boundaries are what the semantic papers are about, and
this layout makes them common.

Textures: ``brick``, ``grass`` and ``gravel`` are the texture photographs that ship inside the
scikit-image wheel; sky, water, sand and tree are procedural (smooth noise, ripples, gradients).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

CLASS_NAMES: tuple[str, ...] = ("sky", "water", "grass", "gravel", "sand", "brick", "tree")
NUM_CLASSES = len(CLASS_NAMES)
SKY, WATER, GRASS, GRAVEL, SAND, BRICK, TREE = range(NUM_CLASSES)
GROUND_CLASSES = (WATER, GRASS, GRAVEL, SAND)

# Mean colour (RGB in [0, 1]) and texture contrast of each class; every scene jitters them a little.
CLASS_COLOURS = np.array(
    [
        [0.45, 0.65, 0.92],  # sky
        [0.10, 0.32, 0.45],  # water
        [0.30, 0.52, 0.18],  # grass
        [0.52, 0.50, 0.47],  # gravel
        [0.85, 0.74, 0.50],  # sand
        [0.62, 0.28, 0.20],  # brick
        [0.12, 0.30, 0.12],  # tree
    ],
    dtype=np.float32,
)
CLASS_CONTRAST = np.array([0.10, 0.10, 0.16, 0.18, 0.08, 0.16, 0.14], dtype=np.float32)

# A class counts as present in the image-level multi-label when it covers at least this fraction.
PRESENCE_FRACTION = 0.01

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


@lru_cache(maxsize=None)
def _photo_texture(name: str) -> np.ndarray:
    """A scikit-image texture photo as float32 grey ``(H, W)``, zero mean, unit variance."""
    from skimage import data

    img = getattr(data, name)().astype(np.float32)
    if img.ndim == 3:
        img = img.mean(axis=2)
    return (img - img.mean()) / (img.std() + 1e-6)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: tuple[int, int]) -> np.ndarray:
    """Low-frequency noise ``(h, w)``, about unit variance: a random ``cells`` grid upsampled bicubically."""
    grid = rng.standard_normal(cells).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-6)


def _crop_photo(rng: np.random.Generator, name: str, size: int) -> np.ndarray:
    """A random window of a texture photo, resized to ``(size, size)``.

    The window is about 256 px of the photo whatever ``size`` is, so a 64 px scene looks like a
    downscaled 256 px scene rather than a zoomed-in one.
    """
    photo = _photo_texture(name)
    window = int(rng.integers(160, 256))
    y = int(rng.integers(0, photo.shape[0] - window + 1))
    x = int(rng.integers(0, photo.shape[1] - window + 1))
    crop = photo[y : y + window, x : x + window]
    interp = cv2.INTER_AREA if size < window else cv2.INTER_LINEAR
    return _normalise(cv2.resize(crop, (size, size), interpolation=interp))


def _class_pattern(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    """The grey texture pattern of one class, ``(size, size)``, zero mean and unit variance."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if cls == SKY:
        clouds = np.clip(_smooth_noise(rng, size, size, (4, 6)) - 0.3, 0.0, None)
        return _normalise(2.0 * clouds - 1.5 * yy)
    if cls == WATER:
        wobble = _smooth_noise(rng, size, size, (3, 3))
        freq = rng.uniform(14.0, 22.0)
        ripples = np.sin(2 * np.pi * (freq * yy + 0.4 * wobble))
        return _normalise(ripples + 0.3 * _smooth_noise(rng, size, size, (24, 8)))
    if cls == SAND:
        angle = rng.uniform(-0.6, 0.6)
        dunes = np.sin(2 * np.pi * rng.uniform(5.0, 9.0) * (yy + angle * xx))
        grain = rng.standard_normal((size, size)).astype(np.float32)
        return _normalise(0.8 * dunes + 0.5 * grain)
    if cls == TREE:
        leaves = sum(_smooth_noise(rng, size, size, (c, c)) / (i + 1) for i, c in enumerate((6, 12, 24)))
        return _normalise(leaves)
    return _crop_photo(rng, {GRASS: "grass", GRAVEL: "gravel", BRICK: "brick"}[cls], size)


def _wavy_profile(rng: np.random.Generator, size: int, centre: float, amplitude: float) -> np.ndarray:
    """A horizontal boundary ``y(x)`` in pixels, ``(size,)``."""
    wave = cv2.resize(rng.standard_normal((1, 5)).astype(np.float32), (size, 1), interpolation=cv2.INTER_CUBIC)[0]
    return centre + amplitude * wave


def _layout(rng: np.random.Generator, size: int) -> np.ndarray:
    """The label map ``(size, size)`` int64 of one scene: sky, ground bands, buildings, trees."""
    s = float(size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    horizon = _wavy_profile(rng, size, rng.uniform(0.28, 0.5) * s, 0.03 * s)
    labels = np.full((size, size), SKY, dtype=np.int64)

    n_bands = int(rng.integers(1, 4))
    band_classes = rng.choice(GROUND_CLASSES, size=n_bands, replace=False)
    cuts = np.sort(rng.uniform(0.0, 1.0, size=n_bands - 1))
    band_top = horizon
    for k, cls in enumerate(band_classes):
        labels[yy >= band_top[None, :]] = cls
        if k < n_bands - 1:
            centre = horizon.mean() + cuts[k] * (s - horizon.mean())
            band_top = _wavy_profile(rng, size, centre, 0.04 * s)

    for _ in range(int(rng.integers(0, 3))):
        width = rng.uniform(0.15, 0.35) * s
        x0 = rng.uniform(-0.1 * s, s - 0.5 * width)
        base = horizon.mean() + rng.uniform(0.0, 0.15) * s
        top = horizon.mean() - rng.uniform(0.1, 0.3) * s
        labels[(xx >= x0) & (xx < x0 + width) & (yy >= top) & (yy < base)] = BRICK

    for _ in range(int(rng.integers(0, 4))):
        ry = rng.uniform(0.07, 0.15) * s
        rx = ry * rng.uniform(0.6, 1.0)
        cx = rng.uniform(0.0, s)
        cy = horizon.mean() + rng.uniform(-0.05, 0.3) * s
        labels[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0] = TREE
    return labels


def render_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one scene.

    Returns ``image`` ``(size, size, 3)`` float32 in [0, 1] and ``labels`` ``(size, size)`` int64.
    """
    labels = _layout(rng, size)
    return paint_labels(rng, labels), labels


def paint_labels(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Paint a label map ``(size, size)`` int with the Scenes textures, colours and lighting.

    Returns ``(size, size, 3)`` float32 in [0, 1]. ``render_scene`` paints its layouts with it; the
    probes (``inpaintlib.probes``) paint their own layouts, so their textures are the Scenes ones.
    """
    size = labels.shape[0]
    image = np.empty((size, size, 3), dtype=np.float32)
    for cls in np.unique(labels):
        region = labels == cls
        colour = CLASS_COLOURS[cls] * rng.uniform(0.85, 1.15, size=3).astype(np.float32)
        pattern = _class_pattern(rng, int(cls), size)[region]
        image[region] = colour + CLASS_CONTRAST[cls] * pattern[:, None]
    light = 1.0 + 0.08 * _smooth_noise(rng, size, size, (2, 2))
    return np.clip(image * light[..., None], 0.0, 1.0)


def presence(labels: np.ndarray | torch.Tensor, fraction: float = PRESENCE_FRACTION) -> torch.Tensor:
    """Image-level multi-label ``(K,)`` float: 1 where a class covers at least ``fraction`` of the pixels."""
    counts = torch.bincount(torch.as_tensor(labels).reshape(-1), minlength=NUM_CLASSES)[:NUM_CLASSES]
    return (counts >= fraction * counts.sum()).float()


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator that draws scene ``index`` of ``split``; scenes never share a stream."""
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_IDS)}")
    return np.random.default_rng([seed, SPLIT_IDS[split], index])


@dataclass
class ScenesDataset(Dataset):
    """``length`` procedural scenes of ``size`` px; item ``i`` is the same on every machine.

    Each item is a dict: ``image`` (3, H, W) float in [0, 1], ``labels`` (H, W) long,
    ``present`` (K,) float image-level multi-label.
    """

    length: int
    size: int = 64
    seed: int = 0
    split: str = "train"

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"ScenesDataset needs length >= 1, got {self.length}")
        if self.size < 16:
            raise ValueError(f"ScenesDataset needs size >= 16 px, got {self.size}")
        scene_rng(self.seed, self.split, 0)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"scene index {index} out of range [0, {self.length})")
        image, labels = render_scene(scene_rng(self.seed, self.split, index), self.size)
        labels_t = torch.from_numpy(labels)
        return {
            "image": torch.from_numpy(image).permute(2, 0, 1).contiguous(),
            "labels": labels_t,
            "present": presence(labels_t),
        }

    def materialize(self, progress: bool = False) -> dict[str, torch.Tensor]:
        """All items stacked: ``image`` (N,3,H,W), ``labels`` (N,H,W), ``present`` (N,K)."""
        from tqdm.auto import tqdm

        items = [self[i] for i in tqdm(range(self.length), desc=f"scenes {self.split}", disable=not progress)]
        return {key: torch.stack([it[key] for it in items]) for key in items[0]}
