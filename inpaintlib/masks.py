"""Hole masks: free-form strokes, rectangles and boundary-crossing holes, and the fixed evaluation set.

Convention everywhere in the book: a mask is float ``(B, 1, H, W)`` with 1 = missing, 0 = known.
Generators here work on one mask at a time in numpy ``(H, W)`` float32 and are pure functions of
the ``numpy.random.Generator`` they are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

# Hole-ratio buckets of the evaluation set: [0, 10) %, [10, 20) %, ..., [50, 60) %.
BUCKET_EDGES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
BUCKET_NAMES: tuple[str, ...] = tuple(
    f"{int(100 * lo)}-{int(100 * hi)}%" for lo, hi in zip(BUCKET_EDGES[:-1], BUCKET_EDGES[1:])
)
EVAL_MASK_SIZE = 256
DEFAULT_EVAL_MASKS = Path(__file__).resolve().parent.parent / "data" / "eval_masks_256.npz"


def free_form_mask(
    rng: np.random.Generator,
    size: int,
    max_strokes: int = 4,
    max_vertices: int = 10,
    max_width_frac: float = 0.12,
    max_length_frac: float = 0.2,
) -> np.ndarray:
    """DeepFill v2-style brush strokes: random walks of thick line segments with round joints.

    Returns ``(size, size)`` float32 in {0, 1}. Widths and lengths are fractions of ``size`` so the
    look is the same at every resolution.
    """
    canvas = np.zeros((size, size), dtype=np.uint8)
    for _ in range(int(rng.integers(1, max_strokes + 1))):
        x, y = rng.uniform(0, size, size=2)
        width = max(1, int(rng.uniform(0.03, max_width_frac) * size))
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(2, max_vertices + 1))):
            angle += rng.uniform(-np.pi / 3, np.pi / 3)
            length = rng.uniform(0.05, max_length_frac) * size
            nx = float(np.clip(x + length * np.cos(angle), 0, size - 1))
            ny = float(np.clip(y + length * np.sin(angle), 0, size - 1))
            cv2.line(canvas, (int(x), int(y)), (int(nx), int(ny)), 1, width)
            cv2.circle(canvas, (int(nx), int(ny)), width // 2, 1, -1)
            x, y = nx, ny
    return canvas.astype(np.float32)


def rectangle_mask(
    rng: np.random.Generator, size: int, min_frac: float = 0.2, max_frac: float = 0.6
) -> np.ndarray:
    """One axis-aligned box with sides in ``[min_frac, max_frac] * size`` at a random position."""
    h, w = (rng.uniform(min_frac, max_frac, size=2) * size).astype(int).clip(1, size)
    y = int(rng.integers(0, size - h + 1))
    x = int(rng.integers(0, size - w + 1))
    mask = np.zeros((size, size), dtype=np.float32)
    mask[y : y + h, x : x + w] = 1.0
    return mask


def class_boundaries(labels: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels whose right or lower neighbour has another label."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edge[:-1, :] |= labels[1:, :] != labels[:-1, :]
    return edge


def boundary_crossing_mask(
    rng: np.random.Generator, labels: np.ndarray, min_classes: int = 2, tries: int = 20
) -> np.ndarray:
    """A blob of strokes centred on a class boundary, so the hole covers ``min_classes`` or more classes.

    ``labels`` is ``(H, W)`` int. Falls back to a centred box when the scene has a single class.
    """
    size = labels.shape[0]
    if labels.shape[0] != labels.shape[1]:
        raise ValueError(f"boundary_crossing_mask needs a square label map, got {labels.shape}")
    ys, xs = np.nonzero(class_boundaries(labels))
    if len(ys) == 0:
        return rectangle_mask(rng, size, 0.3, 0.5)
    for _ in range(tries):
        k = int(rng.integers(len(ys)))
        radius = rng.uniform(0.12, 0.25) * size
        mask = np.zeros((size, size), dtype=np.uint8)
        centre = (int(xs[k]), int(ys[k]))
        axes = (int(radius), int(radius * rng.uniform(0.5, 1.0)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        strokes = free_form_mask(rng, size, max_strokes=2, max_vertices=4, max_length_frac=0.1)
        shift = np.array(centre) - size // 2
        strokes = np.roll(strokes, tuple(shift[::-1]), axis=(0, 1))
        hole = np.maximum(mask.astype(np.float32), strokes)
        if len(np.unique(labels[hole > 0])) >= min_classes:
            return hole
    return hole


def hole_ratio(mask: torch.Tensor) -> torch.Tensor:
    """Fraction of missing pixels per image: ``(B, 1, H, W)`` -> ``(B,)``."""
    return mask.flatten(1).mean(1)


def bucket_of(ratio: float | torch.Tensor) -> torch.Tensor:
    """Index of the hole-ratio bucket (0 for 0-10 % ... 5 for 50-60 %); -1 when above 60 %."""
    ratio = torch.as_tensor(ratio, dtype=torch.float64)
    edges = torch.tensor(BUCKET_EDGES[1:], dtype=torch.float64)
    idx = torch.bucketize(ratio, edges, right=True)
    return torch.where(idx < len(BUCKET_NAMES), idx, torch.full_like(idx, -1))


def resize_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(B, 1, H, W)`` hole masks by area averaging and a 0.5 threshold (stays binary)."""
    if masks.shape[-1] == size:
        return masks
    return (torch.nn.functional.interpolate(masks, size=(size, size), mode="area") >= 0.5).float()


