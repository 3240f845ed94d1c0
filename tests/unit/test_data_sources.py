"""A reader's folder as training data and benchmark (inpaintlib.data.sources), the bundled photographs
(inpaintlib.data.photos) and ``Benchmark.from_images``, on tiny trees the tests write in each layout."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inpaintlib.config import ConfigError, load_config, validate_parameters
from inpaintlib.data.folders import IGNORE_INDEX, FolderDatasetError
from inpaintlib.data.photos import BUNDLED_PHOTOS, photo_crops, photo_table
from inpaintlib.data.sources import (
    detect_layout, folder_batches, folder_benchmark, load_images, open_data_root, spread_indices,
)
from inpaintlib.evaluate import Benchmark
from inpaintlib.experiment import Arm, Experiment, train_arm
from inpaintlib.masks import BUCKET_NAMES, load_eval_masks


def _photo(path: Path, value: int, size: tuple[int, int] = (20, 24)) -> Path:
    """A flat-colour RGB photo whose red channel is ``value`` (so a loaded image tells which file it was)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.zeros((*size, 3), np.uint8)
    rgb[..., 0], rgb[..., 1] = value, 40
    Image.fromarray(rgb).save(path)
    return path


def _label(path: Path, value: int, size: tuple[int, int] = (20, 24)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, np.uint8)).save(path)


def _tree(root: Path, layout: str) -> tuple[list[str], list[str]]:
    """Write a tiny tree of ``layout``; returns the expected (train, held-out) file names, in sorted order."""
    if layout == "places2":
        train = [_photo(root / "data_256/a/abbey" / f"{i:08d}.jpg", 10 * i) for i in range(3)]
        test = [_photo(root / "test_256" / f"t{i}.jpg", 200 + i) for i in range(2)]
        _photo(root / "val_256/v0.jpg", 150)
    elif layout == "celeba-hq":
        train = [_photo(root / "train/female" / f"{i}.jpg", 10 * i) for i in range(3)]
        test = [_photo(root / "val/male" / f"{i}.jpg", 200 + i) for i in range(2)]
    elif layout == "paris":
        train = [_photo(root / "paris_train_original" / f"{i}.JPG", 10 * i) for i in range(3)]
        test = [_photo(root / "paris_eval/paris_eval_gt" / f"{i}.png", 200 + i) for i in range(2)]
    elif layout == "cityscapes":
        train, test = [], []
        for split, names in (("train", train), ("val", test)):
            for i in range(2):
                stem = f"aachen_{split}_{i:06d}"
                names.append(_photo(root / "leftImg8bit" / split / "aachen" / f"{stem}_leftImg8bit.png", 10 * i))
                _label(root / "gtFine" / split / "aachen" / f"{stem}_gtFine_labelIds.png", 7)
    elif layout == "ade20k":
        base = root / "ADEChallengeData2016"
        train, test = [], []
        for split, names in (("training", train), ("validation", test)):
            for i in range(2):
                names.append(_photo(base / "images" / split / f"ADE_{split}_{i}.jpg", 10 * i))
                _label(base / "annotations" / split / f"ADE_{split}_{i}.png", 3)
    else:  # flat: 7 photos in two folders, every 5th held out
        files = [_photo(root / ("a" if i < 4 else "b") / f"{i}.png", 10 * i) for i in range(7)]
        train, test = files[:4] + files[5:], files[4:5]
    return [f.name for f in train], [f.name for f in test]


LAYOUTS = ("places2", "celeba-hq", "paris", "cityscapes", "ade20k", "flat")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_is_detected_and_split_into_disjoint_train_and_held_out_files(tmp_path, layout):
    train, test = _tree(tmp_path, layout)
    assert detect_layout(tmp_path) == layout
    data = open_data_root(tmp_path)
    assert [f.name for f in data.train] == train and [f.name for f in data.test] == test
    assert not set(data.train) & set(data.test)
    record = data.record()
    assert record["name"] == layout and record["train_images"] == len(train) and record["test_images"] == len(test)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_trains_and_evaluates_through_an_experiment(tmp_path, layout):
    _tree(tmp_path / "data", layout)
    experiment = Experiment((Arm("unet", "inpaintlib.models.unet:UNetMethod", {"channels": [4, 8]}),), (0,), 2, 2, 16, 8,
                            1, str(tmp_path / "ck"), curve_points=1, data_root=str(tmp_path / "data"))
    held_out = experiment.benchmark()
    assert held_out.images.shape == (len(BUCKET_NAMES), 3, 16, 16)
    assert (held_out.labels == IGNORE_INDEX).all()
    run = train_arm(experiment, "unet", 0)
    assert run.budget["images_seen"] == 4 and len(run.per_image["psnr_hole"]) == len(BUCKET_NAMES)


