"""Tests of inpaintlib.attention.contextual against an independent plain-loop reference.

``reference_contextual_attention`` below is a literal, loop-by-loop reading of the official
``contextual_attention`` (JiahuiYu/generative_inpainting v1.0.0, ``inpaint_ops.py`` l.216-324), step by step as
listed in ``inpaintlib/attention/contextual.py``, in float64 numpy. It shares no code
with the library; ``benchmarks/bench_attention.py`` imports it from here to time it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inpaintlib.attention.contextual import (
    ContextualAttention,
    ContextualAttentionResult,
    align_corners_nearest_indices,
    attention_flow,
    attention_heatmap,
    contextual_attention,
    downsample_nearest_align_corners,
    extract_patches,
    flow_to_color,
    fuse_scores,
    known_patch_mask,
    masked_softmax,
    normalize_kernels,
    paste_back,
)


def assert_tensors_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-6) -> None:
    """Same shape and max |actual - expected| <= atol (numpy's check: cheaper to import than torch.testing)."""
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    np.testing.assert_allclose(actual.detach().double().numpy(), expected.detach().double().numpy(), rtol=0, atol=atol)


# ----------------------------------------------------------------------------------------------
# Plain-loop reference (loops over batch, query positions, key positions)
# ----------------------------------------------------------------------------------------------


def _tf_same(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(number of outputs, padding before) of TF 'SAME' on one axis."""
    count = -(-size // stride)
    total = max((count - 1) * stride + kernel - size, 0)
    return count, total // 2


def _window(image: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """(C, size, size) window of a (C, H, W) image starting at (top, left); zero outside."""
    channels, height, width = image.shape
    window = np.zeros((channels, size, size))
    for dy in range(size):
        for dx in range(size):
            y, x = top + dy, left + dx
            if 0 <= y < height and 0 <= x < width:
                window[:, dy, dx] = image[:, y, x]
    return window


def _all_windows(image: np.ndarray, size: int, stride: int) -> list[np.ndarray]:
    """Every 'SAME' window of the image in raster order."""
    rows, top = _tf_same(image.shape[1], size, stride)
    cols, left = _tf_same(image.shape[2], size, stride)
    return [_window(image, r * stride - top, c * stride - left, size) for r in range(rows) for c in range(cols)]


def _tf_nearest_source(i: int, size_in: int, size_out: int) -> int:
    """TF resize_nearest_neighbor(align_corners=True): min(roundf(float32(i) * scale), in - 1)."""
    if size_out > 1:
        scale = np.float32(size_in - 1) / np.float32(size_out - 1)
    else:
        scale = np.float32(size_in / size_out)
    position = float(np.float32(np.float32(i) * scale))
    return min(int(math.floor(position + 0.5)), size_in - 1)


def _downscale(image: np.ndarray, size_out: tuple[int, int]) -> np.ndarray:
    channels, height, width = image.shape
    small = np.zeros((channels, size_out[0], size_out[1]))
    for i in range(size_out[0]):
        for j in range(size_out[1]):
            row = _tf_nearest_source(i, height, size_out[0])
            col = _tf_nearest_source(j, width, size_out[1])
            small[:, i, j] = image[:, row, col]
    return small


def _diagonal_sum(matrix: np.ndarray, taps: list[int]) -> np.ndarray:
    """out[q, p] = sum_d matrix[q + d, p + d], zero outside (a conv with an identity kernel)."""
    rows, cols = matrix.shape
    values = matrix.tolist()  # nested lists: fast scalar reads in the loops below
    out = [[0.0] * cols for _ in range(rows)]
    for q in range(rows):
        for p in range(cols):
            total = 0.0
            for d in taps:
                if 0 <= q + d < rows and 0 <= p + d < cols:
                    total += values[q + d][p + d]
            out[q][p] = total
    return np.array(out)


def _reference_fuse(scores: np.ndarray, query_hw: tuple[int, int], key_hw: tuple[int, int], fuse_k: int) -> np.ndarray:
    """Step 5 (score fusion): diagonal sum in row-major order, then in column-major order of both grids."""
    taps = [a - (fuse_k - 1) // 2 for a in range(fuse_k)]
    first = _diagonal_sum(scores, taps)
    (qh, qw), (kh, kw) = query_hw, key_hw
    swapped = np.zeros_like(first)
    for q in range(qh * qw):
        for p in range(kh * kw):
            qi, qj = divmod(q, qw)
            ki, kj = divmod(p, kw)
            swapped[qj * qh + qi, kj * kh + ki] = first[q, p]
    second = _diagonal_sum(swapped, taps)
    fused = np.zeros_like(second)
    for q in range(qh * qw):
        for p in range(kh * kw):
            qi, qj = divmod(q, qw)
            ki, kj = divmod(p, kw)
            fused[q, p] = second[qj * qh + qi, kj * kh + ki]
    return fused


def reference_contextual_attention(
    f,
    b,
    mask=None,
    *,
    ksize: int = 3,
    stride: int = 1,
    rate: int = 2,
    fuse_k: int = 3,
    softmax_scale: float = 10.0,
    fuse: bool = True,
    mask_from_first_sample: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Loop reference of contextual attention. Returns (y (B, C, H, W), attention (B, Lq, Lk)), float64."""
    f = np.asarray(f, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    batch, channels, height, width = f.shape
    small_hw = (height // rate, width // rate)
    outputs, attentions = [], []
    for n in range(batch):
        # 1. raw 2r x 2r patches of full-resolution b, stride r * stride, 'SAME'
        raw = _all_windows(b[n], 2 * rate, rate * stride)
        # 2. nearest align-corners downscale of f and b
        f_small = _downscale(f[n], small_hw)
        b_small = _downscale(b[n], small_hw)
        # 3. matching kernels, each divided by max(norm, 1e-4)
        kernels = _all_windows(b_small, ksize, stride)
        norms = [max(math.sqrt(float(np.sum(k * k))), 1e-4) for k in kernels]
        key_hw = (_tf_same(small_hw[0], ksize, stride)[0], _tf_same(small_hw[1], ksize, stride)[0])
        queries = _all_windows(f_small, ksize, 1)
        # 4. scores S[q, p] = <f window q, normalised kernel p>
        query_vectors = [window.ravel() for window in queries]
        kernel_vectors = [window.ravel() for window in kernels]
        scores = np.zeros((len(queries), len(kernels)))
        for q in range(len(queries)):
            for p in range(len(kernels)):
                scores[q, p] = float(np.dot(query_vectors[q], kernel_vectors[p])) / norms[p]
        # 5. fuse
        if fuse:
            scores = _reference_fuse(scores, small_hw, key_hw, fuse_k)
        # 6. mm[p] = 1 iff the mask window of key p has mean 0
        mm = np.ones(len(kernels))
        if mask is not None:
            sample_mask = np.asarray(mask, dtype=np.float64)
            sample_mask = sample_mask[0] if (mask_from_first_sample or sample_mask.shape[0] == 1) else sample_mask[n]
            mask_windows = _all_windows(_downscale(sample_mask, small_hw), ksize, stride)
            mm = np.array([1.0 if float(np.mean(m)) == 0.0 else 0.0 for m in mask_windows])
        attention = np.zeros_like(scores)
        for q in range(len(queries)):
            logits = scores[q] * mm * softmax_scale
            weights = np.exp(logits - logits.max())
            attention[q] = weights / weights.sum() * mm
        # 7. paste back: overlap-add of attention-weighted raw patches at (i r, j r), crop 'SAME', / 4
        _, top = _tf_same(height, 2 * rate, rate)
        _, left = _tf_same(width, 2 * rate, rate)
        canvas = np.zeros((channels, height + 2 * rate + top, width + 2 * rate + left))
        for q in range(len(queries)):
            qi, qj = divmod(q, small_hw[1])
            for p in range(len(raw)):
                top_q, left_q = qi * rate, qj * rate
                canvas[:, top_q : top_q + 2 * rate, left_q : left_q + 2 * rate] += attention[q, p] * raw[p]
        outputs.append(canvas[:, top : top + height, left : left + width] / 4.0)
        attentions.append(attention)
    return np.stack(outputs), np.stack(attentions)


# ----------------------------------------------------------------------------------------------
# Equivalence with the reference
# ----------------------------------------------------------------------------------------------


def _random_case(batch: int, channels: int, height: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random features and a different rectangular hole per sample (feature resolution)."""
    generator = torch.Generator().manual_seed(seed)
    features = 0.1 * torch.randn(batch, channels, height, width, generator=generator, dtype=torch.float64)
    mask = torch.zeros(batch, 1, height, width, dtype=torch.float64)
    for n in range(batch):
        top = int(torch.randint(0, height // 2, (1,), generator=generator))
        left = int(torch.randint(0, width // 2, (1,), generator=generator))
        mask[n, :, top : top + height // 3 + n, left : left + width // 3 + 1] = 1.0
    return features, mask


EQUIVALENCE_CASES = [
    # batch, channels, height, width, rate, stride, fuse, chunk_size
    (1, 3, 8, 8, 2, 1, True, None),
    (2, 4, 12, 10, 2, 1, True, None),
    (2, 4, 12, 10, 2, 1, True, 7),
    (2, 4, 12, 10, 2, 1, False, None),
    (2, 3, 6, 10, 1, 1, True, 11),
    (2, 3, 6, 10, 1, 1, False, None),
    (2, 3, 16, 12, 2, 2, True, 5),
]


@pytest.mark.parametrize("batch,channels,height,width,rate,stride,fuse,chunk_size", EQUIVALENCE_CASES)
def test_matches_loop_reference(batch, channels, height, width, rate, stride, fuse, chunk_size):
    features, mask = _random_case(batch, channels, height, width, seed=height * 31 + width + rate)
    background = 0.1 * torch.randn(features.shape, generator=torch.Generator().manual_seed(height), dtype=torch.float64)
    result = contextual_attention(
        features, background, mask, rate=rate, stride=stride, fuse=fuse, chunk_size=chunk_size, return_attention=True
    )
    expected_y, expected_attention = reference_contextual_attention(
        features.numpy(), background.numpy(), mask.numpy(), rate=rate, stride=stride, fuse=fuse
    )
    np.testing.assert_allclose(result.attention.numpy(), expected_attention, rtol=0, atol=1e-5)
    np.testing.assert_allclose(result.output.numpy(), expected_y, rtol=0, atol=1e-5)


def test_matches_reference_in_float32_self_attention():
    features, mask = _random_case(2, 8, 12, 12, seed=5)
    features = 10.0 * features  # unit-variance features: logits of several hundred after fuse and scale 10
    output = contextual_attention(features.float(), features.float(), mask.float())
    expected, _ = reference_contextual_attention(features.numpy(), features.numpy(), mask.numpy())
    np.testing.assert_allclose(output.numpy(), expected, rtol=0, atol=1e-5)


def test_official_mask_from_first_sample_uses_sample_zero_for_all():
    features, mask = _random_case(2, 3, 8, 12, seed=11)
    output = contextual_attention(features, features, mask, official_mask_from_first_sample=True)
    expected, _ = reference_contextual_attention(
        features.numpy(), features.numpy(), mask.numpy(), mask_from_first_sample=True
    )
    np.testing.assert_allclose(output.numpy(), expected, rtol=0, atol=1e-5)
    shared = contextual_attention(features, features, mask[:1].expand(2, -1, -1, -1).contiguous())
    assert_tensors_close(output, shared)


def test_chunked_equals_unchunked_with_flow():
    features, mask = _random_case(3, 5, 16, 20, seed=3)
    whole = contextual_attention(features, features, mask, return_flow=True, return_attention=True)
    for chunk in (3, 13, 79):  # 80 queries: many chunks, uneven chunks, a last chunk of one
        part = contextual_attention(features, features, mask, chunk_size=chunk, return_flow=True, return_attention=True)
        assert_tensors_close(part.output, whole.output, atol=1e-12)
        assert_tensors_close(part.attention, whole.attention, atol=1e-12)
        assert_tensors_close(part.flow, whole.flow, atol=0.0)


def test_notebook_pieces_compose_to_the_layer():
    features, mask = _random_case(2, 4, 12, 16, seed=13)
    background = features.flip(-1)
    query_hw = (6, 8)
    raw = extract_patches(background, 4, 2)  # (B, C*16, 48)
    f_small = downsample_nearest_align_corners(features, query_hw)
    b_small = downsample_nearest_align_corners(background, query_hw)
    kernels = normalize_kernels(extract_patches(b_small, 3, 1))  # (B, C*9, 48)
    scores = torch.bmm(extract_patches(f_small, 3, 1).transpose(1, 2), kernels)  # (B, 48, 48)
    fused = fuse_scores(scores, query_hw, query_hw)
    known = known_patch_mask(downsample_nearest_align_corners(mask, query_hw))
    attention = masked_softmax(fused, known)
    output = paste_back(attention, raw, (12, 16), rate=2)
    layer = contextual_attention(features, background, mask, return_attention=True)
    assert_tensors_close(attention, layer.attention)
    assert_tensors_close(output, layer.output)


def test_gradients_match_finite_differences():
    features = 0.3 * torch.randn(1, 1, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    features.requires_grad_()
    mask = torch.zeros(1, 1, 4, 6, dtype=torch.float64)
    mask[..., :2, :2] = 1.0
    layer = lambda x: contextual_attention(x, x, mask, chunk_size=4)  # noqa: E731
    assert torch.autograd.gradcheck(layer, (features,), fast_mode=True)


def test_module_wrapper_matches_function():
    features, mask = _random_case(2, 3, 8, 8, seed=7)
    layer = ContextualAttention(rate=2, fuse=False, softmax_scale=5.0, chunk_size=4)
    expected = contextual_attention(features, features, mask, fuse=False, softmax_scale=5.0)
    assert_tensors_close(layer(features, features, mask), expected)
    assert isinstance(layer(features, features, mask, return_flow=True), ContextualAttentionResult)


# ----------------------------------------------------------------------------------------------
# Properties of the official layer
# ----------------------------------------------------------------------------------------------


def test_keys_touching_the_hole_get_zero_attention():
    features = 0.1 * torch.randn(1, 4, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    mask[..., 5:9, 6:12] = 1.0
    attention = contextual_attention(features, features, mask, return_attention=True).attention  # (1, 64, 64)
    rows = [_tf_nearest_source(i, 16, 8) for i in range(8)]  # 0, 2, 4, 6, 9, 11, 13, 15
    small = mask[0, 0][rows][:, rows]  # (8, 8) hole at matching resolution
    for p in range(64):
        i, j = divmod(p, 8)
        touches = bool(small[max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2].any())
        if touches:
            assert torch.all(attention[0, :, p] == 0), f"key {p} touches the hole but gets attention"
        else:
            assert torch.all(attention[0, :, p] > 0), f"fully known key {p} gets no attention"


def test_rows_sum_to_one_without_hole_and_below_one_with_hole():
    features = torch.randn(2, 4, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    attention = contextual_attention(features, features, return_attention=True).attention
    assert_tensors_close(attention.sum(-1), torch.ones(2, 36, dtype=torch.float64))
    # Zero features: every score is 0, so softmax is uniform 1/Lk over all 36 keys (masked ones included,
    # they score 0 rather than -inf) and masked keys are then zeroed: rows sum to (known keys) / 36.
    mask = torch.zeros(1, 1, 12, 12, dtype=torch.float64)
    mask[..., 4:8, 4:8] = 1.0  # 6x6 grid: hole rows/cols 2-3, keys touching it: rows/cols 1-4 -> 16 masked
    zeros = torch.zeros(1, 4, 12, 12, dtype=torch.float64)
    masked = contextual_attention(zeros, zeros, mask, return_attention=True).attention
    assert_tensors_close(masked.sum(-1), torch.full((1, 36), 20 / 36, dtype=torch.float64))


def test_fuse_matches_hand_computed_example_with_wrap_around():
    # 2x2 query and key grids, S[q, p] = 4q + p + 1. Row-major pass S1[q,p] = S[q-1,p-1] + S[q,p] + S[q+1,p+1]:
    #   S1 = [[7, 9, 11, 4], [15, 18, 21, 11], [23, 30, 33, 19], [13, 23, 25, 27]]
    # (S1[1,0] = 5 + S[2,1] = 15: q=1 is (0,1), q+1=2 is (1,0): the wrap across the row end).
    # Column-major order swaps positions 1 and 2; the same diagonal sum there and swapping back gives:
    expected = torch.tensor(
        [[40.0, 28.0, 41.0, 4.0], [40.0, 78.0, 67.0, 41.0], [44.0, 52.0, 58.0, 28.0], [13.0, 44.0, 40.0, 45.0]]
    )
    scores = (torch.arange(16, dtype=torch.float32) + 1).reshape(1, 4, 4)
    assert_tensors_close(fuse_scores(scores, (2, 2), (2, 2), fuse_k=3)[0], expected)


@pytest.mark.parametrize("query_hw,key_hw,fuse_k", [((3, 4), (3, 4), 3), ((4, 3), (2, 5), 3), ((3, 4), (3, 4), 2)])
def test_fuse_matches_reference_on_non_square_grids(query_hw, key_hw, fuse_k):
    shape = (1, query_hw[0] * query_hw[1], key_hw[0] * key_hw[1])
    scores = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    expected = _reference_fuse(scores[0].numpy(), query_hw, key_hw, fuse_k)
    np.testing.assert_allclose(fuse_scores(scores, query_hw, key_hw, fuse_k)[0].numpy(), expected, atol=1e-12)
    with pytest.raises(ValueError, match="scores must have shape"):
        fuse_scores(scores, (1, 1), key_hw, fuse_k)


def test_align_corners_indices_64_to_32_match_the_spec():
    expected = list(range(0, 31, 2)) + list(range(33, 64, 2))  # 0, 2, ..., 30, 33, 35, ..., 63
    assert align_corners_nearest_indices(64, 32).tolist() == expected
    ramp = torch.arange(64, dtype=torch.float32).reshape(1, 1, 1, 64).expand(1, 1, 64, 64)
    small = downsample_nearest_align_corners(ramp, (32, 32))
    assert small[0, 0, 0].tolist() == expected
    assert all(align_corners_nearest_indices(n, m).tolist() == [_tf_nearest_source(i, n, m) for i in range(m)]
               for n, m in [(10, 5), (12, 6), (7, 3), (20, 20), (6, 1)])


@pytest.mark.parametrize(
    "f_shape,b_shape,mask_shape,message",
    [
        ((1, 4, 8, 8), (1, 5, 8, 8), None, "same shape"),
        ((1, 4, 8, 8), (1, 4, 8, 6), None, "same shape"),
        ((4, 8, 8), (4, 8, 8), None, "4-D"),
        ((2, 4, 8, 8), (2, 4, 8, 8), (2, 2, 8, 8), "mask must have shape"),
        ((2, 4, 8, 8), (2, 4, 8, 8), (2, 1, 6, 8), "mask must have shape"),
        ((2, 4, 8, 8), (2, 4, 8, 8), (3, 1, 8, 8), "mask must have shape"),
        ((2, 4, 8, 8), (2, 4, 8, 8), (2, 8, 8), "mask must have shape"),
        ((1, 4, 9, 8), (1, 4, 9, 8), None, "divisible by rate"),
    ],
)
def test_bad_shapes_raise_value_error(f_shape, b_shape, mask_shape, message):
    mask = None if mask_shape is None else torch.zeros(mask_shape)
    with pytest.raises(ValueError, match=message):
        contextual_attention(torch.zeros(f_shape), torch.zeros(b_shape), mask)


def test_mask_values_not_binary_raise_value_error():
    features = torch.zeros(1, 2, 8, 8)
    with pytest.raises(ValueError, match=r"\{0, 1\}"):
        contextual_attention(features, features, torch.full((1, 1, 8, 8), 0.5))


@pytest.mark.parametrize("name,value", [("rate", 0), ("ksize", -1), ("chunk_size", 0)])
def test_bad_hyper_parameters_raise_value_error(name, value):
    features = torch.zeros(1, 2, 8, 8)
    with pytest.raises(ValueError, match=name):
        contextual_attention(features, features, **{name: value})


# ----------------------------------------------------------------------------------------------
# Visualisation helpers
# ----------------------------------------------------------------------------------------------


def test_attention_flow_from_argmax_and_from_attention():
    best = torch.full((1, 6), 5)  # every query of a 2x3 grid picks key 5 = (1, 2)
    flow = attention_flow(best, 2, 3)
    expected_dy = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    expected_dx = torch.tensor([[2.0, 1.0, 0.0], [2.0, 1.0, 0.0]])
    assert_tensors_close(flow[0, 0], expected_dy)
    assert_tensors_close(flow[0, 1], expected_dx)
    attention = torch.zeros(1, 6, 6)
    attention[0, :, 5] = 1.0
    assert_tensors_close(attention_flow(attention, 2, 3), flow)


def test_flow_of_contextual_attention_points_at_best_key():
    features, mask = _random_case(2, 3, 12, 8, seed=9)
    result = contextual_attention(features, features, mask, return_flow=True, return_attention=True)
    best = result.attention.argmax(-1)  # (B, Lq) on a 6x4 grid
    for n in range(2):
        for q in range(24):
            i, j = divmod(q, 4)
            ki, kj = divmod(int(best[n, q]), 4)
            assert result.flow[n, :, i, j].tolist() == [ki - i, kj - j]


def test_flow_to_color_wheel_directions():
    flow = torch.zeros(1, 2, 1, 4)
    flow[0, 1, 0, 1] = 2.0  # right (dx > 0) at full radius
    flow[0, 1, 0, 2] = -2.0  # left
    flow[0, 1, 0, 3] = 1.0  # right, half radius
    color = flow_to_color(flow)[0, :, 0]  # (3, 4)
    assert_tensors_close(color[:, 0], torch.ones(3))  # no motion -> white
    assert_tensors_close(color[:, 1], torch.tensor([1.0, 0.0, 0.0]))  # wheel entry 0: red
    # left: angle 0 -> position 27 of 55 -> ramp cyan->blue step 2: (0, 1 - floor(255*2/11)/255, 1)
    assert_tensors_close(color[:, 2], torch.tensor([0.0, 1.0 - math.floor(255 * 2 / 11) / 255, 1.0]))
    assert_tensors_close(color[:, 3], torch.tensor([1.0, 0.5, 0.5]))  # half way to white
    assert color.min() >= 0 and color.max() <= 1


def test_attention_heatmap_selects_one_query_row():
    attention = torch.rand(2, 12, 12, generator=torch.Generator().manual_seed(3))
    heat = attention_heatmap(attention, (1, 2), (3, 4))
    assert heat.shape == (2, 3, 4)
    assert_tensors_close(heat.reshape(2, 12), attention[:, 6])
    with pytest.raises(ValueError, match="outside"):
        attention_heatmap(attention, (3, 0), (3, 4))
