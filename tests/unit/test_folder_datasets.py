"""Folder data sets on tiny fixture trees in each public layout: file lists, crops, label remapping, errors.

Expected values are computed by hand (gradient images with known pixel values, explicit crop offsets,
hand-written id tables) or by plain loops, never by the code under test.
"""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from inpaintlib.data.folders import (
    ADE20K_CLASS_NAMES,
    CITYSCAPES_CLASS_NAMES,
    FolderDatasetError,
    ImageFolderDataset,
    SegmentationFolderDataset,
    open_dataset,
    presence_ignoring,
)
from inpaintlib.data.scenes import ScenesDataset


def _gradient(h: int, w: int) -> np.ndarray:
    """``(h, w, 3)`` uint8 RGB, linear in x and y: R = 6x, G = 8y, B = 50 + 2x + 3y (h <= 31, w <= 41)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([6 * x, 8 * y, 50 + 2 * x + 3 * y], axis=2).astype(np.uint8)


def _save_rgb(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def _save_label(path: Path, ids: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids.astype(np.uint8), mode="L").save(path)
    return path


def _relative(ds, attr: str = "files") -> list[str]:
    return [f.relative_to(ds.root).as_posix() for f in getattr(ds, attr)]


def _one_line_error(err: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# --------------------------------------------------------------------------- image layouts


@pytest.fixture
def places_root(tmp_path: Path) -> Path:
    root = tmp_path / "places365"
    # written out of sorted order on purpose
    _save_rgb(root / "data_256/b/bar/00000001.png", _gradient(30, 40))
    _save_rgb(root / "data_256/a/apartment_building/outdoor/00000001.png", _gradient(30, 40))
    _save_rgb(root / "data_256/a/airfield/00000002.png", _gradient(30, 40))
    _save_rgb(root / "data_256/a/airfield/00000001.jpg", _gradient(30, 40))
    (root / "data_256/a/airfield/notes.txt").write_text("not an image")
    _save_rgb(root / "val_256/Places365_val_00000002.jpg", _gradient(30, 40))
    _save_rgb(root / "val_256/Places365_val_00000001.jpg", _gradient(30, 40))
    _save_rgb(root / "test_256/Places365_test_00000001.jpg", _gradient(30, 40))
    return root


def test_places2_layout_lists_sorted_files_per_split(places_root):
    train = ImageFolderDataset(places_root, size=16, split="train", layout="places2")
    assert _relative(train) == [
        "data_256/a/airfield/00000001.jpg",
        "data_256/a/airfield/00000002.png",
        "data_256/a/apartment_building/outdoor/00000001.png",
        "data_256/b/bar/00000001.png",
    ]
    val = ImageFolderDataset(places_root, size=16, split="val", layout="places2")
    assert _relative(val) == ["val_256/Places365_val_00000001.jpg", "val_256/Places365_val_00000002.jpg"]
    assert len(ImageFolderDataset(places_root, size=16, split="test", layout="places2")) == 1
    for ds in (train, val):
        for i in range(len(ds)):
            item = ds[i]
            assert set(item) == {"image"}
            assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32
            assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0


def test_places2_accepts_train_val_subfolders_and_is_deterministic(tmp_path):
    root = tmp_path / "places365_standard"
    _save_rgb(root / "train/airfield/00000002.jpg", _gradient(30, 40))
    _save_rgb(root / "train/airfield/00000001.jpg", _gradient(30, 40)[::-1].copy())
    _save_rgb(root / "val/airfield/Places365_val_00000001.jpg", _gradient(30, 40))
    a = ImageFolderDataset(root, size=20, split="train", layout="places2")
    b = ImageFolderDataset(str(root), size=20, split="train", layout="places2")
    assert _relative(a) == ["train/airfield/00000001.jpg", "train/airfield/00000002.jpg"]
    assert _relative(b) == _relative(a)
    for i in range(len(a)):
        torch.testing.assert_close(a[i]["image"], b[i]["image"], rtol=0, atol=0)
    assert len(ImageFolderDataset(root, size=20, split="val", layout="places2")) == 1


def test_celeba_hq_flat_folder_and_split_folders(tmp_path):
    flat = tmp_path / "celeba_hq"
    for name in ("2.jpg", "0.jpg", "1.png"):
        _save_rgb(flat / name, _gradient(30, 30))
    for split in ("train", "val"):
        assert _relative(ImageFolderDataset(flat, size=8, split=split, layout="celeba-hq")) == ["0.jpg", "1.png", "2.jpg"]

    split_root = tmp_path / "stargan_celeba_hq"
    _save_rgb(split_root / "train/male/000004.jpg", _gradient(30, 30))
    _save_rgb(split_root / "train/female/000002.jpg", _gradient(30, 30))
    _save_rgb(split_root / "val/female/000009.jpg", _gradient(30, 30))
    train = ImageFolderDataset(split_root, size=8, split="train", layout="celeba-hq")
    assert _relative(train) == ["train/female/000002.jpg", "train/male/000004.jpg"]
    assert _relative(ImageFolderDataset(split_root, size=8, split="val", layout="celeba-hq")) == ["val/female/000009.jpg"]
    assert train[1]["image"].shape == (3, 8, 8)


def test_paris_layout_reads_upper_case_jpg_and_nested_eval_folder(tmp_path):
    root = tmp_path / "paris"
    _save_rgb(root / "paris_train_original/48.842502_2.344968_90_-004.JPG", _gradient(30, 40))
    _save_rgb(root / "paris_train_original/48.842502_2.344968_90_-003.JPG", _gradient(30, 40))
    _save_rgb(root / "paris_eval/paris_eval_gt/001_im.png", _gradient(30, 40))
    _save_rgb(root / "paris_eval/paris_eval_corrupted/001_im.png", _gradient(30, 40))
    train = ImageFolderDataset(root, size=24, split="train", layout="paris")
    assert _relative(train) == [
        "paris_train_original/48.842502_2.344968_90_-003.JPG",
        "paris_train_original/48.842502_2.344968_90_-004.JPG",
    ]
    for split in ("val", "test"):
        assert _relative(ImageFolderDataset(root, size=24, split=split, layout="paris")) == [
            "paris_eval/paris_eval_gt/001_im.png"
        ]
    assert train[0]["image"].shape == (3, 24, 24)


def test_flat_layout_takes_every_image_below_root_and_honours_extensions(tmp_path):
    root = tmp_path / "photos"
    _save_rgb(root / "z.png", _gradient(30, 40))
    _save_rgb(root / "deep/er/a.bmp", _gradient(30, 40))
    cv2.imwrite(str(root / "deep/b.webp"), _gradient(30, 40)[:, :, ::-1])
    (root / "readme.md").write_text("x")
    ds = ImageFolderDataset(root, size=30, split="val", layout="flat")
    assert _relative(ds) == ["deep/b.webp", "deep/er/a.bmp", "z.png"]
    only_png = ImageFolderDataset(root, size=30, layout="flat", extensions=("PNG",))
    assert _relative(only_png) == ["z.png"]
    # bmp and lossless webp decode to the exact crop
    expected = torch.from_numpy(_gradient(30, 40)[:, 5:35] / 255.0).permute(2, 0, 1).float()
    torch.testing.assert_close(ds[0]["image"], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(ds[1]["image"], expected, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- crop, resize, decoding


def _single(tmp_path: Path, rgb: np.ndarray, size: int, name: str = "img.png") -> torch.Tensor:
    _save_rgb(tmp_path / "one" / name, rgb)
    return ImageFolderDataset(tmp_path / "one", size=size, layout="flat")[0]["image"]


@pytest.mark.parametrize(
    ("h", "w", "top", "left"),
    [(30, 40, 0, 5), (41, 30, 5, 0), (27, 40, 0, 6), (30, 30, 0, 0)],
)
def test_centre_crop_matches_hand_computed_offsets(tmp_path, h, w, top, left):
    side = min(h, w)
    rgb = _gradient(h, w)
    expected = np.zeros((side, side, 3), dtype=np.float64)
    for y in range(side):
        for x in range(side):
            expected[y, x] = rgb[top + y, left + x] / 255.0
    image = _single(tmp_path, rgb, size=side)
    torch.testing.assert_close(image, torch.from_numpy(expected).permute(2, 0, 1).float(), rtol=0, atol=1e-6)


def test_downscale_is_area_average_of_the_crop(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    crop = rgb[:, 5:35] / 255.0
    image = _single(tmp_path, rgb, size=12)  # crop 30 -> 12: output pixel j covers source [2.5 j, 2.5 j + 2.5)

    def overlaps(j: int) -> np.ndarray:
        start, stop = 2.5 * j, 2.5 * j + 2.5
        return np.array([max(0.0, min(stop, k + 1) - max(start, k)) for k in range(30)]) / 2.5

    for i in range(12):
        for j in range(12):
            weights = overlaps(i)[:, None] * overlaps(j)[None, :]  # (30, 30), sums to 1
            expected = (weights[:, :, None] * crop).sum(axis=(0, 1))
            np.testing.assert_allclose(image[:, i, j].numpy(), expected, atol=1e-5)


def test_upscale_is_bilinear_with_aligned_pixel_centres(tmp_path):
    rgb = _gradient(30, 40)
    image = _single(tmp_path, rgb, size=60)  # crop 30 -> 60
    for i in range(60):
        for j in range(60):
            # source coordinate of the output centre, clamped at the borders; the gradient is linear
            sy = min(max((i + 0.5) / 2 - 0.5, 0.0), 29.0)
            sx = min(max((j + 0.5) / 2 - 0.5, 0.0), 29.0) + 5
            expected = np.array([6 * sx, 8 * sy, 50 + 2 * sx + 3 * sy]) / 255.0
            np.testing.assert_allclose(image[:, i, j].numpy(), expected, atol=1e-4)


def test_grey_alpha_and_16_bit_images_become_rgb_in_unit_range(tmp_path):
    grey = (np.arange(30 * 30).reshape(30, 30) % 256).astype(np.uint8)
    root = tmp_path / "modes"
    root.mkdir()
    Image.fromarray(grey, mode="L").save(root / "a_grey.png")
    Image.fromarray(np.stack([grey, 255 - grey], axis=2), mode="LA").save(root / "b_grey_alpha.png")
    rgb = _gradient(30, 30)
    alpha = np.full((30, 30, 1), 7, dtype=np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), mode="RGBA").save(root / "c_rgba.png")
    rgb16 = (rgb.astype(np.uint16) * 257 + 3).astype(np.uint16)
    cv2.imwrite(str(root / "d_rgb16.png"), rgb16[:, :, ::-1])
    grey16 = (np.arange(30 * 30).reshape(30, 30) * 70).astype(np.uint16)
    cv2.imwrite(str(root / "e_grey16.png"), grey16)
    _save_rgb(root / "f_photo.jpg", rgb)

    ds = ImageFolderDataset(root, size=30, layout="flat")
    grey_expected = torch.from_numpy(grey / 255.0).float().expand(3, 30, 30)
    torch.testing.assert_close(ds[0]["image"], grey_expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(ds[1]["image"], grey_expected, rtol=0, atol=1e-6)
    rgb_expected = torch.from_numpy(rgb / 255.0).permute(2, 0, 1).float()
    torch.testing.assert_close(ds[2]["image"], rgb_expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(ds[3]["image"], torch.from_numpy(rgb16 / 65535.0).permute(2, 0, 1).float(), rtol=0, atol=1e-6)
    grey16_expected = torch.from_numpy(grey16 / 65535.0).float().expand(3, 30, 30)
    torch.testing.assert_close(ds[4]["image"], grey16_expected, rtol=0, atol=1e-6)
    photo = ds[5]["image"]
    assert photo.shape == (3, 30, 30) and photo.dtype == torch.float32
    assert 0.0 <= photo.min() and photo.max() <= 1.0
    assert (photo - rgb_expected).abs().mean() < 0.05  # lossy, but the same picture


# --------------------------------------------------------------------------- segmentation layouts

# labelId -> (trainId, name) for the ids the fixtures use, from cityscapesScripts' table.
CITYSCAPES_FIXTURE_IDS = {0: 255, 7: 0, 9: 255, 11: 2, 23: 10, 26: 13, 33: 18}
CITYSCAPES_EVALUATED = {
    7: "road", 8: "sidewalk", 11: "building", 12: "wall", 13: "fence", 17: "pole", 19: "traffic light",
    20: "traffic sign", 21: "vegetation", 22: "terrain", 23: "sky", 24: "person", 25: "rider", 26: "car",
    27: "truck", 28: "bus", 31: "train", 32: "motorcycle", 33: "bicycle",
}  # fmt: skip


def _cityscapes_label_ids() -> np.ndarray:
    """A 30x40 labelIds map; the centre crop keeps columns 5..34.

    Crop content (900 px): sky rows 0-9 (300), unlabeled rows 10-24 and parking row 25 (480 ignored),
    road rows 26-29 (120) holding 5 building and 3 bicycle pixels. Cars only outside the crop.
    Labelled pixels: 420 -> building 5/420 >= 1 % (but 5/900 < 1 %), bicycle 3/420 < 1 %.
    """
    ids = np.full((30, 40), 7, dtype=np.uint8)
    ids[:, :5] = 26
    ids[:, 35:] = 26
    ids[0:10, 5:35] = 23
    ids[10:25, 5:35] = 0
    ids[25, 5:35] = 9
    ids[27, 10:15] = 11
    ids[28, 10:13] = 33
    return ids


@pytest.fixture
def cityscapes_root(tmp_path: Path) -> Path:
    root = tmp_path / "cityscapes"
    frames = [("train", "zurich", "000001_000019"), ("train", "aachen", "000000_000019"), ("val", "lindau", "000000_000019")]
    for split, city, frame in frames:
        _save_rgb(root / f"leftImg8bit/{split}/{city}/{city}_{frame}_leftImg8bit.png", _gradient(30, 40))
        _save_label(root / f"gtFine/{split}/{city}/{city}_{frame}_gtFine_labelIds.png", _cityscapes_label_ids())
        _save_label(root / f"gtFine/{split}/{city}/{city}_{frame}_gtFine_instanceIds.png", np.zeros((30, 40)))
    return root


def test_cityscapes_layout_pairs_images_with_label_ids(cityscapes_root):
    train = SegmentationFolderDataset(cityscapes_root, size=30, split="train", layout="cityscapes")
    assert _relative(train, "images") == [
        "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png",
        "leftImg8bit/train/zurich/zurich_000001_000019_leftImg8bit.png",
    ]
    assert _relative(train, "label_files") == [
        "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png",
        "gtFine/train/zurich/zurich_000001_000019_gtFine_labelIds.png",
    ]
    assert len(SegmentationFolderDataset(cityscapes_root, size=30, split="val", layout="cityscapes")) == 1
    assert train.num_classes == 19 and len(train.class_names) == 19
    item = train[0]
    assert set(item) == {"image", "labels", "present"}
    assert item["image"].shape == (3, 30, 30) and item["image"].dtype == torch.float32
    assert item["labels"].shape == (30, 30) and item["labels"].dtype == torch.long
    assert item["present"].shape == (19,) and item["present"].dtype == torch.float32


def test_cityscapes_label_ids_map_to_train_ids_after_the_same_crop(cityscapes_root):
    ds = SegmentationFolderDataset(cityscapes_root, size=30, split="train", layout="cityscapes")
    raw = _cityscapes_label_ids()
    expected = np.zeros((30, 30), dtype=np.int64)
    for y in range(30):
        for x in range(30):
            expected[y, x] = CITYSCAPES_FIXTURE_IDS[int(raw[y, x + 5])]
    item = ds[1]
    np.testing.assert_array_equal(item["labels"].numpy(), expected)
    assert 13 not in expected  # the cars lie outside the crop
    image_expected = torch.from_numpy(_gradient(30, 40)[:, 5:35] / 255.0).permute(2, 0, 1).float()
    torch.testing.assert_close(item["image"], image_expected, rtol=0, atol=1e-6)


def test_cityscapes_presence_excludes_ignored_pixels(cityscapes_root):
    item = SegmentationFolderDataset(cityscapes_root, size=30, split="train", layout="cityscapes")[0]
    present_expected = torch.zeros(19)
    present_expected[[0, 2, 10]] = 1.0  # road, building (5/420 labelled pixels), sky; bicycle 3/420 is too small
    torch.testing.assert_close(item["present"], present_expected)
    # plain-loop reference of the rule
    labels = item["labels"].numpy()
    counts = {k: 0 for k in range(19)}
    for v in labels.ravel():
        if v != 255:
            counts[int(v)] += 1
    total = sum(counts.values())
    loop = torch.tensor([1.0 if counts[k] > 0 and counts[k] >= 0.01 * total else 0.0 for k in range(19)])
    torch.testing.assert_close(item["present"], loop)


def test_label_maps_resize_with_centre_aligned_nearest(cityscapes_root):
    item = SegmentationFolderDataset(cityscapes_root, size=15, split="train", layout="cityscapes")[0]
    raw = _cityscapes_label_ids()[:, 5:35]
    expected = np.array([[CITYSCAPES_FIXTURE_IDS[int(raw[2 * i + 1, 2 * j + 1])] for j in range(15)] for i in range(15)])
    np.testing.assert_array_equal(item["labels"].numpy(), expected)
    assert item["image"].shape == (3, 15, 15)


def test_cityscapes_full_label_table(tmp_path):
    root = tmp_path / "cs"
    ids = np.arange(34, dtype=np.uint8)[None, :].repeat(34, axis=0)  # (34, 34): column x holds id x
    _save_rgb(root / "leftImg8bit/val/bonn/bonn_000000_000000_leftImg8bit.png", _gradient(34, 34))
    _save_label(root / "gtFine/val/bonn/bonn_000000_000000_gtFine_labelIds.png", ids)
    ds = SegmentationFolderDataset(root, size=34, split="val", layout="cityscapes")
    row = ds[0]["labels"][0].tolist()
    for label_id, train_id in enumerate(row):
        if label_id in CITYSCAPES_EVALUATED:
            assert ds.class_names[train_id] == CITYSCAPES_EVALUATED[label_id]
        else:
            assert train_id == 255, label_id
    assert sorted(t for t in row if t != 255) == list(range(19))
    assert tuple(ds.class_names) == CITYSCAPES_CLASS_NAMES


@pytest.fixture
def ade_root(tmp_path: Path) -> Path:
    base = tmp_path / "ade" / "ADEChallengeData2016"
    ids = np.zeros((30, 40), dtype=np.uint8)
    ids[:, 10:20] = 1  # wall
    ids[:, 20:30] = 150  # flag
    ids[5, 12] = 3  # sky, one pixel
    stems = [("training", "ADE_train_00000002"), ("training", "ADE_train_00000001"), ("validation", "ADE_val_00000001")]
    for split, stem in stems:
        _save_rgb(base / f"images/{split}/{stem}.jpg", _gradient(30, 40))
        _save_label(base / f"annotations/{split}/{stem}.png", ids)
    return tmp_path / "ade"


def test_ade20k_layout_and_label_shift(ade_root):
    for root in (ade_root, ade_root / "ADEChallengeData2016"):
        train = SegmentationFolderDataset(root, size=30, split="train", layout="ade20k")
        assert [f.name for f in train.images] == ["ADE_train_00000001.jpg", "ADE_train_00000002.jpg"]
        assert [f.name for f in train.label_files] == ["ADE_train_00000001.png", "ADE_train_00000002.png"]
    val = SegmentationFolderDataset(ade_root, size=30, split="val", layout="ade20k")
    assert [f.name for f in val.images] == ["ADE_val_00000001.jpg"]
    assert val.num_classes == 150 and len(val.class_names) == 150
    assert val.class_names[0] == "wall" and val.class_names[2] == "sky" and val.class_names[149] == "flag"
    labels = val[0]["labels"].numpy()  # crop keeps columns 5..34
    expected = np.full((30, 30), 255)
    expected[:, 5:15] = 0
    expected[:, 15:25] = 149
    expected[5, 7] = 2
    np.testing.assert_array_equal(labels, expected)
    present = val[0]["present"]
    assert present.shape == (150,)
    assert present.nonzero().ravel().tolist() == [0, 149]  # sky is 1 of 600 labelled pixels
    assert len(set(ADE20K_CLASS_NAMES)) == 150


def test_presence_ignoring_all_ignored_and_small_classes():
    labels = torch.full((10, 10), 255, dtype=torch.long)
    torch.testing.assert_close(presence_ignoring(labels, 4), torch.zeros(4))
    labels[0, :] = 1
    labels[1, 0] = 3
    torch.testing.assert_close(presence_ignoring(labels, 4, fraction=0.1), torch.tensor([0.0, 1.0, 0.0, 0.0]))
    torch.testing.assert_close(presence_ignoring(labels, 4, fraction=0.09), torch.tensor([0.0, 1.0, 0.0, 1.0]))


# --------------------------------------------------------------------------- factory


def test_open_dataset_returns_the_right_kind(places_root, cityscapes_root, ade_root):
    scenes = open_dataset("scenes", None, size=32, split="val", length=3)
    assert isinstance(scenes, ScenesDataset) and len(scenes) == 3 and scenes.split == "val"
    assert scenes[0]["image"].shape == (3, 32, 32)
    places = open_dataset("places2", places_root, size=16, split="train")
    assert isinstance(places, ImageFolderDataset) and len(places) == 4
    cs = open_dataset("cityscapes", str(cityscapes_root), size=16, split="train")
    assert isinstance(cs, SegmentationFolderDataset) and cs.layout == "cityscapes" and cs[0]["labels"].shape == (16, 16)
    assert open_dataset("ade20k", ade_root, size=16, split="val").num_classes == 150
    with pytest.raises(FolderDatasetError) as err:
        open_dataset("imagenet", places_root, size=16, split="train")
    _one_line_error(err, "'imagenet'", "scenes", "places2", "cityscapes", "ade20k")
    with pytest.raises(FolderDatasetError) as err:
        open_dataset("paris", None, size=16, split="train")
    _one_line_error(err, "'paris'", "data root")


# --------------------------------------------------------------------------- errors


def test_error_root_missing_or_not_a_directory(tmp_path):
    with pytest.raises(FolderDatasetError) as err:
        ImageFolderDataset(tmp_path / "nowhere", layout="paris")
    _one_line_error(err, "does not exist", str(tmp_path / "nowhere"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(FolderDatasetError) as err:
        SegmentationFolderDataset(tmp_path / "file.txt", layout="cityscapes")
    _one_line_error(err, "is not a directory", "file.txt")


def test_error_no_images_names_pattern_and_layouts(tmp_path):
    root = tmp_path / "wrong"
    _save_rgb(root / "paris_train_original/x.JPG", _gradient(30, 40))
    with pytest.raises(FolderDatasetError) as err:
        ImageFolderDataset(root, layout="places2", split="train")
    _one_line_error(
        err, str(root), "'places2'", "'train'", "data_256/**/*", "paris_train_original", "celeba-hq, paris, flat"
    )
    with pytest.raises(FolderDatasetError) as err:
        SegmentationFolderDataset(root, layout="cityscapes", split="val")
    _one_line_error(err, str(root), "leftImg8bit/val/<city>/*_leftImg8bit.png", "cityscapes, ade20k")
    with pytest.raises(FolderDatasetError) as err:
        SegmentationFolderDataset(root, layout="ade20k", split="train")
    _one_line_error(err, "images/training/*.jpg")


def test_error_corrupt_image_names_file_at_getitem(tmp_path):
    root = tmp_path / "broken"
    _save_rgb(root / "a_good.png", _gradient(30, 40))
    (root / "b_garbage.jpg").write_bytes(b"this is not a jpeg" * 20)
    good = root / "a_good.png"
    (root / "c_truncated.png").write_bytes(good.read_bytes()[:60])
    (root / "d_empty.png").write_bytes(b"")
    ds = ImageFolderDataset(root, size=16, layout="flat")
    assert len(ds) == 4 and ds[0]["image"].shape == (3, 16, 16)
    for index, name in [(1, "b_garbage.jpg"), (2, "c_truncated.png"), (3, "d_empty.png")]:
        with pytest.raises(FolderDatasetError) as err:
            ds[index]
        _one_line_error(err, "cannot decode image", name)
    with pytest.raises(IndexError):
        ds[4]


def test_error_image_without_label_names_both(cityscapes_root):
    label = cityscapes_root / "gtFine/train/zurich/zurich_000001_000019_gtFine_labelIds.png"
    label.unlink()
    with pytest.raises(FolderDatasetError) as err:
        SegmentationFolderDataset(cityscapes_root, split="train", layout="cityscapes")
    _one_line_error(err, "zurich_000001_000019_leftImg8bit.png", str(label))


def test_error_label_size_differs_from_image(cityscapes_root):
    label = cityscapes_root / "gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png"
    _save_label(label, np.full((20, 40), 7))
    ds = SegmentationFolderDataset(cityscapes_root, size=16, split="val", layout="cityscapes")
    with pytest.raises(FolderDatasetError) as err:
        ds[0]
    _one_line_error(err, str(label), "40x20", "40x30", "lindau_000000_000019_leftImg8bit.png")


@pytest.mark.parametrize("bad_id", [34, 40, 255])
def test_error_cityscapes_id_outside_table(cityscapes_root, bad_id):
    ids = _cityscapes_label_ids()
    ids[3, 3] = bad_id
    label = _save_label(cityscapes_root / "gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png", ids)
    ds = SegmentationFolderDataset(cityscapes_root, size=16, split="val", layout="cityscapes")
    with pytest.raises(FolderDatasetError) as err:
        ds[0]
    _one_line_error(err, str(label), f"id(s) {bad_id} ", "0..33")


def test_error_ade20k_value_above_150_and_multichannel_label(ade_root):
    base = ade_root / "ADEChallengeData2016"
    label = _save_label(base / "annotations/validation/ADE_val_00000001.png", np.full((30, 40), 151))
    ds = SegmentationFolderDataset(ade_root, size=16, split="val", layout="ade20k")
    with pytest.raises(FolderDatasetError) as err:
        ds[0]
    _one_line_error(err, str(label), "151", "0..150")
    _save_rgb(label, _gradient(30, 40))
    with pytest.raises(FolderDatasetError) as err:
        ds[0]
    _one_line_error(err, str(label), "one channel")


def test_error_unknown_layout_split_or_size(places_root, cityscapes_root):
    with pytest.raises(FolderDatasetError) as err:
        ImageFolderDataset(places_root, layout="imagenet")
    _one_line_error(err, "'imagenet'", "places2, celeba-hq, paris, flat", str(places_root))
    with pytest.raises(FolderDatasetError) as err:
        ImageFolderDataset(places_root, layout="places2", split="training")
    _one_line_error(err, "'training'", "train, val, test")
    with pytest.raises(FolderDatasetError) as err:
        SegmentationFolderDataset(cityscapes_root, layout="places2")
    _one_line_error(err, "'places2'", "cityscapes, ade20k")
    with pytest.raises(FolderDatasetError) as err:
        SegmentationFolderDataset(cityscapes_root, layout="ade20k", split="test")
    _one_line_error(err, "'test'", "train, val")
    with pytest.raises(FolderDatasetError) as err:
        ImageFolderDataset(places_root, size=0)
    _one_line_error(err, "size", "0")
    assert issubclass(FolderDatasetError, ValueError)
