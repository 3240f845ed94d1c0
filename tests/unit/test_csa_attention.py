"""Tests of inpaintlib.attention.csa against the plain-loop reference (benchmarks/csa_reference.py)."""

from __future__ import annotations

import pytest
import torch

from benchmarks.csa_reference import csa_reference
from inpaintlib.attention.csa import (
    CoherentSemanticAttention,
    coherent_semantic_attention,
    csa_generate,
    csa_search,
    feature_mask,
)


def _random_masks(batch: int, height: int, width: int, hole_ratio: float, generator: torch.Generator) -> torch.Tensor:
    """(B,1,H,W) float masks, different per sample, each with at least one known and one hole position."""
    masks = (torch.rand(batch, 1, height, width, generator=generator) < hole_ratio).double()
    masks[:, 0, 0, 0] = 0
    masks[:, 0, -1, -1] = 1
    return masks


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_search_and_generate_match_loop_reference(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(0)
    batch, channels, height, width = 3, 8, 5, 7  # non-square, B > 1 with different masks
    features = torch.rand(batch, channels, height, width, generator=generator).to(dtype)
    masks = _random_masks(batch, height, width, 0.5, generator).to(dtype)
    assert len(set(masks.sum((1, 2, 3)).tolist())) == batch  # different hole counts: padded steps

    hole = masks.flatten(1) == 1
    idx, vmax, match = csa_search(features, hole)
    out, attention = csa_generate(features, hole, idx, vmax, match, return_attention=True)
    reference = csa_reference(features, masks)

    assert torch.equal(idx, reference.best_match)
    torch.testing.assert_close(vmax, reference.d_max, atol=1e-5, rtol=0)
    torch.testing.assert_close(out, reference.out, atol=1e-5, rtol=0)
    torch.testing.assert_close(attention, reference.attention, atol=1e-5, rtol=0)
    # the coherent rows really mix several sources
    assert ((attention > 0).sum(-1) > 1).any()


def test_signed_features_match_reference_in_double() -> None:
    """Pre-activation (signed) features: a and c leave [0,1] and amplify rounding, so compare in float64."""
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(2, 6, 4, 6, generator=generator, dtype=torch.float64)
    masks = _random_masks(2, 4, 6, 0.6, generator)
    out, trace = coherent_semantic_attention(features, masks, return_trace=True)
    reference = csa_reference(features, masks)
    assert (reference.weight_previous < 0).any() or (reference.weight_previous > 1).any()
    torch.testing.assert_close(out, reference.out, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(trace.attention, reference.attention, atol=1e-9, rtol=1e-9)


def test_trace_maps_match_reference() -> None:
    generator = torch.Generator().manual_seed(2)
    features = torch.rand(2, 5, 6, 4, generator=generator, dtype=torch.float64)
    masks = _random_masks(2, 6, 4, 0.5, generator)
    out, trace = coherent_semantic_attention(features, masks, return_trace=True)
    reference = csa_reference(features, masks)
    flat = {name: getattr(trace, name).flatten(1) for name in ("best_match_index", "d_max", "d_ad")}
    assert torch.equal(trace.hole, masks == 1)
    assert torch.equal(flat["best_match_index"], reference.best_match)
    torch.testing.assert_close(flat["d_max"], reference.d_max)
    torch.testing.assert_close(flat["d_ad"], reference.d_ad)
    torch.testing.assert_close(trace.weight_previous.flatten(1), reference.weight_previous)
    torch.testing.assert_close(trace.weight_match.flatten(1), reference.weight_match)
    torch.testing.assert_close(trace.attention, reference.attention)
    for b in range(2):  # step_index = rank of each hole pixel in raster order, -1 at known positions
        holes = masks[b].flatten() == 1
        expected = torch.full((24,), -1, dtype=torch.long)
        expected[holes] = torch.arange(int(holes.sum()))
        assert torch.equal(trace.step_index[b].flatten(), expected)


def test_clamped_weights_match_reference_and_stay_convex() -> None:
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(2, 6, 5, 5, generator=generator, dtype=torch.float64)
    masks = _random_masks(2, 5, 5, 0.6, generator)
    out, trace = coherent_semantic_attention(features, masks, clamp_weights=True, return_trace=True)
    reference = csa_reference(features, masks, clamp_weights=True)
    torch.testing.assert_close(out, reference.out)
    torch.testing.assert_close(trace.attention, reference.attention)
    assert (trace.weight_previous >= 0).all() and (trace.weight_previous <= 1).all()
    torch.testing.assert_close(trace.weight_previous + trace.weight_match, torch.ones_like(trace.d_ad))


def test_zero_denominator_is_nan_officially_and_finite_when_clamped() -> None:
    """F = [(1,0) known, (1,0.5) hole, (0,1) hole]: at h_1, D_ad = D_max = 0, so a = c = 0/0 (issue #26)."""
    features = torch.tensor([[[[1.0, 1.0, 0.0]], [[0.0, 0.5, 1.0]]]])  # (1,2,1,3)
    mask = torch.tensor([[[[0.0, 1.0, 1.0]]]])
    official = coherent_semantic_attention(features, mask)
    assert torch.isnan(official[0, :, 0, 2]).all()
    clamped = coherent_semantic_attention(features, mask, clamp_weights=True)
    torch.testing.assert_close(clamped[0, :, 0, 2], torch.tensor([1.0, 0.0]))  # a = 0, c = 1: the match


def test_hole_free_input_returns_the_features() -> None:
    generator = torch.Generator().manual_seed(4)
    features = torch.rand(2, 8, 4, 5, generator=generator)
    mask = torch.zeros(2, 1, 4, 5)
    out, trace = coherent_semantic_attention(features, mask, return_trace=True)
    assert torch.equal(out, features)
    assert torch.equal(trace.attention, torch.eye(20).expand(2, 20, 20))


def test_parallel_larger_known_patch_wins_at_a_known_position() -> None:
    """The eps in k/(||k||+1e-8) lets a parallel, longer known patch beat the position itself."""
    features = torch.tensor([[[[1.0, 4.0]], [[1.0, 4.0]]]], dtype=torch.float64)  # (1,2,1,2): F_1 = 4 F_0
    out = coherent_semantic_attention(features, torch.zeros(1, 1, 1, 2, dtype=torch.float64))
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([4.0, 4.0], dtype=torch.float64))


def test_broadcast_mask_equals_per_sample_mask() -> None:
    generator = torch.Generator().manual_seed(5)
    features = torch.rand(3, 4, 5, 5, generator=generator)
    mask = _random_masks(1, 5, 5, 0.4, generator).float()
    torch.testing.assert_close(
        coherent_semantic_attention(features, mask), coherent_semantic_attention(features, mask.expand(3, 1, 5, 5))
    )


def test_module_matches_function() -> None:
    generator = torch.Generator().manual_seed(6)
    features = torch.rand(2, 4, 4, 4, generator=generator)
    mask = _random_masks(2, 4, 4, 0.5, generator).float()
    layer = CoherentSemanticAttention(gradient="official")
    assert "official" in repr(layer)
    torch.testing.assert_close(layer(features, mask), coherent_semantic_attention(features, mask))


def test_official_backward_is_identity_plus_truncated_attention_transpose() -> None:
    """Hand rule of the official CSAFunction.backward: grad_in[:, p] = g[:, p] + sum_q int(W[q, p]) g[:, q], W truncated towards 0."""
    signed = torch.tensor([[[-1.0, 2.0, 2.0], [-1.0, 0.0, 2.0]], [[-3.0, 2.0, -1.0], [3.0, -1.0, 2.0]]])
    positive = torch.tensor([[[1.0, 1.0, 0.0], [1.0, 0.1, 0.5]], [[0.0, 0.1, 1.0], [1.0, 1.0, 0.6]]])
    features = torch.stack([signed, positive]).double()  # (2,2,2,3), non-square
    masks = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 1.0, 1.0]]], dtype=torch.float64).expand(2, 1, 2, 3)
    upstream = torch.randn(2, 2, 2, 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64)

    leaf = features.clone().requires_grad_(True)
    out = coherent_semantic_attention(leaf, masks, gradient="official")
    (out * upstream).sum().backward()

    attention = csa_reference(features, masks).attention  # (2,6,6)
    # the signed sample has hole rows with |w| >= 1 (they survive truncation), the positive one fractional rows
    assert (attention[0, 4].abs() > 1).any()
    assert ((attention[1, 4] > 0) & (attention[1, 4] < 1)).sum() == 2
    assert ((attention[1, 5] > 0) & (attention[1, 5] < 1)).sum() == 3
    expected = torch.zeros(2, 2, 6, dtype=torch.float64)
    g = upstream.flatten(2)
    for b in range(2):
        for p in range(6):
            expected[b, :, p] = g[b, :, p]
            for q in range(6):
                expected[b, :, p] += int(attention[b, q, p]) * g[b, :, q]
    torch.testing.assert_close(leaf.grad.flatten(2), expected)
    torch.testing.assert_close(out, csa_reference(features, masks).out)


