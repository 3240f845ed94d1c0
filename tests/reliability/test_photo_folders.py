"""Issue 20, defect 8: photo folders as users keep them - symbolic link loops and very large photos."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from inpaintlib.config import REPO_ROOT
from inpaintlib.data.folders import ImageFolderDataset, centre_square, load_rgb, resize_square


def test_8_a_symlink_loop_lists_each_photo_once(tmp_path):
    root = tmp_path / "photos"
    (root / "a" / "b").mkdir(parents=True)
    for i, folder in enumerate([root, root / "a", root / "a" / "b"]):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"p{i}.png")
    os.symlink(root, root / "a" / "b" / "back_to_the_top")  # a loop: the old walk went round it 40 times
    ds = ImageFolderDataset(root, 8, layout="flat")
    assert len(ds) == 3
    assert len({os.path.realpath(f) for f in ds.files}) == 3


def test_8_a_folder_linked_twice_is_listed_once(tmp_path):
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "a" / "p.png")
    os.symlink(root / "a", root / "also_a")
    assert len(ImageFolderDataset(root, 8, layout="flat")) == 1


def test_8_a_large_jpeg_is_decoded_at_reduced_size(tmp_path):
    """One 10000 x 10000 photo: the old pipeline converted it to float before cropping (about 3 GB)."""
    photo = tmp_path / "big" / "huge.jpg"
    photo.parent.mkdir()
    y, x = np.mgrid[0:10000:8, 0:10000:8]
    small = np.stack([x % 256, y % 256, (x + y) % 256], axis=2).astype(np.uint8)  # a gradient, 1250 px
    Image.fromarray(small).resize((10000, 10000), Image.Resampling.NEAREST).save(photo, quality=90)
    script = textwrap.dedent(f"""
        import resource, sys
        from inpaintlib.data.folders import ImageFolderDataset
        ds = ImageFolderDataset({str(photo.parent)!r}, 64, layout="flat")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        image = ds[0]["image"]
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert tuple(image.shape) == (3, 64, 64) and 0 <= float(image.min()) and float(image.max()) <= 1
        print((after - before) // 1024)  # MiB more than before the photo was read
        """)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) < 400, f"reading one photo took {done.stdout.split()[-1]} MiB more"


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_8_the_reduced_decode_matches_the_full_one_up_to_rounding(tmp_path, monkeypatch, suffix):
    import inpaintlib.data.folders as folders

    monkeypatch.setattr(folders, "LARGE_IMAGE_PIXELS", 1000 * 1000)  # "large" from 1 Mpx, so the photo stays small
    coarse = np.random.default_rng(0).integers(0, 256, (11, 13, 3), dtype=np.uint8)  # smooth at the output scale
    photo = tmp_path / "big" / f"large{suffix}"
    photo.parent.mkdir()
    Image.fromarray(coarse).resize((1300, 1100), Image.Resampling.BILINEAR).save(photo)
    expected = resize_square(centre_square(load_rgb(photo)), 32)
    got = ImageFolderDataset(photo.parent, 32, layout="flat")[0]["image"].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, expected, atol=3 / 255)


@pytest.mark.parametrize("size", [16])
def test_8_small_photos_keep_the_exact_float_pipeline(tmp_path, size):
    rgb = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "p.png")
    got = ImageFolderDataset(tmp_path, size, layout="flat")[0]["image"].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got, resize_square(centre_square(load_rgb(tmp_path / "p.png")), size))
