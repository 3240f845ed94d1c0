"""Tests of the regular-texture probe (CSA) and the seam score."""

import math

import pytest
import torch
import torch.nn.functional as F

from inpaintlib.data.scenes import BRICK, WATER
from inpaintlib.probes.coherence import attention_cell, make_regular_texture_probe, seam_score
from inpaintlib.probes.probe_set import ring


def test_regular_texture_probe_is_deterministic_and_well_formed():
    a = make_regular_texture_probe(64, 6, seed=1)
    assert torch.equal(a.images, make_regular_texture_probe(64, 6, seed=1).images)
    assert not torch.equal(a.images, make_regular_texture_probe(64, 6, seed=2).images)
    assert a.images.shape == (6, 3, 64, 64) and a.images.min() >= 0 and a.images.max() <= 1
    assert torch.allclose(a.masks.flatten(1).mean(1), torch.full((6,), 0.25))  # a quarter of the image
    assert make_regular_texture_probe(32, 2).masks.shape == (2, 1, 32, 32)


def test_hole_lies_inside_the_regular_texture_with_texture_all_around():
    probe = make_regular_texture_probe(64, 10)
    for index, (labels, mask) in enumerate(zip(probe.labels, probe.masks[:, 0])):
        texture = (BRICK, WATER)[index % 2]
        assert (labels[mask > 0] == texture).all()
        assert (labels[torch.from_numpy(ring(mask.numpy(), 8))] == texture).all()  # one unit of it on every side
        rows, cols = torch.nonzero(mask, as_tuple=True)
        assert int(rows.min()) % attention_cell(64) == 0 and int(cols.min()) % attention_cell(64) == 0


def _cell_shuffle(image: torch.Tensor, cell: int, generator: torch.Generator) -> torch.Tensor:
    """Every cell of ``image`` (3, H, W) replaced by a cell-sized window from a random place: patches
    chosen independently, as attention without coherence may choose them."""
    out = image.clone()
    size = image.shape[-1]
    for top in range(0, size, cell):
        for left in range(0, size, cell):
            y, x = torch.randint(0, size - cell, (2,), generator=generator).tolist()
            out[:, top : top + cell, left : left + cell] = image[:, y : y + cell, x : x + cell]
    return out


def test_seam_score_is_about_one_for_the_truth_and_high_for_independent_patches():
    probe = make_regular_texture_probe(64, 16)
    images, masks, cell = probe.images, probe.masks, attention_cell(64)
    truth = seam_score(images, masks, cell)
    assert 0.9 < truth.mean() < 1.1
    generator = torch.Generator().manual_seed(0)
    shuffled = torch.stack([_cell_shuffle(im, cell, generator) for im in images])
    assert (seam_score(masks * shuffled + (1 - masks) * images, masks, cell) > truth).float().mean() > 0.9
    assert seam_score(masks * shuffled + (1 - masks) * images, masks, cell).mean() > 1.5
    coherent = torch.roll(images, shifts=(0, 2 * cell), dims=(2, 3))  # one big patch from elsewhere: no seams inside
    assert 0.9 < seam_score(masks * coherent + (1 - masks) * images, masks, cell).mean() < 1.1
    blurred = F.avg_pool2d(images, 5, 1, 2, count_include_pad=False)
    assert 0.9 < seam_score(masks * blurred + (1 - masks) * images, masks, cell).mean() < 1.1


def test_seam_score_finds_a_step_on_a_cell_border_and_ignores_one_off_the_grid():
    ramp = torch.linspace(0.2, 0.6, 32).repeat(1, 3, 32, 1)  # (1, 3, 32, 32) smooth horizontal ramp
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    on_grid, off_grid = ramp.clone(), ramp.clone()
    on_grid[..., 16:] += 0.3  # jump between columns 15 and 16: a border of the 4 px grid
    off_grid[..., 18:] += 0.3  # jump between columns 17 and 18: inside a cell
    assert seam_score(ramp, mask, 4).item() == pytest.approx(1.0, abs=0.02)
    assert seam_score(on_grid, mask, 4).item() > 5
    assert seam_score(off_grid, mask, 4).item() < 1
    assert seam_score(torch.full((1, 3, 32, 32), 0.5), mask, 4).item() == 1.0  # flat: no jumps at all
    assert math.isnan(seam_score(ramp, torch.zeros_like(mask), 4).item())

