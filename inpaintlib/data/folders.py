"""Folder data sets: Places2 / CelebA-HQ / Paris StreetView / Cityscapes / ADE20K as users keep them on disk.

Nothing here downloads anything: the user points ``root`` at a copy of a public release and these
classes read it in the release's own layout. Items have the form of :class:`ScenesDataset` items,
so every notebook can swap the procedural benchmark for real photos through :func:`open_dataset`:

- ``image`` (3, size, size) float32 in [0, 1];
- segmentation sets also ``labels`` (size, size) long in [0, K) with 255 = ignore, and ``present``
  (K,) float image-level multi-label (:func:`presence_ignoring`).

Every image goes through the same deterministic pipeline [our reconstruction]: decode to RGB
(greyscale is repeated, alpha dropped, 16-bit scaled by 1/65535), centre-crop the largest square,
resize to ``size`` (area averaging to shrink, bilinear to enlarge; labels nearest). File lists are
sorted so item ``i`` is the same file on every machine.

Every problem is a :class:`FolderDatasetError` (a ``ValueError``) whose one-line message names the
problem and the path.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from inpaintlib.data.scenes import PRESENCE_FRACTION, ScenesDataset

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
IGNORE_INDEX = 255

# Where each image layout keeps each split: (folder relative to root, searched recursively?), tried
# in order; the first folder that holds images wins. "." is root itself.
IMAGE_LAYOUTS: dict[str, dict[str, tuple[tuple[str, bool], ...]]] = {
    # Places365-Standard "small images (256 x 256)": train_256_places365standard.tar unpacks to
    # data_256/<letter>/<category>[/<subcategory>]/*.jpg, val_256.tar to val_256/*.jpg, test_256.tar
    # to test_256/*.jpg; torchvision names the train folder data_256_standard; the "easy format"
    # places365_standard/{train,val}/<category>/*.jpg is covered by train/ and val/.
    "places2": {
        "train": (("data_256", True), ("data_256_standard", True), ("train", True)),
        "val": (("val_256", True), ("val", True)),
        "test": (("test_256", True), ("test", True)),
    },
    # CelebA-HQ has no official split folders: either split folders (e.g. StarGAN v2's
    # celeba_hq/{train,val}/{female,male}/*.jpg) or one flat folder of images used for every split.
    "celeba-hq": {
        split: ((split, True), (".", False)) for split in ("train", "val", "test")
    },
    # Paris StreetView (Context Encoders release): paris_train_original/*.JPG (14,900 images) and the
    # 100 evaluation images paris_eval_gt/*.png, sometimes kept inside paris_eval/; val and test
    # both name that evaluation set.
    "paris": {
        "train": (("paris_train_original", True),),
        "val": (("paris_eval_gt", True), ("paris_eval/paris_eval_gt", True)),
        "test": (("paris_eval_gt", True), ("paris_eval/paris_eval_gt", True)),
    },
    # Every image below root; the split is not used.
    "flat": {split: ((".", True),) for split in ("train", "val", "test")},
}

# Cityscapes labelId -> trainId, the table of cityscapesScripts' helpers/labels.py [official code]:
# 19 evaluated classes, every other id (void, parking, rail track, guard rail, bridge, tunnel,
# polegroup, caravan, trailer) -> 255. Ids above 33 do not exist in *_gtFine_labelIds.png.
CITYSCAPES_LABEL_TO_TRAIN: dict[int, int] = {
    0: 255,  # unlabeled
    1: 255,  # ego vehicle
    2: 255,  # rectification border
    3: 255,  # out of roi
    4: 255,  # static
    5: 255,  # dynamic
    6: 255,  # ground
    7: 0,  # road
    8: 1,  # sidewalk
    9: 255,  # parking
    10: 255,  # rail track
    11: 2,  # building
    12: 3,  # wall
    13: 4,  # fence
    14: 255,  # guard rail
    15: 255,  # bridge
    16: 255,  # tunnel
    17: 5,  # pole
    18: 255,  # polegroup
    19: 6,  # traffic light
    20: 7,  # traffic sign
    21: 8,  # vegetation
    22: 9,  # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    29: 255,  # caravan
    30: 255,  # trailer
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
}
CITYSCAPES_CLASS_NAMES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
    "bicycle",
)  # fmt: skip

# ADE20K SceneParsing (ADEChallengeData2016): the first name of each row of objectInfo150.csv
# [official code]; annotation value v in 1..150 is class v - 1, 0 ("other") is ignored.
ADE20K_CLASS_NAMES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
    "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table",
    "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table",
    "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island",
    "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman",
    "bottle", "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy",
    "washer", "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot",
    "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce",
    "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip
ADE20K_LABEL_TO_TRAIN: dict[int, int] = {0: IGNORE_INDEX} | {v: v - 1 for v in range(1, len(ADE20K_CLASS_NAMES) + 1)}

SEGMENTATION_LAYOUTS: tuple[str, ...] = ("cityscapes", "ade20k")
CITYSCAPES_SPLITS: tuple[str, ...] = ("train", "val", "test")
ADE20K_SPLITS: dict[str, str] = {"train": "training", "val": "validation"}
ADE20K_FOLDER = "ADEChallengeData2016"

DATASET_NAMES: tuple[str, ...] = ("scenes", *IMAGE_LAYOUTS, *SEGMENTATION_LAYOUTS)


class FolderDatasetError(ValueError):
    """A folder data set problem, in one line naming the problem and the path."""


def _label_table(mapping: dict[int, int]) -> np.ndarray:
    """``mapping`` as a lookup table ``(max_id + 1,)`` int64; ids without an entry hold -1."""
    table = np.full(max(mapping) + 1, -1, dtype=np.int64)
    table[list(mapping)] = list(mapping.values())
    return table


def _check_choice(what: str, value: str, choices: tuple[str, ...], context: str) -> None:
    if value not in choices:
        raise FolderDatasetError(f"unknown {what} {value!r} ({context}); choose one of {', '.join(choices)}")


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise FolderDatasetError(f"size must be a positive int, got {size!r}")


def _check_root(root: str | os.PathLike) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        problem = "is not a directory" if path.exists() else "does not exist"
        raise FolderDatasetError(f"data root {path} {problem}")
    return path


def _subfolders(root: Path) -> str:
    names = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    return ", ".join(names[:10]) + (", ..." if len(names) > 10 else "") if names else "none"


def list_images(folder: Path, extensions: tuple[str, ...], recursive: bool) -> list[Path]:
    """Image files in ``folder`` (and below it when ``recursive``), extension case-insensitive, sorted."""
    if not folder.is_dir():
        return []
    if recursive:
        # Symbolic links are followed, each real directory once: a link back up the tree (a loop) or a
        # second link to the same folder would otherwise list the same photos again and again.
        files, visited = [], set()
        for d, dirnames, names in os.walk(folder, followlinks=True):
            real = os.path.realpath(d)
            if real in visited:
                dirnames[:] = []
                continue
            visited.add(real)
            dirnames[:] = sorted(n for n in dirnames if os.path.realpath(os.path.join(d, n)) not in visited)
            files += [Path(d, f) for f in names]
    else:
        files = [Path(e.path) for e in os.scandir(folder) if e.is_file()]
    return sorted((f for f in files if f.suffix.lower() in extensions), key=lambda f: f.relative_to(folder).as_posix())


def load_rgb(path: Path) -> np.ndarray:
    """Decode an image file to ``(H, W, 3)`` float32 RGB in [0, 1].

    Greyscale is repeated over the three channels, alpha is dropped, 8-bit is divided by 255 and
    16-bit by 65535. EXIF orientation is not applied (label maps follow the stored pixel grid).
    """
    try:
        encoded = np.fromfile(path, dtype=np.uint8)
        decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if encoded.size else None
    except (OSError, cv2.error) as err:
        raise FolderDatasetError(f"cannot read image {path}: {err}") from err
    if decoded is None:
        raise FolderDatasetError(f"cannot decode image {path} (corrupt or not an image)")
    if decoded.dtype not in (np.uint8, np.uint16):
        raise FolderDatasetError(f"image {path} has unsupported sample type {decoded.dtype}; expected 8 or 16 bit")
    scale = 1.0 / np.iinfo(decoded.dtype).max
    pixels = decoded.astype(np.float32) * np.float32(scale)
    if pixels.ndim == 2:  # grey (H, W)
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.shape[2] == 1:  # grey (H, W, 1)
        return np.repeat(pixels, 3, axis=2)
    if pixels.shape[2] not in (3, 4):
        raise FolderDatasetError(f"image {path} has {pixels.shape[2]} channels; expected 1, 3 or 4")
    return np.ascontiguousarray(pixels[:, :, 2::-1])  # BGR or BGRA -> RGB (H, W, 3)


# Photos above this many pixels are decoded at reduced size (JPEG) and cropped and resized in 8 bit
# before the conversion to float: a 10000 x 10000 photo would otherwise take about 3 GB.
LARGE_IMAGE_PIXELS = 4096 * 4096
REDUCIBLE_MODES = ("RGB", "RGBA", "L", "LA", "P", "CMYK", "YCbCr")


def load_square(path: Path, size: int) -> np.ndarray:
    """``(size, size, 3)`` float32 RGB in [0, 1]: the centre square of the image at ``path`` resized to ``size``.

    Equal to ``resize_square(centre_square(load_rgb(path)), size)``; an 8-bit photo of more than
    ``LARGE_IMAGE_PIXELS`` pixels whose shorter side is at least 4 ``size`` is decoded at reduced
    size instead (JPEG DCT scaling, keeping the shorter side at least 8 ``size``), cropped and shrunk
    by area averaging in 8 bit, then converted (results differ from the full decode by a few levels of 255).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            width, height = img.size
            large = width * height > LARGE_IMAGE_PIXELS and min(width, height) >= 4 * size and img.mode in REDUCIBLE_MODES
            if large:
                scale = 8 * size / min(width, height)
                img.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))  # JPEG: 1/2, 1/4 or 1/8
                rgb = img.convert("RGB")
                # DCT scaling by 1/k gives ceil(width / k) pixels, the last one covering a partial block
                factor = 1 / max(1, round(width / rgb.width))
                side = min(width, height)
                left, top = (width - side) // 2, (height - side) // 2  # centre_square's crop, in the reduced grid
                box = (left * factor, top * factor, (left + side) * factor, (top + side) * factor)
                pixels = np.asarray(rgb.resize((size, size), Image.Resampling.BOX, box=box))  # area average, uint8
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        large = False  # let load_rgb decode it, or name the file in its error
    if not large:
        return resize_square(centre_square(load_rgb(path)), size)
    return pixels.astype(np.float32) * np.float32(1 / 255)


