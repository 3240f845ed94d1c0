"""A reader's own folder of photos as a chapter's training data and benchmark (the ``data_root`` parameter).

:func:`open_data_root` recognises the folder's layout (:func:`detect_layout`), lists its training
images and a held-out set, and fails in one line (:class:`FolderDatasetError`) when the folder is
missing, empty or too small, before any work starts. :func:`folder_batches` and
:func:`folder_benchmark` then play the parts of ``InpaintingBatches.scenes`` and ``Benchmark.scenes``:
the same masks, the same batch sampler, the same metrics, only the images differ.

Held-out images: the layout's test split (Places2, Paris StreetView, CelebA-HQ or Places "easy
format" split folders: ``val`` when there is no ``test``; Cityscapes and ADE20K: ``val``). A folder
without splits ("flat", or CelebA-HQ as one folder) holds out every fifth image in sorted order (the
last one when there are fewer than five), so training never sees an evaluation image.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from inpaintlib.data.batches import InpaintingBatches, training_masks
from inpaintlib.data.folders import (
    ADE20K_FOLDER, ADE20K_SPLITS, CITYSCAPES_SPLITS, IGNORE_INDEX, IMAGE_LAYOUTS, SEGMENTATION_LAYOUTS, FolderDatasetError,
    _check_root, _subfolders, _to_image_tensor, check_label_files, image_layout_files, load_square, segmentation_layout_files,
)
from inpaintlib.data.scenes import NUM_CLASSES
from inpaintlib.evaluate import Benchmark
from inpaintlib.masks import BUCKET_NAMES

HOLD_OUT_EVERY = 5
MIN_IMAGES = 2  # one to train on, one held out

# Sub-folders that identify a layout, checked in this order; "flat" when none matches.
LAYOUT_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cityscapes", ("leftImg8bit", "gtFine")),
    ("ade20k", (ADE20K_FOLDER,)),
    ("ade20k", ("images/training", "annotations/training")),
    ("places2", ("data_256",)),
    ("places2", ("data_256_standard",)),
    ("places2", ("val_256",)),
    ("paris", ("paris_train_original",)),
    ("celeba-hq", ("train",)),
)


def detect_layout(root: str | os.PathLike) -> str:
    """The layout of a data folder, from the sub-folders that public releases have (``LAYOUT_MARKERS``)."""
    path = _check_root(root)
    for layout, markers in LAYOUT_MARKERS:
        if all((path / marker).is_dir() for marker in markers):
            return layout
    return "flat"


def _files(root: Path, layout: str, split: str) -> list[Path]:
    """Image files of one split, [] when the layout has no such split or it holds no image."""
    if layout in SEGMENTATION_LAYOUTS:
        splits = CITYSCAPES_SPLITS if layout == "cityscapes" else ADE20K_SPLITS
        if split not in splits:
            return []
        pairs = segmentation_layout_files(root, layout, split)
        check_label_files(pairs)
        return [image for image, _ in pairs]
    return image_layout_files(root, layout, split) if split in IMAGE_LAYOUTS[layout] else []


@dataclass(frozen=True)
class FolderData:
    """A data folder resolved to its training and held-out image files (sorted, disjoint)."""

    root: Path
    layout: str
    train: tuple[Path, ...]
    test: tuple[Path, ...]
    held_out: str   # how the held-out images were chosen, in words

    def fingerprint(self) -> str:
        """16 hex digits of SHA-256 over every file's relative path, size and modification time."""
        h = hashlib.sha256()
        for part, files in (("train", self.train), ("test", self.test)):
            for f in files:
                st = f.stat()
                h.update(f"{part}\0{f.relative_to(self.root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()[:16]

    def record(self) -> dict:
        """What a run records of its data: ``{"name", "root", "train_images", "test_images", "held_out", "fingerprint"}``."""
        return {"name": self.layout, "root": str(self.root), "train_images": len(self.train),
                "test_images": len(self.test), "held_out": self.held_out, "fingerprint": self.fingerprint()}


def open_data_root(root: str | os.PathLike, layout: str | None = None) -> FolderData:
    """Resolve ``root`` (layout detected when ``None``) to training and held-out files, or fail in one line."""
    path = _check_root(root).resolve()
    layout = layout or detect_layout(path)
    train = _files(path, layout, "train")
    if not train:
        raise FolderDatasetError(f"data root {path} holds no images (layout {layout!r}; subfolders there: {_subfolders(path)})")
    known = set(train)
    test, held_out = [], ""
    for split in ("val",) if layout in SEGMENTATION_LAYOUTS else ("test", "val"):
        test = [f for f in _files(path, layout, split) if f not in known]
        if test:
            held_out = f"the layout's {split} split"
            break
    if not test:  # no separate split: hold out every fifth image (the last one of fewer than five)
        n = len(train)
        if n < MIN_IMAGES:
            raise FolderDatasetError(f"data root {path} holds {n} image; at least {MIN_IMAGES} are needed "
                                     "(one to train on, one held out for evaluation)")
        chosen = set(range(HOLD_OUT_EVERY - 1, n, HOLD_OUT_EVERY)) or {n - 1}
        test = [f for i, f in enumerate(train) if i in chosen]
        train = [f for i, f in enumerate(train) if i not in chosen]
        held_out = f"every {HOLD_OUT_EVERY}th image in sorted order" if n >= HOLD_OUT_EVERY else "the last image in sorted order"
    return FolderData(path, layout, tuple(train), tuple(test), held_out)


def spread_indices(available: int, count: int) -> list[int]:
    """``min(count, available)`` distinct indices spread evenly over ``range(available)``, in order."""
    count = min(count, available)
    return sorted(set(np.linspace(0, available - 1, count).round().astype(int).tolist()))


def load_images(files: list[Path] | tuple[Path, ...], size: int, progress: bool = False, desc: str = "load photos") -> torch.Tensor:
    """Files -> ``(N, 3, size, size)`` float in [0, 1]: centre square, resized (``load_square``)."""
    return torch.stack([_to_image_tensor(load_square(f, size)) for f in tqdm(files, desc=desc, disable=not progress, leave=False)])


def folder_batches(data: FolderData, size: int, train_images: int, batch_size: int, seed: int = 0,
                   progress: bool = False) -> InpaintingBatches:
    """Training batches over up to ``train_images`` of the folder's training images (spread evenly over
    the sorted list) and the same mask pool as Scenes training. No labels: every pixel is ignored."""
    files = [data.train[i] for i in spread_indices(len(data.train), train_images)]
    images = load_images(files, size, progress=progress, desc="load training photos")
    labels = torch.full((len(images), size, size), IGNORE_INDEX, dtype=torch.long)
    present = torch.zeros(len(images), NUM_CLASSES)
    return InpaintingBatches(images, labels, present, training_masks(train_images, size, seed), batch_size, seed)


def folder_benchmark(data: FolderData, size: int, per_bucket: int) -> Benchmark:
    """The folder's held-out images under the committed masks (``Benchmark.from_images``)."""
    files = [data.test[i] for i in spread_indices(len(data.test), per_bucket * len(BUCKET_NAMES))]
    return Benchmark.from_images(load_images(files, size), per_bucket, f"{data.layout}:{data.root.name}")


def data_record(data_root: str | None) -> dict:
    """What a chapter records of its data: ``{"name": "scenes"}`` or the folder's :meth:`FolderData.record`."""
    return {"name": "scenes"} if data_root is None else open_data_root(data_root).record()
