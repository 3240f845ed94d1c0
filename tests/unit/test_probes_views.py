"""Tests of the probe pictures: one view per probe, in range, highlighting what the metric compares."""

import dataclasses

import pytest
import torch

from inpaintlib.probes import PROBES, make_probe
from inpaintlib.probes.views import HIGHLIGHT, metric_view


def test_every_probe_has_a_view_in_range():
    for name in PROBES:
        probe = make_probe(name, size=32, count=2)
        view = metric_view(probe, 1)
        assert view.shape == (3, 32, 32) and view.min() >= 0 and view.max() <= 1
    with pytest.raises(ValueError, match="no view"):
        metric_view(dataclasses.replace(make_probe("copy", size=32, count=1), name="other"), 0)


def test_copy_view_tints_exactly_the_source_of_the_hole():
    probe = make_probe("copy", count=1)
    changed = (metric_view(probe, 0) != probe.images[0]).any(0)
    dy, dx = probe.truth["offset"][0].tolist()
    assert torch.equal(changed, torch.roll(probe.masks[0, 0] > 0, shifts=(dy, dx), dims=(0, 1)))


def test_edges_view_marks_the_hole_edges_in_yellow():
    probe = make_probe("edges", count=1)
    yellow = (metric_view(probe, 0) == torch.tensor(HIGHLIGHT)[:, None, None]).all(0)
    assert torch.equal(yellow, probe.truth["edges"][0] & (probe.masks[0, 0] > 0))