def load_label_ids(path: Path) -> np.ndarray:
    """A single-channel label PNG as ``(H, W)`` int64 raw ids (palette PNGs give their indices)."""
    try:
        with Image.open(path) as img:
            ids = np.asarray(img)
    except (OSError, SyntaxError, ValueError) as err:
        raise FolderDatasetError(f"cannot read label file {path}: {err}") from err
    if ids.ndim != 2:
        raise FolderDatasetError(f"label file {path} has shape {ids.shape}; expected one channel (H, W)")
    return ids.astype(np.int64)


def centre_square(array: np.ndarray) -> np.ndarray:
    """The largest centred square of ``(H, W, ...)``: side ``s = min(H, W)`` at ``((H - s) // 2, (W - s) // 2)``."""
    h, w = array.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return array[top : top + side, left : left + side]


def resize_square(square: np.ndarray, size: int, labels: bool = False) -> np.ndarray:
    """Resize a square ``(S, S, ...)`` to ``(size, size, ...)``.

    Images: area averaging to shrink, bilinear (pixel centres aligned) to enlarge; labels: nearest
    with centres aligned (output pixel j reads source pixel ``floor((j + 0.5) * S / size)``).
    """
    side = square.shape[0]
    if side == size:
        return square
    if labels:
        return cv2.resize(square.astype(np.int32), (size, size), interpolation=cv2.INTER_NEAREST_EXACT).astype(np.int64)
    interpolation = cv2.INTER_AREA if size < side else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interpolation)


