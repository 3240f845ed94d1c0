"""LBP map of the LBP paper: vectorised codes vs a per-pixel loop, hand-computed codes, gray conversion vs cv2."""

import cv2
import numpy as np
import pytest
import torch

from benchmarks.lbp_reference import lbp_codes_loop
from inpaintlib.lbp import (
    LBP_NEIGHBOUR_WEIGHTS,
    lbp_target,
    lbp_target_to_codes,
    local_binary_pattern,
    rgb_to_gray_uint8_like,
)


def _codes(gray_2d: np.ndarray, border: str = "official") -> np.ndarray:
    """local_binary_pattern on one (H, W) uint8 array -> (H, W) int64 array."""
    return local_binary_pattern(torch.from_numpy(gray_2d)[None, None], border=border)[0, 0].numpy()


@pytest.mark.parametrize("border", ["official", "zero"])
@pytest.mark.parametrize("shape", [(8, 8), (13, 17), (256, 256), (1, 5), (4, 1)])
def test_codes_match_per_pixel_loop(shape, border):
    rng = np.random.default_rng(sum(shape))
    gray = rng.integers(0, 256, size=shape, dtype=np.uint8)
    np.testing.assert_array_equal(_codes(gray, border), lbp_codes_loop(gray, border))


def test_codes_match_loop_on_flat_regions_with_ties():
    # few gray levels -> many neighbour == centre ties (bit 1 for >=)
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 3, size=(2, 1, 11, 9)).astype(np.uint8)
    codes = local_binary_pattern(torch.from_numpy(gray)).numpy()
    for b in range(2):
        np.testing.assert_array_equal(codes[b, 0], lbp_codes_loop(gray[b, 0]))


def test_float_uint8_and_long_inputs_agree():
    rng = np.random.default_rng(4)
    gray = torch.from_numpy(rng.integers(0, 256, size=(2, 1, 9, 10), dtype=np.uint8))
    expected = local_binary_pattern(gray)
    assert expected.dtype == torch.long and expected.shape == (2, 1, 9, 10)
    assert torch.equal(local_binary_pattern(gray.float()), expected)
    assert torch.equal(local_binary_pattern(gray.long()), expected)


def test_hand_computed_centre_code():
    gray = np.array([[10, 50, 30], [60, 40, 20], [40, 39, 41]], dtype=np.uint8)
    # centre 40: top-right 30 <, right 20 <, bottom-right 41 >= (4), bottom 39 <, bottom-left 40 >= (16),
    # left 60 >= (32), top-left 10 <, top 50 >= (128)
    assert _codes(gray)[1, 1] == 4 + 16 + 32 + 128
    assert _codes(gray, "zero")[1, 1] == 4 + 16 + 32 + 128


def test_each_neighbour_has_its_spec_weight():
    for row_offset, col_offset, weight in LBP_NEIGHBOUR_WEIGHTS:
        gray = np.full((3, 3), 10, dtype=np.uint8)
        gray[1, 1] = 100
        gray[1 + row_offset, 1 + col_offset] = 200
        assert _codes(gray)[1, 1] == weight
    spec_table = {(-1, 1): 1, (0, 1): 2, (1, 1): 4, (1, 0): 8, (1, -1): 16, (0, -1): 32, (-1, -1): 64, (-1, 0): 128}
    assert {(dr, dc): w for dr, dc, w in LBP_NEIGHBOUR_WEIGHTS} == spec_table


def test_official_border_hand_computed():
    gray = np.array([[50, 10, 60], [70, 20, 80], [40, 90, 30]], dtype=np.uint8)
    # (0,0) = 50; wrapped: (-1,1)->(2,1)=90 >= (1), (-1,-1)->(2,2)=30 <, (-1,0)->(2,0)=40 <, (0,-1)->(0,2)=60 >= (32),
    # (1,-1)->(1,2)=80 >= (16); inside: (0,1)=10 <, (1,1)=20 <, (1,0)=70 >= (8)
    assert _codes(gray)[0, 0] == 1 + 32 + 16 + 8
    # (2,2) = 30; only (1,1)=20 < (64), (1,2)=80 >= (128), (2,1)=90 >= (32) exist; (1,3), (3,*), (*,3) give 0
    assert _codes(gray)[2, 2] == 128 + 32
    # (0,2) = 60; (-1,3) is out (col 3) -> 0; (-1,2)->(2,2)=30 <; (-1,1)->(2,1)=90 >= (64); (0,1)=10 <;
    # (1,1)=20 <; (1,2)=80 >= (8); (0,3),(1,3) out
    assert _codes(gray)[0, 2] == 64 + 8
    # zero border at (0,0): outside neighbours are 0 < 50; inside (1,0)=70 >= (8)
    assert _codes(gray, "zero")[0, 0] == 8


