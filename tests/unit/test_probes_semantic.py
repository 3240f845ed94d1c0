"""Tests of the boundary probe (SGE-Net, SPL): the generator, per-image in-hole mIoU, boundary F-score."""

import math

import numpy as np
import pytest
import torch

from inpaintlib.data.scenes import BRICK, GROUND_CLASSES, SKY
from inpaintlib.masks import class_boundaries
from inpaintlib.metrics import confusion_matrix, mean_iou
from inpaintlib.probes.probe_set import ring
from inpaintlib.probes.semantic import boundary_f_score, hole_miou, label_boundaries, make_boundary_probe


def test_boundary_probe_is_deterministic_and_well_formed():
    a = make_boundary_probe(64, 6, seed=5)
    b = make_boundary_probe(64, 6, seed=5)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, make_boundary_probe(64, 6, seed=6).labels)
    assert a.images.shape == (6, 3, 64, 64) and a.images.min() >= 0 and a.images.max() <= 1
    assert torch.equal(a.masks.flatten(1).sum(1), torch.full((6,), 24.0 * 24))
    assert make_boundary_probe(32, 3).images.shape == (3, 3, 32, 32)


def test_every_hole_crosses_a_boundary_between_visible_classes():
    probe = make_boundary_probe(64, 30)
    for index, (labels, mask) in enumerate(zip(probe.labels, probe.masks[:, 0])):
        inside = set(labels[mask > 0].tolist())
        visible = set(labels[torch.from_numpy(ring(mask.numpy(), 8))].tolist())
        assert len(inside) >= 2 and inside <= visible
        kind = index % 3  # horizon, ground bands, building wall
        if kind == 0:
            assert SKY in inside and inside & set(GROUND_CLASSES)
        elif kind == 1:
            assert len(inside & set(GROUND_CLASSES)) >= 2
        else:
            assert {BRICK, SKY} <= inside


def test_label_boundaries_match_the_mask_module():
    labels = torch.randint(0, 3, (2, 9, 9))
    expected = np.stack([class_boundaries(lab.numpy()) for lab in labels])
    assert np.array_equal(label_boundaries(labels).numpy(), expected)


def test_hole_miou_by_hand_and_against_the_dataset_miou():
    true = torch.tensor([[[0, 0, 1, 1]] * 4])  # (1, 4, 4): left half class 0, right half class 1
    mask = torch.ones(1, 1, 4, 4)
    assert hole_miou(true, true, mask).item() == 1.0
    pred = torch.zeros_like(true)  # all class 0: IoU_0 = 8/16, IoU_1 = 0
    assert hole_miou(pred, true, mask).item() == pytest.approx(0.25)
    mask[..., :, :2] = 0  # only the right half: class 1 true, class 0 predicted -> both IoU 0
    assert hole_miou(pred, true, mask).item() == 0.0
    assert math.isnan(hole_miou(pred, true, torch.zeros_like(mask)).item())
    generator = torch.Generator().manual_seed(0)
    preds = torch.randint(0, 7, (3, 8, 8), generator=generator)
    trues = torch.randint(0, 7, (3, 8, 8), generator=generator)
    masks = (torch.rand(3, 1, 8, 8, generator=generator) > 0.5).float()
    per_image = hole_miou(preds, trues, masks)
    for i in range(3):
        hole = masks[i, 0] > 0
        assert per_image[i].item() == pytest.approx(mean_iou(confusion_matrix(preds[i][hole], trues[i][hole], 7)))


def _down(labels: torch.Tensor, pixels: int) -> torch.Tensor:
    """``labels`` (B, H, W) moved down by ``pixels``, the top row repeated (no wrap-around)."""
    return torch.cat([labels[:, :1].expand(-1, pixels, -1), labels[:, :-pixels]], dim=1)


def test_boundary_f_score_rewards_the_boundary_in_its_place():
    probe = make_boundary_probe(64, 12)
    labels, masks = probe.labels, probe.masks
    assert torch.equal(boundary_f_score(labels, labels, masks), torch.ones(12))
    assert torch.equal(boundary_f_score(_down(labels, 1), labels, masks), torch.ones(12))  # 1 px off: tolerated
    assert boundary_f_score(_down(labels, 4), labels, masks).mean() < 0.5
    one_class = torch.full_like(labels, SKY)  # no boundary predicted at all
    assert torch.equal(boundary_f_score(one_class, labels, masks), torch.zeros(12))
