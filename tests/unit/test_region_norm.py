"""Region normalisation (RN-B, RN-L) and SPADE against plain-loop references and hand-derived identities."""

import math

import pytest
import torch
import torch.nn.functional as F

from inpaintlib.nn.region_norm import (
    BasicRegionNorm,
    LearnableRegionNorm,
    SpadeResnetBlock,
    UnconditionalNorm,
    region_normalize,
)
from inpaintlib.nn.spade import SPADE

EPS = 1e-5


def _loop_region_norm(x: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """The official algorithm written out with Python loops: per sample and channel, for the region and
    its complement, fill the outside with the region mean, instance-normalise the whole map (biased
    variance, eps 1e-5), scale by sqrt(area / HW), keep it, and add the two maps."""
    b_, c_, h_, w_ = x.shape
    out = torch.zeros_like(x, dtype=torch.float64)
    for b in range(b_):
        for c in range(c_):
            for part in (1.0, 0.0):
                inside = [(i, j) for i in range(h_) for j in range(w_) if float(region[b, min(c, region.shape[1] - 1), i, j]) == part]
                area = len(inside) if inside else 1
                mu = sum(float(x[b, c, i, j]) for i, j in inside) / area
                filled = [[float(x[b, c, i, j]) if (i, j) in inside else mu for j in range(w_)] for i in range(h_)]
                flat = [v for row in filled for v in row]
                mean = sum(flat) / len(flat)
                var = sum((v - mean) ** 2 for v in flat) / len(flat)
                scale = math.sqrt(area / (h_ * w_))
                for i in range(h_):
                    for j in range(w_):
                        out[b, c, i, j] += (filled[i][j] - mean) / math.sqrt(var + EPS) * scale
    return out


def _mask(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 1, h, w, generator=g) < 0.4).float()


def test_region_normalize_matches_loop_reference():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6) * 3 + 1
    region = _mask(2, 5, 6)
    assert torch.allclose(region_normalize(x, region).double(), _loop_region_norm(x, region), atol=1e-5)


def test_each_region_is_normalised_by_its_own_statistics():
    # In the region, out = (x - mu_r) / sqrt(var_r + eps * HW / S_r): mean 0, variance var_r / (var_r + eps HW / S_r).
    torch.manual_seed(1)
    x = torch.randn(1, 2, 8, 8)
    region = torch.zeros(1, 1, 8, 8)
    region[..., :3, :] = 1
    x = x + 10 * region  # very different statistics in the region
    out = region_normalize(x, region)
    for part in (region[0, 0] > 0, region[0, 0] == 0):
        area = int(part.sum())
        for c in range(2):
            vals, ref = out[0, c][part].double(), x[0, c][part].double()
            var_r = ref.var(unbiased=False)
            expected = (ref - ref.mean()) / torch.sqrt(var_r + EPS * 64 / area)
            assert torch.allclose(vals, expected, atol=1e-5)


def test_empty_region_gives_plain_instance_norm():
    torch.manual_seed(2)
    x = torch.randn(2, 3, 4, 4)
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
    plain = (x - mean) / torch.sqrt(var + EPS)
    assert torch.allclose(region_normalize(x, torch.zeros(2, 1, 4, 4)), plain, atol=1e-5)
    assert torch.allclose(region_normalize(x, torch.ones(2, 1, 4, 4)), plain, atol=1e-5)


def test_region_normalize_keeps_bfloat16_inputs_accurate():
    torch.manual_seed(8)
    x = torch.randn(1, 2, 40, 40)
    region = _mask(1, 40, 40, seed=9)
    low = region_normalize(x.bfloat16(), region.bfloat16())
    assert low.dtype == torch.bfloat16
    # computed in float32 and rounded once: equal to the float32 result of the same (rounded) input, rounded
    assert torch.equal(low, region_normalize(x.bfloat16().float(), region).bfloat16())


