"""Tests of the non-UI logic of inpaintlib.widgets (pixel snapping, the picker's callback wiring)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from inpaintlib.widgets import clamp_pixel, nearest_pixel_in, pixel_picker


def _loop_nearest(region: np.ndarray, row: int, col: int) -> tuple[int, int]:
    best, best_distance = None, None
    for y in range(region.shape[0]):
        for x in range(region.shape[1]):
            if region[y, x]:
                distance = (y - row) ** 2 + (x - col) ** 2
                if best_distance is None or distance < best_distance:
                    best, best_distance = (y, x), distance
    return best


def test_clamp_pixel():
    assert clamp_pixel(-3, 40, (10, 20)) == (0, 19)
    assert clamp_pixel(4, 5, (10, 20)) == (4, 5)


def test_nearest_pixel_matches_loop_reference():
    rng = np.random.default_rng(0)
    region = rng.uniform(size=(9, 13)) < 0.1
    for row, col in [(0, 0), (4, 6), (8, 12), (-2, 20), (3, 3)]:
        assert nearest_pixel_in(region, row, col) == _loop_nearest(region, row, col)
    assert nearest_pixel_in(torch.from_numpy(region), 4, 6) == _loop_nearest(region, 4, 6)


def test_nearest_pixel_rejects_empty_or_wrong_regions():
    with pytest.raises(ValueError, match="no allowed pixel"):
        nearest_pixel_in(np.zeros((3, 3), bool), 1, 1)
    with pytest.raises(ValueError, match="2-D"):
        nearest_pixel_in(np.ones((1, 3, 3), bool), 1, 1)


def test_picker_calls_back_with_snapped_pixels():
    region = np.zeros((8, 10), bool)
    region[2:4, 6:9] = True
    calls = []

    def callback(row: int, col: int):
        calls.append((row, col))

    picker = pixel_picker(torch.zeros(3, 8, 10), callback, region=region, initial=(0, 0))
    assert calls == [(2, 6)]  # the initial pixel snapped into the region
    row_slider, col_slider = picker.children[0].children
    row_slider.value = 7
    col_slider.value = 9
    assert calls[-1] == (3, 8)
    assert "snapped" in picker.children[1].value
    with pytest.raises(ValueError, match="region shape"):
        pixel_picker(torch.zeros(3, 8, 10), callback, region=region[:4])


def test_picker_without_region_passes_slider_values():
    calls = []
    picker = pixel_picker(torch.zeros(5, 6), lambda r, c: calls.append((r, c)))
    assert calls == [(2, 3)]
    picker.children[0].children[1].value = 5
    assert calls[-1] == (2, 5) and "snapped" not in picker.children[1].value