def test_flat_folders_hold_out_every_fifth_image_or_the_last_of_fewer(tmp_path):
    for i in range(12):
        _photo(tmp_path / "many" / f"{i:02d}.png", i)
    data = open_data_root(tmp_path / "many")
    assert [f.stem for f in data.test] == ["04", "09"] and len(data.train) == 10
    for i in range(3):
        _photo(tmp_path / "few" / f"{i}.png", i)
    few = open_data_root(tmp_path / "few")
    assert [f.stem for f in few.test] == ["2"] and few.held_out == "the last image in sorted order"


def test_a_folder_that_is_missing_empty_or_too_small_fails_in_one_line(tmp_path):
    with pytest.raises(FolderDatasetError, match="does not exist"):
        open_data_root(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FolderDatasetError, match="holds no images"):
        open_data_root(tmp_path / "empty")
    _photo(tmp_path / "one" / "only.png", 1)
    with pytest.raises(FolderDatasetError, match="at least 2") as err:
        open_data_root(tmp_path / "one")
    assert "\n" not in str(err.value)


def test_the_fingerprint_changes_with_the_files_not_with_the_path_spelling(tmp_path):
    _tree(tmp_path / "d", "flat")
    before = open_data_root(tmp_path / "d").fingerprint()
    assert open_data_root(str(tmp_path / "d" / ".." / "d")).fingerprint() == before
    _photo(tmp_path / "d" / "b" / "9.png", 90)
    assert open_data_root(tmp_path / "d").fingerprint() != before


def test_batches_draw_only_training_images_and_carry_no_labels(tmp_path):
    _tree(tmp_path, "flat")
    data = open_data_root(tmp_path)
    batches = folder_batches(data, 8, train_images=100, batch_size=16, seed=3)
    assert len(batches.images) == len(data.train)  # fewer files than asked: each once
    reds = {round(float(v) * 255) for v in batches.images[:, 0, 0, 0]}
    assert reds == {0, 10, 20, 30, 50, 60} and 40 not in reds  # file 4 (red 40) is held out
    batch = batches(0)
    assert batch["image"].shape == (16, 3, 8, 8) and (batch["labels"] == IGNORE_INDEX).all()
    assert torch.equal(batch["image"], batches(0)["image"])  # a pure function of the step


def test_spread_indices_are_distinct_sorted_and_cover_both_ends():
    assert spread_indices(10, 4) == [0, 3, 6, 9]
    assert spread_indices(3, 10) == [0, 1, 2]
    assert spread_indices(1000, 1) == [0]


def test_benchmark_from_images_pairs_each_committed_mask_with_an_image_in_turn():
    images = torch.rand(4, 3, 16, 16)
    bench = Benchmark.from_images(images, 2, "toy")
    masks = load_eval_masks().take(2)
    assert len(bench) == 2 * len(BUCKET_NAMES) and torch.equal(bench.bucket, masks.bucket)
    assert torch.equal(bench.masks, masks.at_size(16))
    assert all(torch.equal(bench.images[i], images[i % 4]) for i in range(len(bench)))
    assert bench.name == "toy-16"


def test_folder_benchmark_uses_only_held_out_images(tmp_path):
    _tree(tmp_path, "places2")
    bench = folder_benchmark(open_data_root(tmp_path), 8, 1)
    reds = [float(v) * 255 for v in bench.images[:, 0, 0, 0]]
    assert all(195 < r < 206 for r in reds)  # the test_256 photos (red 200, 201 before JPEG), not train (<= 20) or val (150)