def test_region_normalize_rejects_bad_regions():
    x = torch.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match="exactly 0 or 1"):
        region_normalize(x, torch.full((1, 1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="size"):
        region_normalize(x, torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="shape"):
        region_normalize(x, torch.zeros(1, 3, 4, 4))


def test_rn_b_resizes_the_mask_by_nearest_and_adds_both_betas_everywhere():
    torch.manual_seed(3)
    layer = BasicRegionNorm(3)
    with torch.no_grad():
        layer.hole_gamma.copy_(torch.tensor([0.5, -0.2, 1.0]))
        layer.known_gamma.copy_(torch.tensor([2.0, 0.0, -0.5]))
        layer.hole_beta.copy_(torch.tensor([0.1, 0.2, 0.3]))
        layer.known_beta.copy_(torch.tensor([-1.0, 4.0, 2.0]))
    small = _mask(2, 4, 4, seed=5)
    big = small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # (2, 1, 8, 8) whose nearest resize is `small`
    x = torch.randn(2, 3, 4, 4)
    rn = _loop_region_norm(x, small).float()
    g_h, g_k = layer.hole_gamma.view(1, -1, 1, 1), layer.known_gamma.view(1, -1, 1, 1)
    betas = (layer.hole_beta + layer.known_beta).view(1, -1, 1, 1)  # the official quirk: both betas, everywhere
    expected = torch.where(small > 0, rn * (1 + g_h), rn * (1 + g_k)) + betas
    assert torch.allclose(layer(x, big), expected, atol=1e-5)


def test_rn_b_blocks_gradients_into_the_mask_and_checks_channels():
    layer = BasicRegionNorm(2)
    mask = _mask(1, 4, 4).requires_grad_(True)
    layer(torch.randn(1, 2, 4, 4), mask).sum().backward()
    assert mask.grad is None or mask.grad.abs().sum() == 0
    with pytest.raises(ValueError, match="3 channels"):
        layer(torch.randn(1, 3, 4, 4), mask.detach())


def test_rn_l_matches_a_hand_built_reference():
    torch.manual_seed(4)
    layer = LearnableRegionNorm(4)
    x = torch.randn(2, 4, 6, 6)
    sa = layer.self_aware
    with torch.no_grad():
        pooled = torch.cat([x.mean(1, keepdim=True), x.max(1, keepdim=True).values], 1)
        importance = torch.sigmoid(F.conv2d(pooled, sa.importance_conv.weight, padding=3))
        layer.threshold = float(importance.median())  # a non-trivial region
        gamma = F.conv2d(importance, sa.gamma_conv.weight, sa.gamma_conv.bias, padding=3)
        beta = F.conv2d(importance, sa.beta_conv.weight, sa.beta_conv.bias, padding=3)
    region = (importance >= layer.threshold).float()
    assert 0 < region.sum() < region.numel()
    expected = _loop_region_norm(x, region.expand_as(x)).float() * (1 + gamma) + beta
    with torch.no_grad():
        assert torch.allclose(layer(x), expected, atol=1e-5)


def test_rn_l_trains_its_importance_map_through_gamma_and_beta():
    layer = LearnableRegionNorm(3)
    layer(torch.randn(1, 3, 5, 5)).pow(2).sum().backward()
    assert layer.self_aware.importance_conv.weight.grad.abs().sum() > 0


def test_spade_as_spl_uses_it_matches_the_official_formula():
    # official SPADE: IN(x) * (1 + gamma) + beta, gamma/beta = conv3(ReLU(conv3(nearest-resized layout)))
    torch.manual_seed(5)
    block = SpadeResnetBlock(3, 2, hidden=4)
    spade = block.norm1
    x, layout = torch.randn(2, 3, 8, 8), torch.randn(2, 2, 4, 4)
    up = layout.repeat_interleave(2, 2).repeat_interleave(2, 3)
    actv = F.relu(F.conv2d(up, spade.shared[0].weight, spade.shared[0].bias, padding=1))
    gamma = F.conv2d(actv, spade.gamma.weight, spade.gamma.bias, padding=1)
    beta = F.conv2d(actv, spade.beta.weight, spade.beta.bias, padding=1)
    normed = (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(x.var((2, 3), keepdim=True, unbiased=False) + EPS)
    assert torch.allclose(spade(x, layout), normed * (1 + gamma) + beta, atol=1e-5)
    assert spade.gamma.weight.abs().sum() > 0  # PyTorch default init, as officially (no zero init)


def test_spade_modulation_is_local_to_the_layout():
    # Two 3x3 convs: changing the layout at one pixel changes gamma and beta within Chebyshev radius 2 only.
    torch.manual_seed(6)
    spade = SpadeResnetBlock(2, 3, hidden=5).norm1
    layout = torch.randn(1, 3, 9, 9)
    changed = layout.clone()
    changed[..., 4, 4] += 5
    x = torch.zeros(1, 2, 9, 9)
    g0, b0 = spade.modulation(x, layout)
    g1, b1 = spade.modulation(x, changed)
    diff = ((g1 - g0).abs() + (b1 - b0).abs()).sum(1)[0] > 0
    ii, jj = torch.meshgrid(torch.arange(9), torch.arange(9), indexing="ij")
    assert not diff[torch.maximum((ii - 4).abs(), (jj - 4).abs()) > 2].any()
    assert diff[4, 4]


def test_spade_block_shapes_ablation_and_errors():
    block = SpadeResnetBlock(4, 3, dilation=2, hidden=6)
    x = torch.randn(2, 4, 8, 8)
    assert block(x, torch.randn(2, 3, 8, 8)).shape == x.shape
    with pytest.raises(ValueError, match="layout=None"):
        block(x, None)
    with pytest.raises(ValueError, match="segmentation"):
        block(x, torch.randn(2, 5, 8, 8))
    plain = SpadeResnetBlock(4, 0)
    assert isinstance(plain.norm1, UnconditionalNorm) and plain(x, None).shape == x.shape
    with pytest.raises(ValueError, match="without a prior"):
        plain(x, torch.randn(2, 3, 8, 8))


def test_spade_block_is_a_residual_of_its_two_convolutions():
    torch.manual_seed(7)
    block = SpadeResnetBlock(2, 2, dilation=2, hidden=3)
    x, layout = torch.randn(1, 2, 7, 7), torch.randn(1, 2, 7, 7)
    h = F.pad(F.relu(block.norm1(x, layout)), (2, 2, 2, 2), mode="reflect")
    h = F.conv2d(h, block.conv1[1].weight, block.conv1[1].bias, dilation=2)
    h = F.pad(F.relu(block.norm2(h, layout)), (1, 1, 1, 1), mode="reflect")
    h = F.conv2d(h, block.conv2[1].weight, block.conv2[1].bias)
    assert torch.allclose(block(x, layout), x + h, atol=1e-6)
