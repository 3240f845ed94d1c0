"""Tests of the copy probe (contextual attention): the generator, the true sources, attention hits."""

import torch
import torch.nn.functional as F

from inpaintlib.attention.contextual import contextual_attention
from inpaintlib.probes.copy import copy_attention_hits, copy_hit_chance, copy_source_cells, make_copy_probe


def test_copy_probe_is_deterministic_and_well_formed():
    a, b = make_copy_probe(64, 6, seed=3), make_copy_probe(64, 6, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert torch.equal(a.truth["offset"], b.truth["offset"])
    assert not torch.equal(a.images, make_copy_probe(64, 6, seed=4).images)
    assert a.images.shape == (6, 3, 64, 64) and a.masks.shape == (6, 1, 64, 64) and a.labels.shape == (6, 64, 64)
    assert a.images.min() >= 0 and a.images.max() <= 1 and set(a.masks.unique().tolist()) == {0.0, 1.0}
    assert torch.allclose(a.masks.flatten(1).mean(1), torch.full((6,), 1 / 16))
    assert make_copy_probe(32, 2).images.shape == (2, 3, 32, 32)


def test_hole_content_appears_exactly_in_the_known_region():
    probe = make_copy_probe(64, 20)
    for image, mask, (dy, dx) in zip(probe.images, probe.masks[:, 0], probe.truth["offset"].tolist()):
        assert dy % 8 == 0 and dx % 8 == 0 and max(abs(dy), abs(dx)) >= 32  # whole units, blocks apart
        source = torch.roll(mask, shifts=(dy, dx), dims=(0, 1)) > 0
        assert int(source.sum()) == int(mask.sum())  # the shifted hole lies inside the image
        assert not (source & (mask > 0)).any()  # and is known
        assert torch.equal(image[:, source], image[:, mask > 0])
        # the one-unit ring around the hole is a copy too: the context that points at the source
        ring = F.max_pool2d(mask[None, None], 17, 1, 8)[0, 0] > 0
        assert torch.equal(image[:, torch.roll(ring, shifts=(dy, dx), dims=(0, 1))], image[:, ring])


def test_copy_source_cells_by_hand():
    offset = torch.tensor([[0, 32]])  # the content of a hole pixel lies 32 px to the right
    correct = copy_source_cells(offset, (64, 64), (16, 16), (16, 16), tolerance=0)  # 4 px cells
    assert correct.shape == (1, 256, 256)
    row = correct[0, 5 * 16 + 2].reshape(16, 16)  # query cell (5, 2) -> key cell (5, 10)
    assert row.nonzero().tolist() == [[5, 10]]
    wide = copy_source_cells(offset, (64, 64), (16, 16), (16, 16), tolerance=1)[0, 5 * 16 + 2].reshape(16, 16)
    assert int(wide.sum()) == 9 and wide[4:7, 9:12].all()


def test_attention_hits_on_hand_made_attention():
    probe = make_copy_probe(64, 4)
    correct = copy_source_cells(probe.truth["offset"], (64, 64), (16, 16), (16, 16), tolerance=0)
    perfect = correct.float() / correct.float().sum(-1, keepdim=True)  # (B, 256, 256)
    assert torch.allclose(copy_attention_hits(perfect, probe.masks, probe.truth["offset"]), torch.ones(4))
    shifted = torch.roll(perfect.reshape(4, 256, 16, 16), shifts=3, dims=3).reshape(4, 256, 256)  # 3 cells off
    assert torch.equal(copy_attention_hits(shifted, probe.masks, probe.truth["offset"]), torch.zeros(4))
    # uniform attention over the 256 - 16 known cells: 9 correct sources per hole cell
    chance = copy_hit_chance(perfect, probe.masks, probe.truth["offset"])
    assert torch.allclose(chance, torch.full((4,), 9 / 240))


def test_contextual_attention_finds_the_copy_only_when_it_sees_the_content():
    # Contextual attention on the images themselves (16 x 16 grid, rate 1): with the true content as
    # queries it matches the exact copy; with the hole blanked, as a model sees it, it mostly cannot.
    probe = make_copy_probe(64, 16)
    features, mask = F.avg_pool2d(probe.images, 4), F.max_pool2d(probe.masks, 4)  # (B, 3, 16, 16)
    known = features * (1 - mask)
    oracle = contextual_attention(features, known, mask, rate=1, return_attention=True).attention
    blind = contextual_attention(known, known, mask, rate=1, return_attention=True).attention
    assert copy_attention_hits(oracle, probe.masks, probe.truth["offset"]).mean() > 0.95
    assert copy_attention_hits(blind, probe.masks, probe.truth["offset"]).mean() < 0.5
