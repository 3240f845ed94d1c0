"""Write a folder of photo crops for ``-p data_root``: train on some bundled photographs, test on others.

    .venv/bin/python scripts/make_photo_folder.py runs/photo_folder
    .venv/bin/python -m inpaintlib run notebooks/01_unet_baseline.ipynb --preset cpu -p data_root runs/photo_folder

The photographs are those bundled with scikit-image and matplotlib (``inpaintlib.data.photos``). Crops
of the ``--test`` photographs go to ``test/``, crops of the others to ``train/``: the chapters read this
as split folders (training on ``train/``, scoring on ``test/``), so no test photograph is ever seen in
training, not even another crop of it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from inpaintlib.data.photos import BUNDLED_PHOTOS, PHOTO_SEED, photo_crops


def write_photo_folder(out: str | Path, size: int = 64, per_photo: int = 200,
                       test: tuple[str, ...] = ("coffee", "grace_hopper")) -> dict[str, int]:
    """Crops ``(size, size)`` PNG files: ``out/train/<photo>_<k>.png`` and ``out/test/<photo>_<k>.png``."""
    unknown = set(test) - {p.name for p in BUNDLED_PHOTOS}
    if unknown:
        raise ValueError(f"unknown photo(s) {sorted(unknown)}; bundled: {', '.join(p.name for p in BUNDLED_PHOTOS)}")
    counts = {}
    for split, seed in (("train", PHOTO_SEED + 1), ("test", PHOTO_SEED + 2)):
        chosen = tuple(p for p in BUNDLED_PHOTOS if (p.name in test) == (split == "test"))
        crops, names = photo_crops(size, per_photo * len(chosen), seed=seed, photos=chosen)
        folder = Path(out) / split
        folder.mkdir(parents=True, exist_ok=True)
        for k, (crop, name) in enumerate(zip(crops, names)):
            pixels = (crop.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # (size, size, 3)
            Image.fromarray(pixels).save(folder / f"{name}_{k:05d}.png")
        counts[split] = len(crops)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to write (train/ and test/ inside it)")
    parser.add_argument("--size", type=int, default=64, help="crop size in pixels (the cpu preset's image size)")
    parser.add_argument("--per-photo", type=int, default=200, help="crops per photograph")
    parser.add_argument("--test", default="coffee,grace_hopper", help="comma-separated photographs held out for testing")
    args = parser.parse_args()
    counts = write_photo_folder(args.out, args.size, args.per_photo, tuple(args.test.split(",")))
    print(f"{args.out}: {counts['train']} training crops, {counts['test']} test crops")


if __name__ == "__main__":
    main()
