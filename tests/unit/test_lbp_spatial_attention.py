"""LBP paper's spatial attention: batched layer vs a per-sample, per-hole-position loop reference."""

import math

import pytest
import torch

from benchmarks.lbp_reference import official_backward_loop, spatial_attention_loop
from inpaintlib.attention.lbp_spatial import LBPSpatialAttention, lbp_attention_sources, lbp_spatial_attention


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-6) -> None:
    """Same shape and max |actual - expected| <= atol (compared in float64)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    difference = float((actual.double() - expected.double()).abs().max()) if actual.numel() else 0.0
    assert difference <= atol, f"max abs difference {difference:.3e} > {atol:.0e}"


def _random_case(batch=2, channels=8, height=8, width=8, mask_scale=4, hole_fraction=0.4, seed=0, relu=False):
    generator = torch.Generator().manual_seed(seed)
    generated = torch.randn(batch, channels, height, width, generator=generator)
    known = torch.randn(batch, channels, height, width, generator=generator)
    if relu:
        generated, known = generated.relu(), known.relu()
    mask = (torch.rand(batch, 1, height * mask_scale, width * mask_scale, generator=generator) < hole_fraction).float()
    return generated, known, mask


def _hole_positions(selection: dict) -> list[int]:
    return sorted(selection["known_sources"])


@pytest.mark.parametrize("within_hole", [True, False])
@pytest.mark.parametrize("top_t", [1, 2, 3])
def test_forward_matches_loop_reference(top_t, within_hole):
    generated, known, mask = _random_case(seed=top_t)
    output = lbp_spatial_attention(generated, known, mask, top_t=top_t, within_hole=within_hole)
    expected, _ = spatial_attention_loop(generated, known, mask, top_t=top_t, within_hole=within_hole)
    assert output.shape == (2, 24, 8, 8) and output.dtype == torch.float32
    _assert_close(output.double(), expected, atol=1e-5)


def test_forward_matches_loop_on_non_square_grid_and_full_resolution_mask():
    generated, known, mask = _random_case(batch=3, channels=5, height=6, width=10, mask_scale=1, seed=11)
    output = lbp_spatial_attention(generated, known, mask, top_t=2)
    expected, _ = spatial_attention_loop(generated, known, mask, top_t=2)
    _assert_close(output.double(), expected, atol=1e-5)


def test_selected_sources_cosines_and_weights_match_loop_reference():
    generated, known, mask = _random_case(batch=2, channels=6, seed=5)
    _, selections = spatial_attention_loop(generated, known, mask, top_t=2)
    for b, selection in enumerate(selections):
        holes = _hole_positions(selection)
        queries = torch.tensor([[i // 8, i % 8] for i in holes])
        sample = slice(b, b + 1)
        sources = lbp_attention_sources(generated[sample], known[sample], mask[sample], queries, top_t=2)
        flat_known = sources.known_sources[0, :, :, 0] * 8 + sources.known_sources[0, :, :, 1]  # (Q,T)
        flat_hole = sources.hole_sources[0, :, :, 0] * 8 + sources.hole_sources[0, :, :, 1]
        assert flat_known.tolist() == [selection["known_sources"][i] for i in holes]
        assert flat_hole.tolist() == [selection["hole_sources"][i] for i in holes]
        expected_known_cos = torch.tensor([selection["known_cosines"][i] for i in holes], dtype=torch.float64)
        expected_hole_cos = torch.tensor([selection["hole_cosines"][i] for i in holes], dtype=torch.float64)
        _assert_close(sources.known_cosines[0].double(), expected_known_cos, atol=1e-5)
        _assert_close(sources.hole_cosines[0].double(), expected_hole_cos, atol=1e-5)
        _assert_close(
            sources.fusion_weights[0].double(), torch.tensor(selection["weights"], dtype=torch.float64), atol=1e-6
        )
        # hole -> hole includes the query itself: its top-1 source is itself with cosine ~1
        assert flat_hole[:, 0].tolist() == holes
        assert torch.allclose(sources.hole_cosines[0, :, 0], torch.ones(len(holes)), atol=1e-5)


def test_passthrough_channels_and_zero_shift_at_known_positions():
    generated, known, mask = _random_case(seed=2)
    output = lbp_spatial_attention(generated, known, mask)
    assert torch.equal(output[:, :8], generated) and torch.equal(output[:, 8:16], known)
    known_positions = torch.nn.functional.interpolate(mask, size=(8, 8), mode="nearest") == 0  # (B,1,H,W)
    shifted = output[:, 16:]
    assert (shifted.masked_select(known_positions) == 0).all()
    assert (shifted.abs().sum(1, keepdim=True).masked_select(~known_positions) > 0).all()


def test_batch_uses_per_sample_fusion_scalars():
    generated, known, mask = _random_case(batch=3, seed=7)
    batched = lbp_spatial_attention(generated, known, mask)
    one_by_one = torch.cat(
        [lbp_spatial_attention(generated[b : b + 1], known[b : b + 1], mask[b : b + 1]) for b in range(3)]
    )
    _assert_close(batched, one_by_one, atol=1e-6)


def test_query_chunking_does_not_change_the_result():
    generated, known, mask = _random_case(seed=8)
    reference = lbp_spatial_attention(generated, known, mask, query_chunk_size=1024)
    for chunk in (1, 5, 64):
        _assert_close(lbp_spatial_attention(generated, known, mask, query_chunk_size=chunk), reference)


def test_hand_computed_tiny_case_forward_and_official_backward():
    # 1x4 grid, C=2; positions 0, 1 known, 2, 3 holes; top_t = 1
    known = torch.tensor([[1.0, 0.0, 5.0, -3.0], [0.0, 1.0, 2.0, 4.0]]).view(1, 2, 1, 4)
    generated = torch.tensor([[7.0, -2.0, 1.0, 0.1], [3.0, 6.0, 0.1, 1.0]]).view(1, 2, 1, 4)
    mask = torch.tensor([0.0, 0.0, 1.0, 1.0]).view(1, 1, 1, 4)
    # hole 2: g=(1,0.1) -> best known k0=(1,0), cos = 1/sqrt(1.01); hole 3: g=(0.1,1) -> k1, same cosine;
    # hole -> hole top-1 is the query itself, cos = 1. w = softmax([1/sqrt(1.01), 1])
    known_mean, hole_mean = 1 / math.sqrt(1.01), 1.0
    w_known = math.exp(known_mean) / (math.exp(known_mean) + math.exp(hole_mean))
    w_hole = 1 - w_known
    expected_shifted = torch.tensor(
        [[0.0, 0.0, w_known * 1 + w_hole * 1.0, w_known * 0 + w_hole * 0.1],
         [0.0, 0.0, w_known * 0 + w_hole * 0.1, w_known * 1 + w_hole * 1.0]]
    ).view(1, 2, 1, 4)
    for backward in ("autograd", "official"):
        output = lbp_spatial_attention(generated, known, mask, top_t=1, backward=backward)
        _assert_close(output[:, 4:], expected_shifted, atol=1e-6)

    generated.requires_grad_(True)
    known.requires_grad_(True)
    output = lbp_spatial_attention(generated, known, mask, top_t=1, backward="official")
    grad_output = torch.arange(1.0, 25.0).view(1, 6, 1, 4)  # distinct values; channels 4,5 are grad(shifted)
    output.backward(grad_output)
    grad_first, grad_middle, grad_shifted = grad_output[:, :2], grad_output[:, 2:4], grad_output[:, 4:]
    expected_grad_known = grad_middle.clone()
    expected_grad_known[..., 0] += grad_shifted[..., 2]  # hole 2 -> known source 0
    expected_grad_known[..., 1] += grad_shifted[..., 3]  # hole 3 -> known source 1
    expected_grad_known[..., 2] += grad_shifted[..., 2]  # hole 2 -> hole source 2 (itself), routed to `known`
    expected_grad_known[..., 3] += grad_shifted[..., 3]  # hole 3 -> hole source 3, routed to `known`
    assert torch.equal(generated.grad, grad_first)  # nothing from shifted reaches `generated`
    assert torch.equal(known.grad, expected_grad_known)  # unweighted; grad(shifted) at known positions dropped


@pytest.mark.parametrize("within_hole", [True, False])
def test_official_backward_matches_loop_reference(within_hole):
    generated, known, mask = _random_case(batch=2, channels=4, seed=9)
    _, selections = spatial_attention_loop(generated, known, mask, top_t=2, within_hole=within_hole)
    generated.requires_grad_(True)
    known.requires_grad_(True)
    output = lbp_spatial_attention(generated, known, mask, top_t=2, within_hole=within_hole, backward="official")
    grad_output = torch.randn(output.shape, generator=torch.Generator().manual_seed(1))
    output.backward(grad_output)
    expected_generated, expected_known = official_backward_loop(grad_output, selections, mask)
    _assert_close(generated.grad, expected_generated, atol=1e-6)
    _assert_close(known.grad, expected_known, atol=1e-5)


def test_official_and_autograd_forward_agree():
    generated, known, mask = _random_case(seed=10)
    _assert_close(
        lbp_spatial_attention(generated, known, mask, backward="official"),
        lbp_spatial_attention(generated, known, mask, backward="autograd"),
    )


@pytest.mark.parametrize("within_hole", [True, False])
def test_autograd_path_gradcheck(within_hole):
    generator = torch.Generator().manual_seed(3)
    generated = torch.randn(2, 3, 3, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    known = torch.randn(2, 3, 3, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    mask = torch.zeros(2, 1, 3, 3, dtype=torch.float64)
    mask[0, 0, 1:, 1:] = 1
    mask[1, 0, 0, :] = 1
    assert torch.autograd.gradcheck(
        lambda g, k: lbp_spatial_attention(g, k, mask, top_t=2, within_hole=within_hole), (generated, known)
    )


def test_zero_feature_vectors_give_finite_output_and_gradients():
    generated, known, mask = _random_case(batch=1, channels=4, seed=12, relu=True)
    generated, known = generated.clone(), known.clone()
    generated[..., :, :] = generated * (torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.3)
    known[..., 0, :] = 0  # whole rows of all-zero vectors (the official code divides 0 by 0 here)
    generated.requires_grad_(True)
    known.requires_grad_(True)
    output = lbp_spatial_attention(generated, known, mask)
    output.sum().backward()
    assert torch.isfinite(output).all() and torch.isfinite(generated.grad).all() and torch.isfinite(known.grad).all()


def test_sample_without_holes_has_zero_shift():
    generated, known, mask = _random_case(batch=2, seed=13)
    mask[1] = 0
    output = lbp_spatial_attention(generated, known, mask)
    assert (output[1, 16:] == 0).all()
    expected, _ = spatial_attention_loop(generated, known, mask)
    _assert_close(output.double(), expected, atol=1e-5)


def test_module_matches_function():
    generated, known, mask = _random_case(seed=14)
    layer = LBPSpatialAttention(top_t=3, within_hole=False, backward="official")
    assert "top_t=3" in repr(layer)
    _assert_close(
        layer(generated, known, mask), lbp_spatial_attention(generated, known, mask, top_t=3, within_hole=False)
    )


def _tiny():
    generated = torch.randn(1, 2, 2, 2)
    known = torch.randn(1, 2, 2, 2)
    mask = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).view(1, 1, 2, 2)
    return generated, known, mask


def test_top_t_larger_than_available_positions_raises():
    generated, known, mask = _tiny()  # 3 known positions, 1 hole position
    with pytest.raises(ValueError, match="fewer than top_t=4"):
        lbp_spatial_attention(generated, known, mask, top_t=4, within_hole=False)
    with pytest.raises(ValueError, match="hole positions"):
        lbp_spatial_attention(generated, known, mask, top_t=2)  # 1 hole < 2 for hole -> hole
    output = lbp_spatial_attention(generated, known, mask, top_t=2, within_hole=False)  # defined without hole->hole
    assert output.shape == (1, 6, 2, 2)
    with pytest.raises(ValueError, match="known positions"):
        lbp_spatial_attention(generated, known, torch.ones(1, 1, 2, 2), top_t=1)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda g, k, m: (g, k[:, :1], m), "shape"),
        (lambda g, k, m: (g[0], k[0], m), "shape"),
        (lambda g, k, m: (g, k.double(), m), "dtype"),
        (lambda g, k, m: (g, k, m * 0.5), "mask values"),
        (lambda g, k, m: (g, k, m.repeat(2, 1, 1, 1)), "mask must have shape"),
        (lambda g, k, m: (g, k, m.repeat(1, 2, 1, 1)), "mask must have shape"),
    ],
)
def test_bad_inputs_raise(change, message):
    with pytest.raises(ValueError, match=message):
        lbp_spatial_attention(*change(*_tiny()), top_t=1)


def test_bad_options_raise():
    generated, known, mask = _tiny()
    for kwargs, message in [
        ({"top_t": 0}, "top_t"),
        ({"top_t": 1.5}, "top_t"),
        ({"backward": "shift"}, "backward"),
        ({"eps": -1.0}, "eps"),
        ({"query_chunk_size": 0}, "query_chunk_size"),
    ]:
        with pytest.raises(ValueError, match=message):
            lbp_spatial_attention(generated, known, mask, **({"top_t": 1} | kwargs))
    with pytest.raises(ValueError, match="hole position"):
        lbp_attention_sources(generated, known, mask, torch.tensor([[1, 1]]), top_t=1)
    with pytest.raises(ValueError, match="grid"):
        lbp_attention_sources(generated, known, mask, torch.tensor([[2, 0]]), top_t=1)
    with pytest.raises(ValueError, match=r"\(Q, 2\)"):
        lbp_attention_sources(generated, known, mask, torch.tensor([0, 0]), top_t=1)