def test_load_images_reads_centre_squares_at_the_size(tmp_path):
    files = [_photo(tmp_path / "a.png", 77, (30, 50))]
    images = load_images(files, 12)
    assert images.shape == (1, 3, 12, 12) and abs(float(images[0, 0].mean()) - 77 / 255) < 1e-6


def test_bundled_photographs_load_as_colour_and_state_their_terms():
    assert len(BUNDLED_PHOTOS) >= 8
    for photo in BUNDLED_PHOTOS:
        pixels = photo.pixels()
        assert pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.float32
        assert 0.0 <= pixels.min() and pixels.max() <= 1.0 and min(pixels.shape[:2]) >= 256
        assert float(pixels.std(axis=2).mean()) > 0.01, f"{photo.name} is not a colour photograph"
    assert all(row["terms"] and row["source"] for row in photo_table())


def test_photo_crops_are_deterministic_cycle_the_photos_and_differ_with_the_seed():
    crops, names = photo_crops(16, 10)
    again, _ = photo_crops(16, 10)
    assert crops.shape == (10, 3, 16, 16) and torch.equal(crops, again)
    assert names[: len(BUNDLED_PHOTOS)] == [p.name for p in BUNDLED_PHOTOS]
    other, _ = photo_crops(16, 10, seed=1)
    assert not torch.equal(crops, other)
    assert Benchmark.photos(16, 1).images.shape == (len(BUCKET_NAMES), 3, 16, 16)


def test_data_root_is_checked_before_any_work_and_recorded(tmp_path):
    _tree(tmp_path / "d", "flat")
    cfg = load_config("01_unet_baseline", "smoke", data_root=str(tmp_path / "d"), run_dir=str(tmp_path / "r"))
    assert cfg.data["name"] == "flat" and cfg.data["test_images"] == 1
    assert load_config("01_unet_baseline", "smoke", run_dir=str(tmp_path / "r2")).data == {"name": "scenes"}
    with pytest.raises(ConfigError, match="'data_root': data root .* does not exist"):
        validate_parameters("02_contextual_attention", "smoke", {"data_root": str(tmp_path / "nope")})
    for chapter in ("00_data_and_masks", "04_sge_net", "05_coherence_priors", "06_saca", "07_spl"):
        with pytest.raises(ConfigError, match=f"not available in {chapter}"):
            validate_parameters(chapter, "smoke", {"data_root": str(tmp_path / "d")})


def test_an_experiment_on_a_folder_refuses_what_needs_scenes_labels(tmp_path):
    _tree(tmp_path, "flat")
    arm = Arm("unet", "inpaintlib.models.unet:UNetMethod", {"channels": [4, 8]})
    with pytest.raises(ValueError, match="boundary_fraction.*Scenes labels"):
        Experiment((arm,), (0,), 2, 2, 16, 8, 1, str(tmp_path / "ck"), boundary_fraction=0.5, data_root=str(tmp_path))
    with pytest.raises(ValueError, match="segmenter_steps"):
        Experiment((arm,), (0,), 2, 2, 16, 8, 1, str(tmp_path / "ck"), segmenter_steps=5, data_root=str(tmp_path))


def test_the_photo_folder_script_keeps_test_photographs_out_of_training(tmp_path):
    import runpy

    script = runpy.run_path(str(Path(__file__).resolve().parents[2] / "scripts" / "make_photo_folder.py"))
    counts = script["write_photo_folder"](tmp_path / "pf", size=12, per_photo=2, test=("coffee",))
    assert counts == {"train": 2 * (len(BUNDLED_PHOTOS) - 1), "test": 2}
    data = open_data_root(tmp_path / "pf")
    assert data.layout == "celeba-hq" and data.held_out == "the layout's test split"
    assert {f.name.rsplit("_", 1)[0] for f in data.test} == {"coffee"}
    assert "coffee" not in {f.name.rsplit("_", 1)[0] for f in data.train}
    assert load_images(data.test, 12).shape == (2, 3, 12, 12)
    with pytest.raises(ValueError, match="unknown photo"):
        script["write_photo_folder"](tmp_path / "bad", test=("lena",))