def test_autograd_gradient_passes_gradcheck() -> None:
    generator = torch.Generator().manual_seed(9)
    features = (torch.rand(2, 3, 3, 4, generator=generator, dtype=torch.float64) + 0.2).requires_grad_(True)
    masks = _random_masks(2, 3, 4, 0.5, generator)
    assert masks[0].sum() != masks[1].sum()
    assert torch.autograd.gradcheck(lambda f: coherent_semantic_attention(f, masks), (features,))


def test_feature_mask_hand_example() -> None:
    """4x4 mask with a 3x3 top-left hole, one level: window sums 9, 6, 6, 4 (/16) against 5/16."""
    mask = torch.zeros(1, 1, 4, 4)
    mask[0, 0, :3, :3] = 1
    assert torch.equal(feature_mask(mask, levels=1), torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]]))
    assert torch.equal(feature_mask(mask, levels=1, threshold=6 / 16), torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]))


def test_feature_mask_matches_loop_box_average_without_intermediate_threshold() -> None:
    generator = torch.Generator().manual_seed(10)
    mask = (torch.rand(2, 1, 16, 24, generator=generator) < 0.3).float()

    def box_average(values: list[list[float]]) -> list[list[float]]:
        rows, cols = len(values), len(values[0])
        return [
            [
                sum(
                    values[r][c]
                    for r in range(2 * i - 1, 2 * i + 3)
                    for c in range(2 * j - 1, 2 * j + 3)
                    if 0 <= r < rows and 0 <= c < cols
                )
                / 16
                for j in range(cols // 2)
            ]
            for i in range(rows // 2)
        ]

    result = feature_mask(mask)
    assert result.shape == (2, 1, 2, 3)
    for b in range(2):
        values = mask[b, 0].tolist()
        for _ in range(3):
            values = box_average(values)
        expected = torch.tensor([[float(v > 5 / 16) for v in row] for row in values])
        assert torch.equal(result[b, 0], expected)


@pytest.mark.parametrize(
    ("features", "mask", "message"),
    [
        (torch.rand(4, 4, 4), torch.zeros(1, 1, 4, 4), "features"),
        (torch.rand(1, 4, 4, 4), torch.zeros(1, 2, 4, 4), "mask_feat"),
        (torch.rand(1, 4, 4, 4), torch.zeros(1, 4, 4), "mask_feat"),
        (torch.rand(1, 4, 4, 4), torch.zeros(1, 1, 4, 5), "does not match"),
        (torch.rand(3, 4, 4, 4), torch.zeros(2, 1, 4, 4), "does not match"),
        (torch.rand(1, 4, 4, 4), torch.full((1, 1, 4, 4), 0.5), r"\{0, 1\}"),
        (torch.rand(2, 4, 4, 4), torch.cat([torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)]), "all hole"),
    ],
)
def test_bad_input_raises_value_error(features: torch.Tensor, mask: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        coherent_semantic_attention(features, mask)


def test_bad_options_and_low_level_inputs_raise_value_error() -> None:
    features = torch.rand(1, 2, 4, 4)
    with pytest.raises(ValueError, match="gradient"):
        coherent_semantic_attention(features, torch.zeros(1, 1, 4, 4), gradient="exact")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gradient"):
        CoherentSemanticAttention(gradient="exact")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bool"):
        csa_search(features, torch.zeros(1, 16))
    hole, idx, vmax = torch.zeros(1, 16, dtype=torch.bool), torch.zeros(1, 16).long(), torch.zeros(1, 16)
    with pytest.raises(ValueError, match="match"):
        csa_generate(features, hole, idx, vmax, torch.zeros(1, 3, 16))
    with pytest.raises(ValueError, match="too small"):
        feature_mask(torch.zeros(1, 1, 4, 4), levels=3)
    with pytest.raises(ValueError, match=r"\{0, 1\}"):
        feature_mask(torch.full((1, 1, 8, 8), 2.0))
