import numpy as np
import pytest
import torch

from inpaintlib.data.scenes import (
    CLASS_NAMES,
    NUM_CLASSES,
    PRESENCE_FRACTION,
    ScenesDataset,
    presence,
    render_scene,
    scene_rng,
)


def test_same_seed_same_scene_and_different_index_differs():
    a, b = ScenesDataset(3, 48, seed=5)[1], ScenesDataset(3, 48, seed=5)[1]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["labels"], b["labels"])
    assert not torch.equal(a["image"], ScenesDataset(3, 48, seed=5)[2]["image"])
    assert not torch.equal(a["image"], ScenesDataset(3, 48, seed=6)[1]["image"])
    assert not torch.equal(a["image"], ScenesDataset(3, 48, seed=5, split="test")[1]["image"])


@pytest.mark.parametrize("size", [16, 37, 64, 128])
def test_any_size_gives_valid_items(size):
    item = ScenesDataset(2, size)[0]
    assert item["image"].shape == (3, size, size) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert item["labels"].shape == (size, size) and item["labels"].dtype == torch.long
    assert 0 <= item["labels"].min() and item["labels"].max() < NUM_CLASSES


def test_layout_is_resolution_independent():
    """The same scene drawn at 64 and 128 px has (almost) the same label map."""
    _, small = render_scene(scene_rng(0, "train", 3), 64)
    _, big = render_scene(scene_rng(0, "train", 3), 128)
    agree = (big[::2, ::2] == small).mean()
    assert agree > 0.9


def test_all_classes_occur_and_sky_is_on_top():
    data = ScenesDataset(60, 48).materialize()
    counts = torch.bincount(data["labels"].flatten(), minlength=NUM_CLASSES)
    assert len(CLASS_NAMES) >= 6 and (counts > 0).all()
    assert (data["labels"][:, 0, :] == 0).float().mean() > 0.8  # the top row is mostly sky


def test_classes_have_distinct_colour_statistics():
    """Mean colours of any two classes differ clearly, so colour alone says a lot about the class."""
    data = ScenesDataset(40, 48).materialize()
    img = data["image"].permute(1, 0, 2, 3)
    means = torch.stack([img[:, data["labels"] == k].mean(1) for k in range(NUM_CLASSES)])
    dist = torch.cdist(means, means) + torch.eye(NUM_CLASSES)
    assert dist.min() > 0.05


def test_presence_matches_pixel_counts():
    item = ScenesDataset(5, 64)[4]
    counts = np.bincount(item["labels"].numpy().ravel(), minlength=NUM_CLASSES)
    expected = (counts >= PRESENCE_FRACTION * counts.sum()).astype(np.float32)
    assert np.array_equal(item["present"].numpy(), expected)
    assert presence(torch.zeros(4, 4, dtype=torch.long)).tolist() == [1.0] + [0.0] * (NUM_CLASSES - 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"length": 0}, "length"), ({"length": 2, "size": 8}, "size"), ({"length": 2, "split": "dev"}, "split")],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScenesDataset(**kwargs)


def test_index_out_of_range():
    with pytest.raises(IndexError):
        ScenesDataset(2, 32)[2]
