"""Tests of the edge probe (LBP): the generator, the Canny edge F-score, the LBP-histogram distance."""

import pytest
import torch
import torch.nn.functional as F

from inpaintlib.data.scenes import BRICK
from inpaintlib.probes.structure import canny_edges, edge_f_score, lbp_histogram_distance, make_edge_probe


def test_edge_probe_is_deterministic_and_well_formed():
    a = make_edge_probe(64, 6, seed=7)
    assert torch.equal(a.images, make_edge_probe(64, 6, seed=7).images)
    assert not torch.equal(a.images, make_edge_probe(64, 6, seed=8).images)
    assert a.images.shape == (6, 3, 64, 64) and a.images.min() >= 0 and a.images.max() <= 1
    assert torch.equal(a.masks.flatten(1).sum(1), torch.full((6,), 24.0 * 24))
    assert torch.equal(a.truth["edges"], canny_edges(a.images))
    assert make_edge_probe(32, 3).images.shape == (3, 3, 32, 32)


def test_straight_building_edges_cross_every_hole():
    probe = make_edge_probe(64, 30)
    for index, (labels, mask, edges) in enumerate(zip(probe.labels, probe.masks[:, 0], probe.truth["edges"])):
        rows, cols = torch.nonzero(mask, as_tuple=True)
        top, bottom, left, right = int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())
        brick = labels[top : bottom + 1, left : right + 1] == BRICK  # the hole's box
        assert brick.any() and not brick.all()
        assert int((edges & (mask > 0)).sum()) >= 20  # outline and mortar give the hole edges
        place = ("wall", "roof", "corner")[index % 3]
        if place == "wall":  # a vertical edge from the hole's top row to its bottom row
            assert not brick[0].all() and brick[0].any() and not brick[-1].all() and brick[-1].any()
        if place == "roof":  # a horizontal edge from the hole's left column to its right column
            assert brick[:, 0].any() and not brick[:, 0].all() and brick[:, -1].any() and not brick[:, -1].all()


def test_edge_f_score_known_cases():
    probe = make_edge_probe(64, 12)
    images, masks = probe.images, probe.masks
    assert torch.equal(edge_f_score(images, images, masks), torch.ones(12))
    known_mean = (images * (1 - masks)).sum((2, 3), keepdim=True) / (1 - masks).sum((2, 3), keepdim=True)
    flat = masks * known_mean + (1 - masks) * images  # no structure in the hole
    assert edge_f_score(flat, images, masks).mean() < 0.3
    step = torch.zeros(1, 3, 32, 32)
    step[..., 16:] = 0.8  # one vertical edge between columns 15 and 16
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    moved_1, moved_4 = torch.zeros_like(step), torch.zeros_like(step)
    moved_1[..., 17:] = 0.8
    moved_4[..., 20:] = 0.8
    assert edge_f_score(moved_1, step, mask).item() == 1.0  # within the 1 px tolerance
    assert edge_f_score(moved_4, step, mask).item() == 0.0


def test_lbp_histogram_distance_known_cases():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    flat = torch.full((1, 3, 8, 8), 0.4)
    assert lbp_histogram_distance(flat, flat, mask).item() == 0.0
    assert lbp_histogram_distance(torch.full_like(flat, 0.7), flat, mask).item() == 0.0  # LBP ignores brightness
    checker = ((torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2).float().expand(1, 3, 8, 8)
    # checkerboard: white pixels get code 85 (only the diagonals are >=), black ones 255, like every flat
    # pixel. h = {85: 1/2, 255: 1/2}, g = {255: 1}: chi2 = (1/4 / (1/2) + 1/4 / (3/2)) / 2 = 1/3
    assert lbp_histogram_distance(checker, flat, mask).item() == pytest.approx(1 / 3)
    probe = make_edge_probe(64, 8)
    blurred = F.avg_pool2d(probe.images, 5, 1, 2, count_include_pad=False)
    composed = probe.masks * blurred + (1 - probe.masks) * probe.images
    assert (lbp_histogram_distance(composed, probe.images, probe.masks) > 0.05).all()
