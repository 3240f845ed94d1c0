"""Tests of the probes' shared parts: ProbeSet, the layout unit, the tolerant F-score, attention scoring."""

import math

import pytest
import torch

from inpaintlib.probes.attention import (attention_hits, attention_mass, cell_classes, hole_cells, known_cells,
                                         square_grid)
from inpaintlib.probes.probe_set import ProbeSet, layout_unit, ring, tolerant_f_score


def test_layout_unit_needs_multiples_of_16():
    assert layout_unit(64) == 8 and layout_unit(32) == 4 and layout_unit(128) == 16
    for bad in (16, 40, 72):
        with pytest.raises(ValueError, match="multiple of 16"):
            layout_unit(bad)


def test_probe_set_part_keeps_everything_aligned():
    probe = ProbeSet("p", torch.rand(5, 3, 4, 4), torch.zeros(5, 1, 4, 4), torch.zeros(5, 4, 4, dtype=torch.long),
                     {"offset": torch.arange(10).reshape(5, 2)})
    part = probe.part(1, 3)
    assert len(part) == 2 and part.name == "p"
    assert torch.equal(part.images, probe.images[1:3]) and torch.equal(part.truth["offset"], probe.truth["offset"][1:3])


def test_ring_is_the_known_band_around_the_hole():
    hole = torch.zeros(7, 7)
    hole[3, 3] = 1
    band = torch.from_numpy(ring(hole.numpy(), 1))
    assert int(band.sum()) == 8 and not band[3, 3] and band[2, 2] and not band[1, 1]


def _vertical_line(column: int, size: int = 12) -> torch.Tensor:
    line = torch.zeros(1, size, size, dtype=torch.bool)
    line[0, :, column] = True
    return line


def test_tolerant_f_score_known_cases():
    region = torch.ones(1, 12, 12, dtype=torch.bool)
    line = _vertical_line(5)
    assert tolerant_f_score(line, line, region).item() == 1.0
    assert tolerant_f_score(_vertical_line(6), line, region, tolerance=1).item() == 1.0  # within tolerance
    assert tolerant_f_score(_vertical_line(6), line, region, tolerance=0).item() == 0.0
    assert tolerant_f_score(_vertical_line(9), line, region, tolerance=2).item() == 0.0
    half = line.clone()
    half[0, 6:] = False  # precision 1, recall 6/12 -> F = 2/3; with tolerance 1, recall 7/12 -> F = 14/19
    assert tolerant_f_score(half, line, region, tolerance=0).item() == pytest.approx(2 / 3)
    assert tolerant_f_score(half, line, region, tolerance=1).item() == pytest.approx(14 / 19)
    empty = torch.zeros_like(line)
    assert tolerant_f_score(empty, empty, region).item() == 1.0  # nothing to find, nothing found
    assert tolerant_f_score(empty, line, region).item() == 0.0
    assert tolerant_f_score(line, empty, region).item() == 0.0


def test_tolerant_f_score_only_counts_the_region():
    region = torch.zeros(1, 12, 12, dtype=torch.bool)
    region[0, :, :4] = True
    stray = _vertical_line(2) | _vertical_line(9)  # column 9 lies outside the region
    assert tolerant_f_score(stray, _vertical_line(2), region).item() == 1.0


def test_square_grid_and_cells():
    assert square_grid(256) == (16, 16)
    with pytest.raises(ValueError, match="square"):
        square_grid(200)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 0:4, 0:4] = 1  # cell (0, 0) of a 2x2 grid wholly missing
    mask[..., 4, 4] = 1  # one pixel of cell (1, 1)
    assert hole_cells(mask, (2, 2)).tolist() == [[True, False, False, False]]
    assert known_cells(mask, (2, 2)).tolist() == [[False, True, True, False]]
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, :, 6:] = 3  # cell (0, 1) and (1, 1) hold classes 0 and 3
    assert cell_classes(labels, (2, 2), 7).tolist() == [[0, -1, 0, -1]]


def test_attention_hits_and_mass_by_hand():
    attention = torch.tensor([[[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.2, 0.6], [0.25, 0.25, 0.25, 0.25]]])  # (1, 3, 4)
    correct = torch.zeros(1, 3, 4, dtype=torch.bool)
    correct[0, 0, 0] = correct[0, 1, 2] = correct[0, 2, 1] = True
    queries = torch.tensor([[True, True, False]])
    assert attention_hits(attention, correct, queries).item() == pytest.approx(0.5)  # query 0 hits, query 1 not
    assert attention_mass(attention, correct, queries).item() == pytest.approx((0.7 + 0.2) / 2)
    none = torch.zeros(1, 3, dtype=torch.bool)
    assert math.isnan(attention_hits(attention, correct, none).item())
    assert math.isnan(attention_mass(attention, correct, none).item())
    with pytest.raises(ValueError, match="queries"):
        attention_hits(attention, correct, queries[:, :2])
