"""Tests of inpaintlib.models.deepfill against the official layer table, plain-loop references and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inpaintlib.losses import hole_l1
from inpaintlib.models.deepfill import (
    ConvSpec,
    DeepFillCritic,
    DeepFillGenerator,
    DeepFillMethod,
    GenConv,
    chebyshev_distance_to_known,
    crop_windows,
    downsample_mask,
    generator_layer_specs,
    hole_window_offsets,
    masked_gradient_penalty,
    spatial_discount,
    spatially_discounted_l1,
)
from inpaintlib.train import Trainer


def _box_mask(batch: int, size: int, top: int, left: int, height: int, width: int) -> torch.Tensor:
    mask = torch.zeros(batch, 1, size, size)
    mask[..., top : top + height, left : left + width] = 1.0
    return mask


def _random_masks(batch: int, size: int, seed: int) -> torch.Tensor:
    """Random blotchy masks with both known and missing pixels."""
    generator = torch.Generator().manual_seed(seed)
    mask = (torch.rand(batch, 1, size, size, generator=generator) < 0.3).float()
    mask = torch.nn.functional.max_pool2d(mask, 3, stride=1, padding=1)  # grow blobs
    mask[..., 0, 0] = 0.0  # at least one known pixel
    return mask


# ----------------------------------------------------------------------------------------------
# Architecture: the official layer table (build_inpaint_net of JiahuiYu/generative_inpainting v1.0.0), typed by hand
# ----------------------------------------------------------------------------------------------

E, R, N = "elu", "relu", None
SPEC_COARSE = [  # (out ch, kernel, stride, dilation, activation, upsample)
    (32, 5, 1, 1, E, False), (64, 3, 2, 1, E, False), (64, 3, 1, 1, E, False), (128, 3, 2, 1, E, False),
    (128, 3, 1, 1, E, False), (128, 3, 1, 1, E, False), (128, 3, 1, 2, E, False), (128, 3, 1, 4, E, False),
    (128, 3, 1, 8, E, False), (128, 3, 1, 16, E, False), (128, 3, 1, 1, E, False), (128, 3, 1, 1, E, False),
    (64, 3, 1, 1, E, True), (64, 3, 1, 1, E, False), (32, 3, 1, 1, E, True), (16, 3, 1, 1, E, False),
    (3, 3, 1, 1, N, False),
]
SPEC_DILATED_BRANCH = [
    (32, 5, 1, 1, E, False), (32, 3, 2, 1, E, False), (64, 3, 1, 1, E, False), (64, 3, 2, 1, E, False),
    (128, 3, 1, 1, E, False), (128, 3, 1, 1, E, False), (128, 3, 1, 2, E, False), (128, 3, 1, 4, E, False),
    (128, 3, 1, 8, E, False), (128, 3, 1, 16, E, False),
]
SPEC_ATTENTION_BRANCH = [
    (32, 5, 1, 1, E, False), (32, 3, 2, 1, E, False), (64, 3, 1, 1, E, False), (128, 3, 2, 1, E, False),
    (128, 3, 1, 1, E, False), (128, 3, 1, 1, R, False),
]
SPEC_MERGE = [
    (128, 3, 1, 1, E, False), (128, 3, 1, 1, E, False), (64, 3, 1, 1, E, True), (64, 3, 1, 1, E, False),
    (32, 3, 1, 1, E, True), (16, 3, 1, 1, E, False), (3, 3, 1, 1, N, False),
]


def test_layer_specs_at_official_size_are_the_spec_table():
    specs = generator_layer_specs(32, 2)
    assert [tuple(s) for s in specs["coarse"]] == SPEC_COARSE
    assert [tuple(s) for s in specs["dilated_branch"]] == SPEC_DILATED_BRANCH
    assert [tuple(s) for s in specs["attention_branch"]] == SPEC_ATTENTION_BRANCH
    assert [tuple(s) for s in specs["after_attention"]] == [(128, 3, 1, 1, E, False)] * 2
    assert [tuple(s) for s in specs["merge"]] == SPEC_MERGE


def test_layer_specs_scale_with_cnum_and_levels():
    specs = generator_layer_specs(8, 1)
    strides = [s.stride for s in specs["coarse"]]
    assert strides.count(2) == 1 and sum(s.upsample for s in specs["coarse"]) == 1
    assert specs["attention_branch"][-1] == ConvSpec(16, 3, activation="relu")  # bottleneck 8 * 2
    assert specs["merge"][-2].out_channels == 4 and specs["merge"][-1].out_channels == 3
    with pytest.raises(ValueError, match="num_downsamples"):
        generator_layer_specs(8, 0)


# ----------------------------------------------------------------------------------------------
# gen_conv: TF 'SAME' padding, dilation, nearest align-corners upsampling (loop reference)
# ----------------------------------------------------------------------------------------------


def _loop_conv_same(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int, dilation: int) -> np.ndarray:
    """Plain-loop conv with TF 'SAME' zero padding: x (C, H, W), weight (O, C, k, k) -> (O, ceil(H/s), ceil(W/s))."""
    channels, height, width = x.shape
    out_channels, _, kernel, _ = weight.shape
    reach = dilation * (kernel - 1) + 1
    out_h, out_w = -(-height // stride), -(-width // stride)
    top = max((out_h - 1) * stride + reach - height, 0) // 2
    left = max((out_w - 1) * stride + reach - width, 0) // 2
    out = np.zeros((out_channels, out_h, out_w))
    for o in range(out_channels):
        for i in range(out_h):
            for j in range(out_w):
                total = bias[o]
                for ky in range(kernel):
                    for kx in range(kernel):
                        y, xx = i * stride + ky * dilation - top, j * stride + kx * dilation - left
                        if 0 <= y < height and 0 <= xx < width:
                            total += float(np.dot(weight[o, :, ky, kx], x[:, y, xx]))
                out[o, i, j] = total
    return out


@pytest.mark.parametrize("size,kernel,stride,dilation", [(8, 3, 2, 1), (7, 3, 2, 1), (8, 5, 1, 1), (9, 3, 1, 2), (6, 3, 1, 4)])
def test_gen_conv_matches_loop_same_convolution(size, kernel, stride, dilation):
    torch.manual_seed(size + kernel + stride + dilation)
    layer = GenConv(2, ConvSpec(3, kernel, stride, dilation, activation=None)).double()
    x = torch.randn(1, 2, size, size, dtype=torch.float64)
    expected = _loop_conv_same(x[0].numpy(), layer.conv.weight.detach().numpy(), layer.conv.bias.detach().numpy(), stride, dilation)
    np.testing.assert_allclose(layer(x)[0].detach().numpy(), expected, rtol=0, atol=1e-10)


def test_gen_conv_activations_and_upsampling():
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    identity = GenConv(1, ConvSpec(1, 1, upsample=True)).double()
    with torch.no_grad():
        identity.conv.weight.fill_(1.0)
        identity.conv.bias.zero_()
    rows = [0, 0, 1, 1, 2, 2, 3, 3]  # TF align_corners 4 -> 8: round(i * 3 / 7)
    expected = torch.nn.functional.elu(x[..., rows, :][..., rows])
    torch.testing.assert_close(identity(x), expected)
    relu = GenConv(1, ConvSpec(1, 1, activation="relu")).double()
    assert (relu(x) >= 0).all()
    with pytest.raises(ValueError, match="activation"):
        GenConv(1, ConvSpec(1, 1, activation="tanh"))


# ----------------------------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------------------------


def test_generator_shapes_range_and_ablation_removes_the_branch():
    torch.manual_seed(0)
    image, mask = torch.rand(2, 3, 16, 16), _box_mask(2, 16, 4, 4, 6, 7)
    with_attention = DeepFillGenerator(cnum=4, num_downsamples=1)
    without = DeepFillGenerator(cnum=4, num_downsamples=1, use_attention=False)
    for generator in (with_attention, without):
        out = generator(image, mask)
        assert out.coarse.shape == out.refined.shape == (2, 3, 16, 16)
        assert out.coarse.min() >= 0 and out.refined.max() <= 1
        assert out.attention is None
    assert not hasattr(without, "attention_branch")
    assert sum(p.numel() for p in without.parameters()) < sum(p.numel() for p in with_attention.parameters())


def test_generator_ignores_hole_content():
    torch.manual_seed(1)
    generator = DeepFillGenerator(cnum=4, num_downsamples=1)
    image, mask = torch.rand(2, 3, 16, 16), _box_mask(2, 16, 3, 5, 8, 6)
    scribbled = image * (1 - mask) + torch.rand_like(image) * mask
    torch.testing.assert_close(generator(image, mask).refined, generator(scribbled, mask).refined)


def test_generator_attention_avoids_hole_keys_and_validates_input():
    torch.manual_seed(2)
    generator = DeepFillGenerator(cnum=4, num_downsamples=1)
    mask = _box_mask(1, 32, 8, 8, 12, 12)
    out = generator(torch.rand(1, 3, 32, 32), mask, return_attention=True)
    attention = out.attention.attention  # (1, 64, 64): 8 x 8 matching grid from 16 x 16 features
    assert attention.shape == (1, 64, 64) and out.attention.flow.shape == (1, 2, 8, 8)
    # feature mask 16 x 16 (max-pool 2), matching grid 8 x 8: hole cells 2..4 in feature rows 4..9 -> grid 2..4
    hole_keys = torch.zeros(8, 8, dtype=torch.bool)
    hole_keys[2:5, 2:5] = True
    assert float(attention[0][:, hole_keys.flatten()].detach().abs().max()) == 0.0
    with pytest.raises(ValueError, match="divisible"):
        generator(torch.rand(1, 3, 18, 18), torch.zeros(1, 1, 18, 18))
    with pytest.raises(ValueError, match="mask"):
        generator(torch.rand(1, 3, 16, 16), torch.full((1, 1, 16, 16), 0.5))
    with pytest.raises(ValueError, match="3, H, W"):
        generator(torch.rand(1, 4, 16, 16), torch.zeros(1, 1, 16, 16))


def test_downsample_mask_keeps_thin_strokes():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 3, :] = 1.0  # one-pixel stroke on an odd row
    small = downsample_mask(mask, 2)
    assert small.shape == (1, 1, 4, 4) and small[0, 0, 1].eq(1).all() and small.sum() == 4


# ----------------------------------------------------------------------------------------------
# Spatially discounted L1
# ----------------------------------------------------------------------------------------------


def _loop_chebyshev(mask: np.ndarray) -> np.ndarray:
    height, width = mask.shape
    known = [(y, x) for y in range(height) for x in range(width) if mask[y, x] == 0]
    out = np.zeros_like(mask)
    for y in range(height):
        for x in range(width):
            if mask[y, x]:
                out[y, x] = min(max(abs(y - ky), abs(x - kx)) for ky, kx in known)
    return out


def test_chebyshev_distance_matches_loop_reference():
    mask = _random_masks(3, 12, seed=4)
    distance = chebyshev_distance_to_known(mask)
    for n in range(3):
        np.testing.assert_array_equal(distance[n, 0].numpy(), _loop_chebyshev(mask[n, 0].numpy()))
    assert chebyshev_distance_to_known(torch.ones(1, 1, 5, 7)).eq(7).all()


def test_spatial_discount_of_a_box_is_gamma_to_the_edge_distance():
    gamma, top, left, height, width = 0.9, 2, 3, 5, 8
    weight = spatial_discount(_box_mask(1, 14, top, left, height, width), gamma)[0, 0]
    expected = torch.zeros(14, 14)
    for i in range(height):
        for j in range(width):  # distance (in steps) to the nearest box edge row/column
            expected[top + i, left + j] = gamma ** min(i, height - 1 - i, j, width - 1 - j)
    torch.testing.assert_close(weight, expected)
    with pytest.raises(ValueError, match="gamma"):
        spatial_discount(_box_mask(1, 4, 1, 1, 2, 2), 1.5)


def test_spatially_discounted_l1_hand_values():
    mask = _box_mask(1, 6, 1, 1, 1, 3)  # a 1 x 3 hole: every pixel touches the known region, weight 1
    pred, target = torch.zeros(1, 3, 6, 6), torch.zeros(1, 3, 6, 6)
    pred[0, 0, 1, 1:4] = torch.tensor([0.3, 0.6, 0.9])
    assert math.isclose(float(spatially_discounted_l1(pred, target, mask, 0.5)), 1.8 / 9, rel_tol=1e-6)
    big = _random_masks(2, 10, seed=5)
    pred, target = torch.rand(2, 3, 10, 10), torch.rand(2, 3, 10, 10)
    torch.testing.assert_close(spatially_discounted_l1(pred, target, big, 1.0), hole_l1(pred, target, big))
    assert float(spatially_discounted_l1(pred, target, big, 0.5)) < float(hole_l1(pred, target, big))
    given = spatially_discounted_l1(pred, target, big, weight=spatial_discount(big, 0.5))
    assert torch.equal(given, spatially_discounted_l1(pred, target, big, 0.5))


# ----------------------------------------------------------------------------------------------
# Local critic windows
# ----------------------------------------------------------------------------------------------


def _loop_window_corner(mask: np.ndarray, size: int) -> tuple[int, int]:
    rows = [y for y in range(mask.shape[0]) if mask[y].any()]
    cols = [x for x in range(mask.shape[1]) if mask[:, x].any()]
    corner = []
    for found, extent in ((rows, mask.shape[0]), (cols, mask.shape[1])):
        centre = (found[0] + found[-1] + 1) / 2 if found else extent / 2
        corner.append(min(max(math.floor(centre - size / 2), 0), extent - size))
    return tuple(corner)


def test_hole_window_offsets_match_loop_reference():
    masks = torch.cat([_box_mask(1, 16, 0, 10, 3, 6), _box_mask(1, 16, 5, 2, 7, 4), torch.zeros(1, 1, 16, 16),
                       _random_masks(2, 16, seed=6)])
    for size in (5, 8, 16):
        offsets = hole_window_offsets(masks, size)
        expected = [_loop_window_corner(m[0].numpy(), size) for m in masks]
        assert [tuple(o) for o in offsets.tolist()] == expected
    with pytest.raises(ValueError, match="window size"):
        hole_window_offsets(masks, 17)


def test_crop_windows_equals_slicing_and_passes_gradients():
    x = torch.randn(3, 2, 10, 12, requires_grad=True)
    offsets = torch.tensor([[0, 0], [3, 5], [6, 8]])
    crops = crop_windows(x, offsets, 4)
    for n, (top, left) in enumerate(offsets.tolist()):
        torch.testing.assert_close(crops[n], x[n, :, top : top + 4, left : left + 4])
    crops.sum().backward()
    assert float(x.grad.sum()) == 3 * 2 * 16
    with pytest.raises(ValueError, match="offsets"):
        crop_windows(x, offsets[:2], 4)


# ----------------------------------------------------------------------------------------------
# Critics and losses
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [16, 15, 8])
def test_critic_scores_and_same_padding(size):
    critic = DeepFillCritic((4, 8, 8), size, spectral=False)
    assert critic(torch.randn(2, 3, size, size)).shape == (2, 1)
    side = math.ceil(math.ceil(math.ceil(size / 2) / 2) / 2)  # three 'SAME' stride-2 layers
    assert critic.score.in_features == 8 * side * side
    with pytest.raises(ValueError, match="critic expects"):
        critic(torch.randn(2, 3, size + 1, size + 1))


class _LinearCritic(torch.nn.Module):
    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).flatten(1).sum(1, keepdim=True)


def test_masked_gradient_penalty_of_a_linear_critic():
    weight = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    weight[..., 0, 0], weight[..., 1, 1], weight[..., 2, 2] = 0.6, 0.8, 5.0
    mask = torch.zeros(2, 1, 3, 3, dtype=torch.float64)
    mask[..., :2, :2] = 1.0  # the 5.0 lies outside the hole: slope = sqrt(0.36 + 0.64) = 1 -> penalty 0
    real, fake = torch.rand(2, 1, 3, 3, dtype=torch.float64), torch.rand(2, 1, 3, 3, dtype=torch.float64)
    assert float(masked_gradient_penalty(_LinearCritic(weight), real, fake, mask)) < 1e-10
    full = torch.ones_like(mask)  # slope sqrt(26)
    expected = (math.sqrt(26.0) - 1) ** 2
    assert math.isclose(float(masked_gradient_penalty(_LinearCritic(weight), real, fake, full)), expected, rel_tol=1e-9)


@pytest.mark.parametrize("gan_loss", ["hinge", "wgan_gp"])
def test_method_trains_with_both_critic_losses(gan_loss, tmp_path):
    torch.manual_seed(3)
    image = torch.rand(4, 3, 16, 16)
    masks = torch.cat([_box_mask(2, 16, 2, 3, 6, 8), _random_masks(2, 16, seed=7)])
    method = DeepFillMethod(16, cnum=4, num_downsamples=1, gan_loss=gan_loss, adv_weight=0.1, critic_cnum=4, lr=1e-3)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    trainer = Trainer(method, lambda step: {"image": image, "mask": masks}, steps=2, checkpoint_dir=tmp_path,
                      device="cpu", progress=False, log_every=1)
    history = trainer.fit()
    terms = history[-1]["losses"]
    expected_d = {"d/global", "d/local"} | ({"d/global_gp", "d/local_gp"} if gan_loss == "wgan_gp" else set())
    assert {"g/discounted_l1", "g/known_l1", "g/adv"} | expected_d <= set(terms)
    assert all(math.isfinite(v) for v in terms.values())
    after = method.state_dict()
    assert not torch.equal(before["generator.merge.0.conv.weight"], after["generator.merge.0.conv.weight"])
    local_critic = [name for name, _ in method.named_parameters() if name.startswith("critics.local.features")]
    assert local_critic and all(not torch.equal(before[name], after[name]) for name in local_critic)
    assert method.inpaint(image * (1 - masks), masks).shape == image.shape


def test_method_without_critics_and_bad_arguments():
    method = DeepFillMethod(16, cnum=4, num_downsamples=1, adv_weight=0.0)
    assert method.critics is None and set(method.configure_optimizers()) == {"g"}
    with pytest.raises(ValueError, match="gan_loss"):
        DeepFillMethod(16, cnum=4, num_downsamples=1, gan_loss="lsgan")
    with pytest.raises(ValueError, match="image_size"):
        DeepFillMethod(18, cnum=4, num_downsamples=1)
    with pytest.raises(ValueError, match="d_steps"):
        DeepFillMethod(16, cnum=4, num_downsamples=1, d_steps=0)