def check_mask(mask: torch.Tensor, image: torch.Tensor | None = None, name: str = "mask") -> None:
    """Raise ``ValueError`` unless ``mask`` is ``(B, 1, H, W)`` float in {0, 1} (matching ``image``)."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"{name} must have shape (B, 1, H, W), got {tuple(mask.shape)}")
    if not mask.is_floating_point():
        raise ValueError(f"{name} must be a float tensor (1 = missing), got dtype {mask.dtype}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name} values must be exactly 0 (known) or 1 (missing); soft masks are not accepted")
    if image is not None and (mask.shape[0] != image.shape[0] or mask.shape[-2:] != image.shape[-2:]):
        raise ValueError(
            f"{name} shape {tuple(mask.shape)} does not match image shape {tuple(image.shape)} "
            "(same batch and H, W expected)"
        )


@dataclass(frozen=True)
class EvalMasks:
    """The fixed evaluation masks: ``masks`` (N,1,S,S) float, ``bucket`` (N,) long, ``kind`` (N,) str."""

    masks: torch.Tensor
    bucket: torch.Tensor
    kind: tuple[str, ...]

    def at_size(self, size: int) -> torch.Tensor:
        """The masks resized to ``size`` (see ``resize_masks``); buckets keep their 256 px labels."""
        return resize_masks(self.masks, size)

    def take(self, per_bucket: int) -> "EvalMasks":
        """The first ``per_bucket`` masks of every bucket, in bucket order."""
        keep = torch.cat([torch.nonzero(self.bucket == b).flatten()[:per_bucket] for b in range(len(BUCKET_NAMES))])
        return EvalMasks(self.masks[keep], self.bucket[keep], tuple(self.kind[i] for i in keep.tolist()))


EVAL_MASK_KINDS: tuple[str, ...] = ("free_form", "rectangle")


def _draw_eval_mask(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    """One candidate of ``kind``: strokes (1-30 of them, so every hole ratio up to 60 % occurs) or a box."""
    if kind == "rectangle":
        return rectangle_mask(rng, size, 0.1, 0.8)
    return free_form_mask(rng, size, max_strokes=int(rng.integers(1, 31)))


def make_eval_masks(per_bucket: int, seed: int = 2024, size: int = EVAL_MASK_SIZE) -> EvalMasks:
    """Draw masks until every hole-ratio bucket holds ``per_bucket``, half free-form and half boxes.

    Within a bucket the kinds alternate (free-form, box, free-form, ...), so the first ``k`` masks of
    every bucket (``EvalMasks.take``) keep the same mix: hole size is never confounded with hole shape.
    """
    rng = np.random.default_rng(seed)
    quota = {kind: [(per_bucket + (kind == "free_form")) // 2] * len(BUCKET_NAMES) for kind in EVAL_MASK_KINDS}
    found = {kind: [[] for _ in BUCKET_NAMES] for kind in EVAL_MASK_KINDS}
    for kind in EVAL_MASK_KINDS:
        while any(len(f) < q for f, q in zip(found[kind], quota[kind])):
            mask = _draw_eval_mask(rng, kind, size)
            b = int(bucket_of(float(mask.mean())))
            if b >= 0 and len(found[kind][b]) < quota[kind][b]:
                found[kind][b].append(mask)
    flat: list[tuple[np.ndarray, str]] = []
    for b in range(len(BUCKET_NAMES)):
        for i in range(per_bucket):
            kind = EVAL_MASK_KINDS[i % 2]
            flat.append((found[kind][b][i // 2], kind))
    masks = torch.from_numpy(np.stack([m for m, _ in flat]))[:, None]
    bucket = torch.arange(len(BUCKET_NAMES)).repeat_interleave(per_bucket)
    return EvalMasks(masks, bucket, tuple(k for _, k in flat))


def save_eval_masks(masks: EvalMasks, path: Path) -> None:
    """Write bit-packed masks, buckets and kinds to an ``.npz`` file."""
    bits = np.packbits(masks.masks.numpy().astype(bool), axis=-1)
    np.savez_compressed(path, bits=bits, size=masks.masks.shape[-1], bucket=masks.bucket.numpy(), kind=np.array(masks.kind))


def load_eval_masks(path: str | Path | None = None) -> EvalMasks:
    """Read the committed evaluation masks (``data/eval_masks_256.npz`` by default)."""
    path = Path(path) if path is not None else DEFAULT_EVAL_MASKS
    if not path.is_file():
        raise FileNotFoundError(f"evaluation masks not found at {path}; run `python scripts/make_eval_masks.py`")
    with np.load(path) as f:
        size = int(f["size"])
        masks = np.unpackbits(f["bits"], axis=-1, count=size).astype(np.float32)
        return EvalMasks(torch.from_numpy(masks), torch.from_numpy(f["bucket"]).long(), tuple(str(k) for k in f["kind"]))
