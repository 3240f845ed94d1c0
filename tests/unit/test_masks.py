import numpy as np
import pytest
import torch

from inpaintlib.masks import (
    BUCKET_NAMES,
    DEFAULT_EVAL_MASKS,
    boundary_crossing_mask,
    bucket_of,
    check_mask,
    free_form_mask,
    hole_ratio,
    load_eval_masks,
    make_eval_masks,
    rectangle_mask,
    resize_masks,
)


def test_free_form_is_binary_reproducible_and_nonempty():
    a = free_form_mask(np.random.default_rng(1), 64)
    b = free_form_mask(np.random.default_rng(1), 64)
    assert a.shape == (64, 64) and a.dtype == np.float32
    assert set(np.unique(a)) <= {0.0, 1.0} and a.sum() > 0
    assert np.array_equal(a, b)


def test_rectangle_is_one_box():
    m = rectangle_mask(np.random.default_rng(0), 50, 0.2, 0.4)
    ys, xs = np.nonzero(m)
    box = m[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    assert box.all() and m.sum() == box.size
    assert 10 <= box.shape[0] <= 20 and 10 <= box.shape[1] <= 20


def test_boundary_crossing_covers_two_classes():
    labels = np.zeros((64, 64), dtype=np.int64)
    labels[:, 40:] = 3
    rng = np.random.default_rng(0)
    for _ in range(10):
        hole = boundary_crossing_mask(rng, labels)
        assert set(np.unique(labels[hole > 0])) == {0, 3}


def test_boundary_crossing_single_class_falls_back_to_a_box():
    hole = boundary_crossing_mask(np.random.default_rng(0), np.zeros((32, 32), dtype=np.int64))
    assert 0 < hole.mean() < 1


def test_bucket_edges():
    got = bucket_of(torch.tensor([0.0, 0.0999, 0.1, 0.35, 0.5999, 0.6, 0.9])).tolist()
    assert got == [0, 0, 1, 3, 5, -1, -1]
    assert len(BUCKET_NAMES) == 6 and BUCKET_NAMES[0] == "0-10%"


def test_resize_keeps_masks_binary_and_ratio_close():
    m = load_eval_masks().masks[::50]
    small = resize_masks(m, 64)
    assert small.shape[-1] == 64 and set(small.unique().tolist()) <= {0.0, 1.0}
    assert (hole_ratio(small) - hole_ratio(m)).abs().max() < 0.05


def test_committed_eval_masks_match_the_script():
    """data/eval_masks_256.npz is what scripts/make_eval_masks.py draws (100 per bucket, seed 2024)."""
    committed = load_eval_masks(DEFAULT_EVAL_MASKS)
    fresh = make_eval_masks(100, seed=2024)
    assert torch.equal(committed.masks, fresh.masks) and torch.equal(committed.bucket, fresh.bucket)
    assert committed.kind == fresh.kind
    assert (bucket_of(hole_ratio(committed.masks)) == committed.bucket).all()


def test_take_picks_first_per_bucket():
    masks = load_eval_masks().take(3)
    assert masks.bucket.tolist() == [b for b in range(6) for _ in range(3)]


def test_missing_eval_file_has_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="make_eval_masks"):
        load_eval_masks(tmp_path / "nope.npz")


@pytest.mark.parametrize(
    "mask, message",
    [
        (torch.zeros(2, 64, 64), r"\(B, 1, H, W\)"),
        (torch.zeros(2, 3, 64, 64), r"\(B, 1, H, W\)"),
        (torch.zeros(2, 1, 64, 64, dtype=torch.long), "float"),
        (torch.full((2, 1, 64, 64), 0.5), "exactly 0"),
        (torch.zeros(2, 1, 32, 32), "does not match"),
        (np.zeros((2, 1, 64, 64)), "torch.Tensor"),
    ],
)
def test_check_mask_rejects_bad_masks(mask, message):
    with pytest.raises(ValueError, match=message):
        check_mask(mask, torch.zeros(2, 3, 64, 64))


@pytest.mark.parametrize("per_bucket", [2, 20, 50, 100])
def test_every_bucket_mixes_free_form_and_boxes_equally(per_bucket):
    """Hole size is not confounded with hole shape: each bucket's first k masks are half strokes, half boxes."""
    masks = load_eval_masks().take(per_bucket)
    for b in range(6):
        kinds = [k for k, bucket in zip(masks.kind, masks.bucket.tolist()) if bucket == b]
        assert abs(kinds.count("free_form") - kinds.count("rectangle")) <= 1, (b, kinds)