def test_constant_image_codes():
    gray = np.full((5, 6), 7, dtype=np.uint8)
    codes = _codes(gray)
    assert (codes[:-1, :-1] == 255).all()  # all neighbours exist or wrap (-1)
    assert codes[-1, -1] == 64 + 128 + 32  # only top-left, top, left exist
    assert (codes[-1, :-1] == 1 + 2 + 32 + 64 + 128).all()  # bottom row loses the three bottom bits
    assert (codes[:-1, -1] == 8 + 16 + 32 + 64 + 128).all()  # right column loses the three right bits
    zero_codes = _codes(gray, "zero")
    assert zero_codes[0, 0] == 2 + 4 + 8 and zero_codes[2, 3] == 255
    black = _codes(np.zeros((4, 4), dtype=np.uint8), "zero")
    assert (black == 255).all()  # outside level 0 >= centre 0


def test_zero_and_official_borders_differ_only_on_the_border():
    rng = np.random.default_rng(5)
    gray = rng.integers(0, 256, size=(40, 33), dtype=np.uint8)
    official, zero = _codes(gray), _codes(gray, "zero")
    np.testing.assert_array_equal(official[1:-1, 1:-1], zero[1:-1, 1:-1])
    differs = official != zero
    assert differs.any()
    assert differs[0].any() and differs[:, 0].any()  # top row / left column: wrapped neighbours vs level 0
    # bottom row / right column: the official rule gives bit 0 outside, zero padding too unless the centre is 0
    bottom, right = (slice(-1, None), slice(1, -1)), (slice(1, -1), slice(-1, None))
    for edge in (bottom, right):
        non_black = gray[edge] > 0
        np.testing.assert_array_equal(official[edge][non_black], zero[edge][non_black])


def test_gray_matches_cv2_on_random_uint8_images():
    rng = np.random.default_rng(6)
    rgb = rng.integers(0, 256, size=(3, 37, 41, 3), dtype=np.uint8)
    image = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255  # (B,3,H,W) in [0,1]
    gray = rgb_to_gray_uint8_like(image)
    assert gray.shape == (3, 1, 37, 41) and gray.dtype == torch.float32
    for b in range(3):
        # the official code reads BGR and uses COLOR_BGR2GRAY; same result as RGB2GRAY on RGB
        expected = cv2.cvtColor(np.ascontiguousarray(rgb[b, ..., ::-1]), cv2.COLOR_BGR2GRAY)
        np.testing.assert_array_equal(gray[b, 0].numpy().astype(np.uint8), expected)


def test_gray_matches_cv2_on_a_grid_of_levels():
    levels = np.arange(256, dtype=np.uint8)
    red, green = np.meshgrid(levels, levels, indexing="ij")  # every (R, G) pair
    blue = (red.astype(np.int64) * 7 + green.astype(np.int64) * 13) % 256  # many B levels
    rgb = np.stack([red, green, blue.astype(np.uint8)], -1)  # (256,256,3)
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].double() / 255
    expected = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(rgb_to_gray_uint8_like(image)[0, 0].numpy().astype(np.uint8), expected)


def test_lbp_target_and_inverse():
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, size=(2, 19, 23, 3), dtype=np.uint8)
    image = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255
    target = lbp_target(image)
    assert target.shape == (2, 1, 19, 23) and target.dtype == torch.float32
    for b in range(2):
        gray = cv2.cvtColor(np.ascontiguousarray(rgb[b]), cv2.COLOR_RGB2GRAY)
        codes = lbp_codes_loop(gray)
        # official: uint8 code -> ToTensor (/255) -> Normalize(0.5, 0.5)
        np.testing.assert_allclose(target[b, 0].numpy(), (codes / 255.0 - 0.5) / 0.5, atol=1e-6)
        np.testing.assert_array_equal(lbp_target_to_codes(target)[b, 0].numpy(), codes)
    assert target.min() >= -1 and target.max() <= 1


def test_lbp_target_to_codes_clamps_predictions():
    prediction = torch.tensor([-1.5, -1.0, 0.0, 0.999, 3.0]).view(1, 1, 1, 5)
    assert lbp_target_to_codes(prediction).flatten().tolist() == [0, 0, 128, 255, 255]


@pytest.mark.parametrize(
    "gray, message",
    [
        (torch.zeros(1, 3, 4, 4), "shape"),
        (torch.zeros(4, 4), "shape"),
        (torch.full((1, 1, 4, 4), 0.5), "integers"),
        (torch.full((1, 1, 4, 4), 256.0), r"\[0, 255\]"),
        (torch.full((1, 1, 4, 4), -1.0), r"\[0, 255\]"),
        (torch.zeros(1, 1, 4, 4, dtype=torch.bool), "dtype"),
    ],
)
def test_local_binary_pattern_rejects_bad_input(gray, message):
    with pytest.raises(ValueError, match=message):
        local_binary_pattern(gray)


def test_bad_border_and_bad_images_raise():
    with pytest.raises(ValueError, match="border"):
        local_binary_pattern(torch.zeros(1, 1, 3, 3), border="wrap")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rgb_to_gray_uint8_like(torch.full((1, 3, 2, 2), 2.0))
    with pytest.raises(ValueError, match="shape"):
        rgb_to_gray_uint8_like(torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="float"):
        rgb_to_gray_uint8_like(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="shape"):
        lbp_target_to_codes(torch.zeros(1, 2, 2, 2))