def presence_ignoring(labels: torch.Tensor, num_classes: int, fraction: float = PRESENCE_FRACTION) -> torch.Tensor:
    """Image-level multi-label ``(K,)`` float of ``labels`` ``(H, W)`` long with ``IGNORE_INDEX`` pixels.

    The rule of :func:`inpaintlib.data.scenes.presence` over the labelled pixels only: class k is
    present when it covers at least ``fraction`` of them; an image with no labelled pixel has none.
    """
    valid = labels[labels != IGNORE_INDEX]  # (N_valid,)
    counts = torch.bincount(valid, minlength=num_classes)[:num_classes]  # (K,)
    return ((counts >= fraction * valid.numel()) & (counts > 0)).float()


def _to_image_tensor(pixels: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` float32 -> ``(3, H, W)`` float32 clipped to [0, 1] (bilinear/area keep the range)."""
    return torch.from_numpy(np.clip(pixels, 0.0, 1.0)).permute(2, 0, 1).contiguous()


def image_layout_files(root: Path, layout: str, split: str, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[Path]:
    """The image files of one split of an image layout: the first of its candidate folders
    (``IMAGE_LAYOUTS``) that holds any; [] when none does."""
    for folder, recursive in IMAGE_LAYOUTS[layout][split]:
        files = list_images(root / folder, extensions, recursive)
        if files:
            return files
    return []


def segmentation_layout_files(root: Path, layout: str, split: str) -> list[tuple[Path, Path]]:
    """``(image, label file)`` pairs of one split of a segmentation layout, sorted; the label files are
    where the layout keeps them, whether or not they exist. [] when the split holds no image."""
    if layout == "cityscapes":
        images = sorted((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        return [(f, root / "gtFine" / split / f.parent.name / f.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png"))
                for f in images]
    base = root / ADE20K_FOLDER if (root / ADE20K_FOLDER).is_dir() else root
    images = list_images(base / "images" / ADE20K_SPLITS[split], (".jpg",), recursive=False)
    return [(f, base / "annotations" / ADE20K_SPLITS[split] / f"{f.stem}.png") for f in images]


def check_label_files(pairs: list[tuple[Path, Path]]) -> None:
    """Every image of ``segmentation_layout_files`` has its label file, or one line names the first that has not."""
    for image, label in pairs:
        if not label.is_file():
            raise FolderDatasetError(f"image {image} has no label file: expected {label}")


class ImageFolderDataset(Dataset):
    """Photos of one split of an image data set in its public layout; items ``{"image": (3, size, size)}``.

    Expected trees (``root`` is the folder shown at the top; extensions are case-insensitive)::

        layout="places2"                      Places365-Standard, small images
          root/data_256/a/airfield/00000001.jpg      train (any depth below data_256/)
          root/data_256_standard/...  or root/train/...   train, if data_256/ has no images
          root/val_256/Places365_val_00000001.jpg    val   (or root/val/...)
          root/test_256/Places365_test_00000001.jpg  test  (or root/test/...)
        layout="celeba-hq"
          root/train/**/*.jpg, root/val/**/*.jpg, root/test/**/*.jpg   split folders, if present
          root/*.jpg                                  otherwise: one flat folder, used for every split
        layout="paris"                         Paris StreetView (Context Encoders release)
          root/paris_train_original/*.JPG             train
          root/paris_eval_gt/*.png  or root/paris_eval/paris_eval_gt/*.png   val and test
        layout="flat"
          root/**/*.{jpg,png,...}                     every image below root, whatever the split

    Each image: RGB, centre square crop, resized to ``size`` (:func:`resize_square`), float in [0, 1].
    Unreadable files raise :class:`FolderDatasetError` naming the file when the item is read.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        size: int = 256,
        split: str = "train",
        layout: str = "places2",
        extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
    ) -> None:
        _check_choice("image layout", layout, tuple(IMAGE_LAYOUTS), f"root {root}")
        _check_choice("split", split, tuple(IMAGE_LAYOUTS[layout]), f"layout {layout!r}, root {root}")
        _check_size(size)
        self.root = _check_root(root)
        self.size, self.split, self.layout = size, split, layout
        self.extensions = tuple(ext.lower() if ext.startswith(".") else "." + ext.lower() for ext in extensions)
        candidates = IMAGE_LAYOUTS[layout][split]
        self.files = image_layout_files(self.root, layout, split, self.extensions)
        if not self.files:
            searched = ", ".join(f"{folder}/{'**/' if recursive else ''}*" for folder, recursive in candidates)
            raise FolderDatasetError(
                f"no images for layout {layout!r} split {split!r} under {self.root}: searched {searched} "
                f"for {'/'.join(self.extensions)}; subfolders there: {_subfolders(self.root)}; "
                f"image layouts: {', '.join(IMAGE_LAYOUTS)}"
            )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self.files):
            raise IndexError(f"image index {index} out of range [0, {len(self.files)})")
        pixels = load_square(self.files[index], self.size)  # (size, size, 3)
        return {"image": _to_image_tensor(pixels)}


class SegmentationFolderDataset(Dataset):
    """Images with per-pixel labels in a public segmentation layout; items like :class:`ScenesDataset`'s.

    Items: ``image`` (3, size, size) float in [0, 1], ``labels`` (size, size) long in [0, K) with 255 =
    ignore, ``present`` (K,) float (:func:`presence_ignoring`). Expected trees::

        layout="cityscapes"   K = 19 trainIds (CITYSCAPES_LABEL_TO_TRAIN), split in train / val / test
          root/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
          root/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
        layout="ade20k"       K = 150, split train -> training, val -> validation
          root/ADEChallengeData2016/images/<training|validation>/ADE_train_00000001.jpg
          root/ADEChallengeData2016/annotations/<training|validation>/ADE_train_00000001.png
          (root may also be the ADEChallengeData2016 folder itself)

    Image and label map get the same centre square crop; labels are resized with nearest.
    A missing label file fails at construction; a label map whose size differs from its image's,
    or whose raw ids the layout does not define, fails when the item is read; all name the files.
    """

    def __init__(self, root: str | os.PathLike, size: int = 256, split: str = "train", layout: str = "cityscapes") -> None:
        _check_choice("segmentation layout", layout, SEGMENTATION_LAYOUTS, f"root {root}")
        splits = CITYSCAPES_SPLITS if layout == "cityscapes" else tuple(ADE20K_SPLITS)
        _check_choice("split", split, splits, f"layout {layout!r}, root {root}")
        _check_size(size)
        self.root = _check_root(root)
        self.size, self.split, self.layout = size, split, layout
        if layout == "cityscapes":
            self.class_names = CITYSCAPES_CLASS_NAMES
            self._table = _label_table(CITYSCAPES_LABEL_TO_TRAIN)
            searched = f"leftImg8bit/{split}/<city>/*_leftImg8bit.png"
        else:
            self.class_names = ADE20K_CLASS_NAMES
            self._table = _label_table(ADE20K_LABEL_TO_TRAIN)
            searched = f"[{ADE20K_FOLDER}/]images/{ADE20K_SPLITS[split]}/*.jpg"
        pairs = segmentation_layout_files(self.root, layout, split)
        self.images = [image for image, _ in pairs]
        self.label_files = [label for _, label in pairs]
        self.num_classes = len(self.class_names)
        if not self.images:
            raise FolderDatasetError(
                f"no images for layout {layout!r} split {split!r} under {self.root}: searched {searched}; "
                f"subfolders there: {_subfolders(self.root)}; segmentation layouts: {', '.join(SEGMENTATION_LAYOUTS)}"
            )
        check_label_files(pairs)

    def __len__(self) -> int:
        return len(self.images)

    def _train_ids(self, raw: np.ndarray, label_file: Path) -> np.ndarray:
        """Raw label ids ``(H, W)`` -> train ids ``(H, W)`` via the layout's table; undefined ids fail."""
        known = (raw >= 0) & (raw < len(self._table))
        mapped = np.where(known, self._table[np.clip(raw, 0, len(self._table) - 1)], -1)  # (H, W)
        if (mapped < 0).any():
            bad = np.unique(raw[mapped < 0])
            shown = ", ".join(str(v) for v in bad[:8]) + (", ..." if len(bad) > 8 else "")
            raise FolderDatasetError(
                f"label file {label_file} holds id(s) {shown} that layout {self.layout!r} does not define "
                f"(defined ids: 0..{len(self._table) - 1})"
            )
        return mapped

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self.images):
            raise IndexError(f"image index {index} out of range [0, {len(self.images)})")
        image_file, label_file = self.images[index], self.label_files[index]
        pixels = load_rgb(image_file)  # (H, W, 3)
        raw = load_label_ids(label_file)  # (H, W)
        if raw.shape != pixels.shape[:2]:
            raise FolderDatasetError(
                f"label file {label_file} is {raw.shape[1]}x{raw.shape[0]} but image {image_file} is "
                f"{pixels.shape[1]}x{pixels.shape[0]} (width x height)"
            )
        labels = self._train_ids(raw, label_file)
        pixels = resize_square(centre_square(pixels), self.size)  # (size, size, 3)
        labels = resize_square(centre_square(labels), self.size, labels=True)  # (size, size)
        labels_t = torch.from_numpy(np.ascontiguousarray(labels))
        return {
            "image": _to_image_tensor(pixels),
            "labels": labels_t,
            "present": presence_ignoring(labels_t, self.num_classes),
        }


def open_dataset(
    name: str, root: str | os.PathLike | None, size: int, split: str, length: int = 1000, seed: int = 0
) -> Dataset:
    """The data set a notebook's ``data_root`` parameter points at.

    ``name``: "scenes" (procedural; ``root`` unused, ``length`` and ``seed`` used), an image layout
    ("places2", "celeba-hq", "paris", "flat" -> :class:`ImageFolderDataset`) or a segmentation layout
    ("cityscapes", "ade20k" -> :class:`SegmentationFolderDataset`).
    """
    if name == "scenes":
        return ScenesDataset(length=length, size=size, seed=seed, split=split)
    _check_choice("data set", name, DATASET_NAMES, f"root {root}")
    if root is None:
        raise FolderDatasetError(f"data set {name!r} needs a data root (the folder holding its files), got None")
    if name in SEGMENTATION_LAYOUTS:
        return SegmentationFolderDataset(root, size=size, split=split, layout=name)
    return ImageFolderDataset(root, size=size, split=split, layout=name)
